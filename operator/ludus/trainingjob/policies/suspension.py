"""Suspension: spec.suspend deletes the pods and keeps the job (Kueue's part is in ludus.trainingjob.queueing)."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.trainingjob.observe import PodObservation
from ludus.trainingjob.policies.decision import PodDeletion

SUSPENDED_MESSAGE = "spec.suspend is true: pods deleted, the job is kept"


def suspend_deletions(pods: list[PodObservation]) -> list[PodDeletion]:
    """Every live pod goes; none counts as a restart."""
    return [PodDeletion(p.name, p.uid, c.REASON_SUSPENDED) for p in pods if not p.deleting]
