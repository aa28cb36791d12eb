"""Suspension: spec.suspend deletes the pods and keeps the job; Kueue jobs start suspended."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.api.models import TrainingJob
from ludus.observe import PodObservation
from ludus.policies.decision import PodDeletion

SUSPENDED_MESSAGE = "spec.suspend is true: pods deleted, the job is kept"


def needs_queue_suspension(job: TrainingJob) -> bool:
    """A job for a Kueue queue starts suspended until admitted, unless it was queued or started before.

    Kueue's webhook would set suspend at creation; Ludus does it on first sight instead, once (the
    annotation remembers), and Kueue admits the job by setting suspend back to false."""
    return (
        c.LABEL_KUEUE_QUEUE in job.metadata.labels
        and c.ANNOTATION_QUEUED not in job.metadata.annotations
        and not job.spec.suspend
        and job.status.start_time is None
        and not any(cond.type == c.COND_CREATED for cond in job.status.conditions)
    )


def suspend_deletions(pods: list[PodObservation]) -> list[PodDeletion]:
    """Every live pod goes; none counts as a restart."""
    return [PodDeletion(p.name, p.uid, c.REASON_SUSPENDED) for p in pods if not p.deleting]
