"""How the CLI shows TrainingJobs: table rows, a description, durations. Pure functions."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining
from ludus.api.models import CheckpointStatus, TrainingJob
from ludus.api.sweep import Sweep, TrialRecord

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """`30m`, `1h30m`, `90s`, `90` -> seconds."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (for example 90s, 30m, 1h)")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def age(created: datetime | None, now: datetime | None = None) -> str:
    if created is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


COLUMNS = ("NAMESPACE", "NAME", "PHASE", "WORKERS", "STEP", "OBJECTIVE", "RESTARTS", "AGE")


def row(job: TrainingJob, now: datetime | None = None) -> tuple[str, ...]:
    s = job.status
    objective = s.evaluation.objective.summary if s.evaluation and s.evaluation.objective else ""
    step = s.progress.summary if s.progress else ""
    created = job.metadata.creation_timestamp
    return (job.metadata.namespace, job.metadata.name, s.phase, s.workers, step, objective, str(s.restarts),
            age(created, now))


def status_line(job: TrainingJob) -> str:
    """One line of a followed job: phase, workers, step, loss, ETA and the objective."""
    s = job.status
    line = f"{s.phase} {s.workers}" + (f"  step {s.progress.summary}" if s.progress else "")
    if s.progress and s.progress.loss is not None:
        line += f"  loss {s.progress.loss:.4g}"
    if s.progress and s.progress.eta:
        line += f"  ETA {s.progress.eta}"
    if s.evaluation and s.evaluation.objective and s.evaluation.objective.summary:
        line += f"  {s.evaluation.objective.summary}"
    return line


# Conditions whose False is where the job stands, not a problem: its phase says it.
_PHASE_CONDITIONS = frozenset({c.COND_RUNNING, c.COND_RESTARTING, c.COND_SUSPENDED, c.COND_SUCCEEDED, c.COND_FAILED})


def holding_back(job: TrainingJob) -> list[str]:
    """Why the job is not progressing, from its own conditions: each one that is False (a pod that
    cannot be placed, a queue, a refused child, progress that cannot be read), with its reason and words."""
    return [f"{x.type} False ({x.reason}): {x.message}" for x in job.status.conditions
            if x.status == "False" and x.type not in _PHASE_CONDITIONS]


def as_dict(job: TrainingJob) -> dict[str, Any]:
    return job.model_dump(by_alias=True, mode="json", exclude_none=True)


def size(n: int | None) -> str:
    """Bytes for a person (binary units, as kubectl shows quantities)."""
    if n is None:
        return "? bytes"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def checkpoint_line(ckpt: CheckpointStatus) -> str:
    """Where the job would resume from: step, location, size, when."""
    where = ckpt.uri or f"{ckpt.path} on claim {ckpt.claim_name}"
    at = ckpt.time.strftime("%Y-%m-%d %H:%M:%SZ") if ckpt.time else "?"
    return f"step {ckpt.step} at {where} ({size(ckpt.size_bytes)}, {at})"


def describe(job: TrainingJob, events: list[dict[str, Any]]) -> str:
    """Everything a person asks about a job, in the order they ask it."""
    s, spec = job.status, job.spec
    lines = [f"Name:        {job.metadata.namespace}/{job.metadata.name}",
             f"Phase:       {s.phase}", f"Workers:     {s.workers} (replicas {spec.replicas}, "
             f"{spec.nproc_per_node} processes each)", f"Image:       {spec.image}",
             f"Restarts:    {s.restarts}"]
    if s.last_restart:
        lines.append(f"Last restart: {s.last_restart.reason}: {s.last_restart.message}")
    if s.progress:
        p = s.progress
        percent = p.percent if p.percent is not None else "?"
        lines.append(f"Progress:    step {p.summary} ({percent}%), epoch {p.epoch}, "
                     f"loss {p.loss if p.loss is not None else '-'}, ETA {p.eta or '-'}")
    if s.evaluation:
        latest = ", ".join(f"{k} {v.value:.4g}" for k, v in sorted(s.evaluation.latest.items()))
        lines.append(f"Evaluation:  {latest}")
        if s.evaluation.objective:
            o = s.evaluation.objective
            lines.append(f"Objective:   {o.metric} ({o.goal}) {o.value if o.value is not None else '-'}, "
                         f"best {o.best if o.best is not None else '-'}")
    if s.goodput:
        g = s.goodput
        badput = ", ".join(f"{k} {v.seconds:.0f}s" for k, v in g.badput.items() if v.seconds >= 0.5)
        lines.append(f"Goodput:     {g.fraction:.0%} of {g.wall_seconds:.0f}s; steps redone {g.steps_redone}; "
                     f"badput: {badput or '-'}")
    if s.checkpoint:
        lines.append(f"Checkpoint:  {checkpoint_line(s.checkpoint)}")
    if s.tracking:
        lines.append(f"Tracking:    run {s.tracking.run_id} {s.tracking.url}")
    lines.append("Conditions:")
    for cond in s.conditions:
        lines.append(f"  {cond.type:<17} {cond.status:<6} {cond.reason}: {cond.message}")
    lines.append("Events:")
    for event in events[-15:]:
        lines.append(f"  {event['type']:<8} {event['reason']:<20} {event['message']}")
    return "\n".join(lines)


def sweep_trials(sweep: Sweep) -> list[list[str]]:
    """The trials as table rows, best objective first (unfinished and valueless ones last)."""
    status = sweep.status
    maximize = status.objective is None or status.objective.goal == "maximize"

    def key(trial: TrialRecord) -> tuple[int, float]:
        if trial.value is None:
            return (1, 0.0)
        return (0, -trial.value if maximize else trial.value)

    best = status.best.number if status.best else None
    rows = []
    for trial in sorted(status.trials, key=key):
        rows.append([
            ("* " if trial.number == best else "  ") + trial.name,
            trial.phase + (" (early)" if trial.stopped_early else ""),
            "" if trial.value is None else f"{trial.value:.4g}",
            " ".join(f"{k}={v}" for k, v in sorted(trial.parameters.items())),
            trial.tracking_run_id or "",
        ])
    return rows


def when(moment: datetime | None) -> str:
    """A time as people read it in a table: UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else ""


def continuous_runs(ct: ContinuousTraining) -> list[list[str]]:
    """The runs as table rows, newest first: what each scored, what the model it started from scored on
    the same data (its baseline), and what became of its model."""
    status = ct.status
    metric = status.objective.metric if status.objective else None
    champion = status.champion.job if status.champion else None
    rows = []
    for run in sorted(status.runs, key=lambda r: r.number, reverse=True):
        value = run.evaluation.get(metric) if metric else None
        baseline = run.baseline.get(metric) if metric else None
        promoted = "champion" if run.name == champion else {True: "yes", False: "no", None: ""}[run.promoted]
        rows.append([run.name, run.trigger, run.data_version or "", run.phase,
                     "" if value is None else f"{value:.4g}", "" if baseline is None else f"{baseline:.4g}", promoted,
                     run.reason if run.promoted is not False else f"{run.reason}: {run.message}",
                     run.tracking_run_id or ""])
    return rows
