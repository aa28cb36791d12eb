"""Failed, evicted and deleted workers: replace one, restart the group, or fail the job."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Final

from ludus.api import constants as c
from ludus.api.models import TrainingJob
from ludus.trainingjob.observe import PodObservation
from ludus.trainingjob.policies.decision import Finish, PodDeletion, Restart, over_limit, stop_group

# A reason the trainer declares becomes a condition's reason: one CamelCase word, as Kubernetes' are.
_DECLARED_REASON: Final = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")


@dataclass(frozen=True)
class Failure:
    pod: PodObservation
    reason: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class FailureOutcome:
    """What the failed workers of one pass decide: a finish, or restarts and the pods to delete."""

    finish: Finish | None = None
    restarts: tuple[Restart, ...] = ()
    # Failed pods already counted by an earlier pass but still there: deleted again, not counted.
    deletions: tuple[PodDeletion, ...] = ()
    replacing: frozenset[int] = field(default_factory=frozenset)


def classify_failure(job: TrainingJob, pod: PodObservation) -> Failure | None:
    """Why a worker pod needs replacing, and whether the restart policy allows it; None if it is fine."""
    disrupted = pod.disrupted
    if disrupted:
        return Failure(pod, disrupted, f"worker pod {pod.name} ended by {disrupted}", retryable=True)
    if pod.phase != "Failed":
        return None
    declared = (pod.evaluation or {}).get("error")
    if isinstance(declared, dict) and declared.get("reason"):
        # The trainer said no restart can mend it (a model that does not fit): fail now, with its words.
        reason = str(declared["reason"])
        reason = reason if _DECLARED_REASON.match(reason) else c.REASON_TRAINER_ERROR
        return Failure(pod, reason, f"worker pod {pod.name}: {str(declared.get('message') or '')[:2000]}",
                       retryable=False)
    code = pod.exit_code
    shown = "unknown" if code is None else str(code)
    message = f"worker pod {pod.name} failed with exit code {shown}"
    policy = job.spec.restart_policy
    if policy == c.RESTART_NEVER:
        return Failure(pod, c.REASON_NEVER_RESTART, message, retryable=False)
    if policy == c.RESTART_EXIT_CODE:
        retryable = code is not None and (code >= 128 or code in job.spec.retryable_exit_codes)
        return Failure(pod, c.REASON_POD_FAILED if retryable else c.REASON_EXIT_CODE_FATAL, message, retryable)
    return Failure(pod, c.REASON_POD_FAILED, message, retryable=True)


def closes_rendezvous(pod: PodObservation) -> bool:
    """A torchrun agent that exits by itself after its workers failed closes the c10d rendezvous for
    good (torch keeps it open only when the agent dies by a signal, exit code >= 128): no replacement
    can join it, so the whole group must start again with a fresh store."""
    return pod.phase == "Failed" and not pod.disrupted and pod.exit_code is not None and pod.exit_code < 128


def failed_workers(
    job: TrainingJob,
    workers: dict[int, PodObservation],
    pods: list[PodObservation],
    counted: frozenset[str],
    restarts_so_far: int,
) -> FailureOutcome:
    """Count each failed worker once (by uid) and decide whether the job goes on."""
    restarts: list[Restart] = []
    again: list[PodDeletion] = []
    replacing: set[int] = set()
    for index, pod in sorted(workers.items()):
        if index >= job.spec.replicas:
            continue
        failure = classify_failure(job, pod)
        if failure is None:
            continue
        if not failure.retryable:
            return FailureOutcome(finish=Finish(c.PHASE_FAILED, failure.reason, failure.message))
        replacing.add(index)
        deletion = () if pod.deleting else (PodDeletion(pod.name, pod.uid, failure.reason),)
        if pod.uid in counted:
            again.extend(deletion)
            continue
        number = restarts_so_far + len(restarts) + 1
        finish = over_limit(job, number - 1, failure.message)
        if finish is not None:
            return FailureOutcome(finish=finish)
        group = closes_rendezvous(pod)
        scope = "restarting the worker group" if group else "replacing it"
        message = f"{failure.message}; {scope} (restart {number})"
        restarts.append(Restart(failure.reason, message, deletion, (pod.uid,), frozenset({index}), group))
        replacing.add(index)
    closing = next((i for i, r in enumerate(restarts) if r.group), None)
    if closing is not None:
        # A failed agent closed the rendezvous: every worker and the store start afresh. The pods
        # stopped alongside are part of that one restart, so it counts them too.
        doomed = counted | {d.uid for r in restarts for d in r.deletions} | {d.uid for d in again}
        rest = stop_group(pods, c.REASON_GROUP_RESTART, skip=frozenset(doomed))
        first = restarts[closing]
        restarts[closing] = replace(
            first,
            deletions=first.deletions + rest.deletions,
            counted=first.counted + rest.counted,
            indexes=first.indexes | rest.indexes,
        )
        replacing |= rest.indexes
    return FailureOutcome(restarts=tuple(restarts), deletions=tuple(again), replacing=frozenset(replacing))
