"""The values policies return: a restart, a finish, the pods to delete.

The restart-limit check (`over_limit`) and "delete every live pod and count it"
(`stop_group`) exist once, shared by the failure and the stall policies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ludus.api import constants as c
from ludus.api.models import ConditionStatus, InitializedFrom, TrainingJob
from ludus.trainingjob.observe import PodObservation


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record once the status write has succeeded."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class PodDeletion:
    name: str
    uid: str
    reason: str


@dataclass(frozen=True)
class Finish:
    """The job ends: Succeeded or Failed, with the condition's reason and message."""

    phase: str
    reason: str
    message: str


@dataclass(frozen=True)
class Restart:
    """One restart, counted once against the limit; `counted` are the pod uids it accounts for.

    A pod deleted as part of a restart is named in `counted` by the restart that deleted
    it, so its later deletion events can never be counted as a restart of their own."""

    reason: str
    message: str
    deletions: tuple[PodDeletion, ...] = ()
    counted: tuple[str, ...] = ()
    indexes: frozenset[int] = field(default_factory=frozenset)
    group: bool = False  # the whole worker group and its store start afresh


def restart_limit(job: TrainingJob) -> int:
    """Recreations allowed: backoffLimit, and elastic.maxRestarts when that is lower."""
    limit = job.spec.backoff_limit
    if job.spec.elastic:
        limit = min(limit, job.spec.elastic.max_restarts)
    return limit


def over_limit(job: TrainingJob, restarts_so_far: int, message: str) -> Finish | None:
    """The Failed decision when one more restart would pass the limit, else None."""
    limit = restart_limit(job)
    if restarts_so_far + 1 <= limit:
        return None
    return Finish(
        c.PHASE_FAILED,
        c.REASON_BACKOFF_LIMIT,
        f"{message}; restart limit {limit} reached after {restarts_so_far} restarts",
    )


def stop_group(pods: Iterable[PodObservation], reason: str, skip: frozenset[str] = frozenset()) -> Restart:
    """Delete every live, unfinished pod (except `skip`) and count each: the whole group starts afresh."""
    deletions = []
    indexes = set()
    for pod in pods:
        if pod.uid in skip or pod.deleting or pod.finished:
            continue
        deletions.append(PodDeletion(pod.name, pod.uid, reason))
        if pod.index is not None:
            indexes.add(pod.index)
    return Restart(
        reason=reason,
        message="",
        deletions=tuple(deletions),
        counted=tuple(d.uid for d in deletions),
        indexes=frozenset(indexes),
        group=True,
    )


def cleanup(pods: Iterable[PodObservation], policy: str, why: str) -> list[PodDeletion]:
    """Pods a finished job deletes, per cleanPodPolicy."""
    out = []
    for pod in pods:
        if pod.deleting:
            continue
        if policy == c.CLEAN_ALL or (policy == c.CLEAN_RUNNING and not pod.finished):
            out.append(PodDeletion(pod.name, pod.uid, why))
    return out


@dataclass(frozen=True)
class Decision:
    """What the policies decided in one pass; `ludus.trainingjob.status.compute_status` turns it into the status."""

    finish: Finish | None = None
    suspend: bool = False
    restarts: tuple[Restart, ...] = ()
    replacing: frozenset[int] = field(default_factory=frozenset)
    # Worker pods exist or are being created: a job without a start time starts now.
    starting: bool = False
    # Kueue's word on a queued job: the Admitted condition (status, reason, message).
    admission: tuple[ConditionStatus, str, str] | None = None
    # Why no node, or all of them together, could ever hold the job (PodsScheduled: LargerThanNodes).
    too_large: str | None = None
    # The API server's refusal of a child's create in an earlier pass (Created False), if any.
    refused: str | None = None
    # Its refusal of a change to a child (the Kueue suspension, the Workload's status): ChildrenUpdated False.
    update_refused: str | None = None
    # status.initializedFrom after this pass (spec.init resolved, with what the trainer loaded); None keeps it.
    pinned: InitializedFrom | None = None
