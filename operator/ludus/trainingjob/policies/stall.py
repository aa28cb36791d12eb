"""Stall: a Running job whose step has not moved for progressDeadlineSeconds restarts its group.

A hung collective keeps every pod Running, so only the step can tell. The whole
group restarts from its checkpoint, counted like any other restart.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from ludus.api import constants as c
from ludus.api.conditions import get_condition
from ludus.api.models import Progress, TrainingJob, TrainingJobStatus
from ludus.trainingjob.observe import PodObservation
from ludus.trainingjob.policies.decision import Finish, Restart, over_limit, stop_group


def stall_deadline(job: TrainingJob, status: TrainingJobStatus, progress: Progress | None) -> datetime | None:
    """When a Running job counts as stalled: progressDeadlineSeconds after the later of its last
    step (`progress`, as this pass records it) and the moment all its workers last became Running
    (a hang before the first step counts)."""
    seconds = job.spec.progress_deadline_seconds
    running = get_condition(status, c.COND_RUNNING)
    if seconds is None or status.phase != c.PHASE_RUNNING or running is None or running.status != "True":
        return None
    since = running.last_transition_time
    if since is None:
        return None
    moved = progress.updated_at if progress else None
    if moved is not None and moved > since:
        since = moved
    return since + timedelta(seconds=seconds)


def stalled(
    job: TrainingJob, progress: Progress | None, pods: list[PodObservation], restarts_so_far: int, now: datetime
) -> Restart | Finish | None:
    """The stall restart (or the Failed finish past the limit) once the deadline has passed."""
    deadline = stall_deadline(job, job.status, progress)
    if deadline is None or now < deadline:
        return None
    step = progress.step if progress else 0
    message = f"no training progress for {job.spec.progress_deadline_seconds}s (step {step})"
    finish = over_limit(job, restarts_so_far, message)
    if finish is not None:
        return finish
    group = stop_group(pods, c.REASON_STALLED)
    return replace(
        group,
        message=f"{message}; restarting the worker group (restart {restarts_so_far + 1})",
    )
