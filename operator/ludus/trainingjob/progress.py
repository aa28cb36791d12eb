"""Training progress as the trainer's own metrics page reports it: parsing and rates, no I/O.

Every worker pod's local rank 0 serves `ludus_trainer_step` (with total steps,
loss, epoch, throughput and seconds per phase) on the metrics port; ranks step
in lock-step, so worker 0's pod speaks for the job. The operator reads it for
every Running job: it needs no RBAC for the trainer and no connection from the
pods to the operator, and the status write rate stays the operator's choice.

`ludus.runtime.poller` is the small async loop that fetches the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

# How often status.progress is written for a job (at most), and polled for it.
MIN_POLL_SECONDS: Final = 1.0
_EVAL_STEP: Final = "ludus_trainer_eval_step"
_FIELDS: Final = {
    "ludus_trainer_step": "step",
    "ludus_trainer_total_steps": "total_steps",
    "ludus_trainer_start_step": "start_step",
    "ludus_trainer_start_timestamp_seconds": "started_at",
    "ludus_trainer_previous_run_step": "previous_step",
    "ludus_trainer_epoch": "epoch",
    "ludus_trainer_loss": "loss",
    "ludus_trainer_samples_per_second": "samples_per_second",
    "ludus_trainer_tokens_per_second": "tokens_per_second",
    _EVAL_STEP: "evaluation_step",
    "ludus_trainer_checkpoint_step": "checkpoint_step",
    "ludus_trainer_checkpoint_bytes": "checkpoint_bytes",
    "ludus_trainer_checkpoint_committed_timestamp_seconds": "checkpoint_at",
}
_PHASES: Final = "ludus_trainer_phase_seconds"
_EVAL: Final = "ludus_trainer_eval_metric"
_OBJECTIVE: Final = "ludus_trainer_objective"
_RESTARTS: Final = "ludus_trainer_restarts"
_INIT: Final = "ludus_trainer_init_info"
_TRACKING: Final = "ludus_trainer_tracking_info"
_KNOWN_PHASES: Final = frozenset({"startup", "rendezvous", "restore", "train", "checkpoint", "evaluation"})
# Counts and steps beyond this are not a trainer's (and would not survive JSON as integers).
_MAX_COUNT: Final = 2.0**53




@dataclass(frozen=True)
class Unavailable:
    """Why a job's progress cannot be read (after several failed polls in a row)."""

    reason: str
    message: str


@dataclass(frozen=True)
class ProgressSample:
    """What worker 0 reported, when the operator saw its step move, and the step rate since
    this run of the trainer began (`rate_from`: the first step and time the operator saw of it)."""

    step: int
    epoch: int = 0
    loss: float | None = None
    samples_per_second: float | None = None
    tokens_per_second: float | None = None
    total_steps: int | None = None
    start_step: int | None = None
    phases: dict[str, float] = field(default_factory=dict)
    restarts: int = 0  # in-place restarts torchrun made of this pod's trainer
    previous_step: int | None = None  # the furthest step an earlier run recorded, as this run found it
    started_at: float | None = None  # when this run began (the trainer's clock, seconds since the epoch)
    source: str = ""  # the worker 0 pod it came from (its uid)
    evaluation: dict[str, float] = field(default_factory=dict)  # the latest evaluation while it trains
    evaluation_step: int | None = None  # the step it was measured at
    objective: tuple[str, str] | None = None  # (metric, goal) the trainer optimises
    init: tuple[str, int | None, str, tuple[str, ...]] | None = None  # the model it started from: file, step,
    # SHA-256, tensors re-initialised
    checkpoint: tuple[int, int | None, float | None] | None = None  # the newest complete one: step, bytes, when
    tracking: tuple[str, str, bool, str] | None = None  # the tracker's run, unchecked: run ID, experiment ID,
    # whether everything reached it, and why not
    observed_at: datetime | None = None
    rate_from: tuple[int, datetime] | None = None

    @property
    def run(self) -> str:
        """One run of the trainer: a pod, torchrun's restart count in it, the step it began from."""
        return f"{self.source}/{self.restarts}/{self.start_step if self.start_step is not None else '-'}"

    @property
    def steps_per_second(self) -> float | None:
        if self.rate_from is None or self.observed_at is None:
            return None
        steps = self.step - self.rate_from[0]
        seconds = (self.observed_at - self.rate_from[1]).total_seconds()
        return steps / seconds if steps > 0 and seconds > 0 else None

    @property
    def percent(self) -> float | None:
        if not self.total_steps:
            return None
        return round(min(100.0, 100.0 * self.step / self.total_steps), 1)

    @property
    def eta_seconds(self) -> float | None:
        rate = self.steps_per_second
        if not self.total_steps or rate is None:
            return None
        return round(max(self.total_steps - self.step, 0) / rate, 0)


def _count(value: float | None) -> int | None:
    if value is None or not 0 <= value < _MAX_COUNT:
        return None
    return int(value)


@dataclass
class _Page:
    """What a metrics page said, family by family."""

    values: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, float] = field(default_factory=dict)
    objective: tuple[str, str] | None = None
    init: tuple[str, int | None, str, tuple[str, ...]] | None = None
    tracking: tuple[str, str, bool, str] | None = None


def _read_tracking(page: _Page, family: Metric) -> None:
    for sample in family.samples:
        if sample.value == 1:
            labels = sample.labels
            page.tracking = (labels.get("run_id", "")[:64], labels.get("experiment_id", "")[:32],
                             labels.get("state") == "ok", labels.get("reason", "")[:64])


def _read_init(page: _Page, family: Metric) -> None:
    for sample in family.samples:
        if sample.value == 1 and sample.labels.get("source"):
            saved_at = sample.labels.get("step", "")
            reinitialized = tuple(x for x in sample.labels.get("reinitialized", "").split(",") if x)
            page.init = (sample.labels["source"][:1024], int(saved_at) if saved_at.isdigit() else None,
                         sample.labels.get("sha256", "")[:64], reinitialized[:64])


def _read_objective(page: _Page, family: Metric) -> None:
    for sample in family.samples:
        if sample.value == 1 and sample.labels.get("metric") and sample.labels.get("goal"):
            page.objective = (sample.labels["metric"], sample.labels["goal"])


def _read_evaluation(page: _Page, family: Metric) -> None:
    for sample in family.samples:
        metric = sample.labels.get("metric", "")
        if metric and math.isfinite(sample.value):
            page.evaluation[metric] = sample.value


def _read_phases(page: _Page, family: Metric) -> None:
    for sample in family.samples:
        phase = sample.labels.get("phase", "")
        if phase in _KNOWN_PHASES and math.isfinite(sample.value) and sample.value >= 0:
            page.phases[phase] = max(page.phases.get(phase, 0.0), round(sample.value, 3))


def _read_restarts(page: _Page, family: Metric) -> None:
    page.values["restarts"] = max((s.value for s in family.samples if s.name.endswith("_total")
                                   and math.isfinite(s.value)), default=0.0)


def _read_field(page: _Page, family: Metric) -> None:
    name = _FIELDS.get(family.name)
    if name is None:
        return
    for sample in family.samples:
        if sample.name == family.name and math.isfinite(sample.value):
            # Several local ranks in one pod: they agree on the step; keep the largest.
            page.values[name] = max(page.values.get(name, -math.inf), sample.value)


_READERS: Final[dict[str, Callable[[_Page, Metric], None]]] = {
    _INIT: _read_init, _TRACKING: _read_tracking, _OBJECTIVE: _read_objective, _EVAL: _read_evaluation,
    _PHASES: _read_phases,
    _RESTARTS: _read_restarts, f"{_RESTARTS}_total": _read_restarts,
}


# Lines of the trainer's own families parsed per page, at most: its page has a few dozen.
MAX_TRAINER_LINES: Final = 512
# What a line of Prometheus text starts with: a metric name, a comment, or blanks.
_LINE_STARTS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:# \t")
_PREFIXES: Final = ("ludus_trainer_", "# TYPE ludus_trainer_", "# HELP ludus_trainer_")


def trainer_lines(text: str) -> str:
    """The page's `ludus_trainer_*` lines, at most MAX_TRAINER_LINES of them: what a pod serves
    besides (a process collector, or a megabyte of padding) costs a scan, never a parse. Raises
    ValueError on a page that is not Prometheus text at all (HTML, JSON)."""
    kept: list[str] = []
    for line in text.splitlines():
        if line and line[0] not in _LINE_STARTS:
            raise ValueError(f"not Prometheus text: a line starts with {line[:1]!r}")
        if line.startswith(_PREFIXES):
            kept.append(line)
            if len(kept) >= MAX_TRAINER_LINES:
                break
    return "\n".join(kept) + "\n"


def parse_progress(text: str) -> ProgressSample | None:
    """The trainer's metrics page reduced to its progress; None when it has no step yet.
    Raises ValueError on a page that is not Prometheus text."""
    page = _Page()
    for family in text_string_to_metric_families(trainer_lines(text)):
        _READERS.get(family.name, _read_field)(page, family)
    values = page.values
    step = _count(values.get("step"))
    if step is None:
        return None
    rates = {k: values[k] if values.get(k, -1) >= 0 else None for k in ("samples_per_second", "tokens_per_second")}
    return ProgressSample(
        step=step,
        epoch=_count(values.get("epoch")) or 0,
        loss=values.get("loss"),
        samples_per_second=rates["samples_per_second"],
        tokens_per_second=rates["tokens_per_second"],
        total_steps=_count(values.get("total_steps")) or None,
        start_step=_count(values.get("start_step")),
        phases=page.phases,
        restarts=_count(values.get("restarts")) or 0,
        started_at=values["started_at"] if values.get("started_at", 0) > 0 else None,
        previous_step=_count(values.get("previous_step")),
        evaluation=page.evaluation if _count(values.get("evaluation_step")) is not None else {},
        evaluation_step=_count(values.get("evaluation_step")),
        objective=page.objective,
        init=page.init,
        checkpoint=_newest_checkpoint(values),
        tracking=page.tracking,
    )


def _newest_checkpoint(values: dict[str, float]) -> tuple[int, int | None, float | None] | None:
    step = _count(values.get("checkpoint_step"))
    if step is None:
        return None
    at = values.get("checkpoint_at")
    return step, _count(values.get("checkpoint_bytes")), at if at is not None and 0 < at < 2**40 else None


def advance(previous: ProgressSample | None, current: ProgressSample, now: datetime) -> ProgressSample:
    """Keep the time the step last moved (a stalled trainer keeps serving the same step) and where
    the step rate is measured from (reset when the trainer starts over: a restart, a resume)."""
    same_run = (
        previous is not None
        and previous.rate_from is not None
        and current.step >= previous.step
        and current.run == previous.run
    )
    rate_from = previous.rate_from if same_run and previous is not None else (current.step, now)
    if previous is not None and previous.step == current.step and previous.observed_at is not None:
        return replace(current, observed_at=previous.observed_at, rate_from=rate_from)
    return replace(current, observed_at=now, rate_from=rate_from)


def poll_interval(progress_interval: float, deadline_seconds: int | None) -> float:
    """Every progress interval; often enough to see a stall within a third of its deadline; at most once a second."""
    wanted = progress_interval if deadline_seconds is None else min(progress_interval, deadline_seconds / 3)
    return max(MIN_POLL_SECONDS, wanted)
