"""Training progress as the trainer's own metrics page reports it: parsing, no I/O.

Every worker pod's local rank 0 serves `ludus_trainer_step` (and loss, epoch,
throughput) on the metrics port; ranks step in lock-step, so worker 0's pod
speaks for the job. The operator polls it only for jobs that set
`spec.progressDeadlineSeconds`: it needs no RBAC for the trainer, no write per
step, and sends no traffic to pods that nobody asked to watch.

`ludus.poller` is the small async loop that fetches the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

# Poll at most this often per job, and at least three times per progress deadline.
DEFAULT_POLL_SECONDS: Final = 10.0
MIN_POLL_SECONDS: Final = 1.0
_FIELDS: Final = {
    "ludus_trainer_step": "step",
    "ludus_trainer_epoch": "epoch",
    "ludus_trainer_loss": "loss",
    "ludus_trainer_samples_per_second": "samples_per_second",
}


@dataclass(frozen=True)
class ProgressSample:
    """What worker 0 reported, and when the operator saw its step move."""

    step: int
    epoch: int = 0
    loss: float | None = None
    samples_per_second: float | None = None
    observed_at: datetime | None = None


def parse_progress(text: str) -> ProgressSample | None:
    """The trainer's metrics page reduced to its progress; None when it has no step yet."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        field = _FIELDS.get(family.name)
        if field is None:
            continue
        for sample in family.samples:
            if sample.name == family.name and math.isfinite(sample.value):
                # Several local ranks in one pod: they agree on the step; keep the largest.
                values[field] = max(values.get(field, -math.inf), sample.value)
    if "step" not in values:
        return None
    return ProgressSample(
        step=int(values["step"]),
        epoch=int(values.get("epoch", 0)),
        loss=values.get("loss"),
        samples_per_second=values.get("samples_per_second"),
    )


def advance(previous: ProgressSample | None, current: ProgressSample, now: datetime) -> ProgressSample:
    """Keep the time the step last moved: a stalled trainer keeps serving the same step."""
    if previous is not None and previous.step == current.step and previous.observed_at is not None:
        return ProgressSample(current.step, current.epoch, current.loss, current.samples_per_second,
                              previous.observed_at)
    return ProgressSample(current.step, current.epoch, current.loss, current.samples_per_second, now)


def poll_interval(deadline_seconds: int, default: float = DEFAULT_POLL_SECONDS) -> float:
    """Often enough to see a stall within a third of the deadline, never more than once a second."""
    return max(MIN_POLL_SECONDS, min(default, deadline_seconds / 3))
