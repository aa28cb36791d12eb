"""activeDeadlineSeconds: counted from the first start (reset by suspend, as Kubernetes Jobs do)."""

from __future__ import annotations

from datetime import datetime, timedelta

from ludus.api import constants as c
from ludus.api.models import TrainingJob
from ludus.trainingjob.policies.decision import Finish


def seconds_left(job: TrainingJob, start_time: datetime | None, now: datetime) -> float | None:
    """Seconds until the deadline (negative once past); None without a deadline or a start."""
    deadline = job.spec.active_deadline_seconds
    if deadline is None or start_time is None:
        return None
    return (start_time + timedelta(seconds=deadline) - now).total_seconds()


def deadline_exceeded(job: TrainingJob, start_time: datetime | None, now: datetime) -> Finish | None:
    left = seconds_left(job, start_time, now)
    if left is None or left > 0:
        return None
    message = f"the job ran longer than activeDeadlineSeconds={job.spec.active_deadline_seconds}"
    return Finish(c.PHASE_FAILED, c.REASON_DEADLINE, message)
