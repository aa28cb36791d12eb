"""A finished job: its pods are cleaned per cleanPodPolicy and the job deleted ttlSecondsAfterFinished later."""

from __future__ import annotations

from datetime import datetime, timedelta

from ludus.api.models import TrainingJob


def ttl_seconds_left(job: TrainingJob, completion_time: datetime | None, now: datetime) -> float | None:
    """Seconds until a finished job is deleted (<= 0: now); None when it is kept."""
    ttl = job.spec.ttl_seconds_after_finished
    if ttl is None:
        return None
    done = completion_time or now
    return (done + timedelta(seconds=ttl) - now).total_seconds()
