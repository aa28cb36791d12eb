"""Kueue admission for TrainingJobs, as pure decisions: what Kueue's job integrations do for the kinds
it knows, done by Ludus for its own.

A job that carries Kueue's queue label gets a Workload (`ludus.builders.workload`) and stays suspended
until Kueue admits that Workload; an admitted job whose Workload is evicted (preempted by a higher
priority, its queue stopped) is suspended through the normal path (SIGTERM, a checkpoint), and its
quota is given back once its pods are gone, so Kueue can queue it again; a finished job marks its
Workload finished so the quota goes to the next one. The mirror of Kueue's jobframework reconciler
(pkg/controller/jobframework/reconciler.go), steps 2 (finished), 6 (evicted), 7 (suspended) and 8
(running but not admitted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ludus.api import constants as c
from ludus.api.models import ConditionStatus, TrainingJob
from ludus.builders.workload import POD_SET_WORKERS, pod_set_counts
from ludus.trainingjob.placement import Placement, PlacementError, admission_placements, selector_conflict
from ludus.trainingjob.policies.decision import Event

__all__ = ["QueueStep", "WorkloadState", "parse_workload", "queue_name", "queue_step", "released_status",
           "finished_status", "unreachable_workers"]


@dataclass(frozen=True)
class WorkloadState:
    """What a pass needs of the job's Workload."""

    name: str
    resource_version: str
    uid: str
    generation: int
    queue: str
    quota_reserved: bool
    admitted: bool
    finished: bool
    cluster_queue: str | None
    waiting: tuple[str, str] | None  # QuotaReserved False: (reason, message)
    evicted: tuple[str, str] | None  # Evicted True: (reason, message)
    conditions: tuple[Mapping[str, Any], ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)  # pods per pod set, as Kueue counts them
    dispatched_to: str | None = None  # MultiKueue: the worker cluster that runs the job
    # Where the admission says each pod set runs (its flavors' node labels and tolerations), or why it
    # cannot be applied (a flavor that cannot be read, a node label the template sets otherwise).
    placements: Mapping[str, Placement] = field(default_factory=dict)
    placement_error: str | None = None
    placement_pending: str | None = None  # a flavor not seen yet: wait for it


def _condition(conditions: list[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((cond for cond in conditions if cond.get("type") == type_), None)


def _true(conditions: list[Mapping[str, Any]], type_: str) -> bool:
    cond = _condition(conditions, type_)
    return cond is not None and cond.get("status") == "True"


def parse_workload(body: Mapping[str, Any], flavors: Mapping[str, Mapping[str, Any]] | None = None
                   ) -> WorkloadState:
    """What a pass needs of the Workload; `flavors` (ResourceFlavors by name) place its admitted pod sets."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    conditions = list(status.get("conditions") or [])
    reserved = _condition(conditions, "QuotaReserved")
    evicted = _condition(conditions, "Evicted")
    admission = status.get("admission") or {}
    return WorkloadState(
        name=str(meta.get("name", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        queue=str(spec.get("queueName", "")),
        quota_reserved=_true(conditions, "QuotaReserved"),
        admitted=_true(conditions, "Admitted"),
        finished=_true(conditions, "Finished"),
        cluster_queue=admission.get("clusterQueue"),
        waiting=(str(reserved.get("reason", "")), str(reserved.get("message", "")))
        if reserved is not None and reserved.get("status") == "False" else None,
        evicted=(str(evicted.get("reason", "")), str(evicted.get("message", "")))
        if evicted is not None and evicted.get("status") == "True" else None,
        conditions=tuple(conditions),
        counts=_counts(spec),
        dispatched_to=str(status["clusterName"]) if status.get("clusterName") else None,
        **_placements(body, flavors or {}),
    )


def _counts(spec: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod_set in spec.get("podSets") or []:
        if isinstance(pod_set, Mapping) and isinstance(pod_set.get("count", 1), int):
            counts[str(pod_set.get("name", ""))] = int(pod_set.get("count", 1))
    return counts


def _placements(body: Mapping[str, Any], flavors: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    try:
        return {"placements": admission_placements(body, flavors)}
    except PlacementError as err:
        return {"placements": {}, "placement_error" if err.permanent else "placement_pending": str(err)}


def queue_name(job: TrainingJob) -> str | None:
    """The LocalQueue the job asks for, if it is queued through Kueue."""
    return job.metadata.labels.get(c.LABEL_KUEUE_QUEUE) or None


@dataclass
class QueueStep:
    """What one pass does about the queue. `suspend`: True stops the job for the queue, False starts
    an admitted one, None leaves spec.suspend alone."""

    create_workload: bool = False
    suspend: bool | None = None
    release_quota: bool = False
    # The job's size moved from its Workload's: `resize` brings a Workload that holds no quota to the
    # job's pod sets in place; `requeue` deletes one that holds quota for fewer pods (a new one follows).
    resize: bool = False
    requeue: bool = False
    finish: tuple[str, str] | None = None  # (Succeeded|Failed, message) for the Workload
    condition: tuple[ConditionStatus, str, str] | None = None  # the job's Admitted condition: (status, reason, message)
    events: list[Event] = field(default_factory=list)


def _waiting_condition(queue: str, workload: WorkloadState | None) -> tuple[ConditionStatus, str, str]:
    if workload is None or workload.waiting is None:
        return "False", c.REASON_QUEUED, f"waiting for Kueue to admit it from LocalQueue {queue}"
    reason, message = workload.waiting
    # Larger than the ClusterQueue could ever give (Kueue says "> maximum capacity"): never admitted.
    never = reason == c.REASON_INADMISSIBLE or "> maximum capacity" in message
    why = c.REASON_INADMISSIBLE if never else c.REASON_QUEUED
    return "False", why, f"LocalQueue {queue}: {message}" if message else f"waiting in LocalQueue {queue}"


def queue_step(job: TrainingJob, workload: WorkloadState | None, live_pods: bool,
               kueue_served: bool = True) -> QueueStep:
    """Decide the queue's part of one pass. `live_pods`: some pod of the job still exists (an evicted
    job gives its quota back only once they are gone); `kueue_served`: the Workload API exists."""
    queue = queue_name(job)
    if queue is None:
        return QueueStep()
    if job.status.phase in c.TERMINAL_PHASES:
        if workload is not None and not workload.finished:
            outcome = "Succeeded" if job.status.phase == c.PHASE_SUCCEEDED else "Failed"
            return QueueStep(finish=(outcome, f"TrainingJob {job.metadata.name} {outcome.lower()}"))
        return QueueStep()
    if not kueue_served:
        message = (f"label {c.LABEL_KUEUE_QUEUE}={queue} asks Kueue for admission, but the cluster does not serve "
                   "Kueue's Workload API: install Kueue, or remove the label to run without it")
        # The Workload is still asked for: the first one that can be created says Kueue is there now.
        return QueueStep(create_workload=workload is None, suspend=True if not job.spec.suspend else None,
                         condition=("False", c.REASON_KUEUE_MISSING, message))
    prebuilt = job.metadata.labels.get(c.LABEL_KUEUE_PREBUILT_WORKLOAD)
    if workload is None and prebuilt:
        # MultiKueue's copy of a job: the Workload is the manager's, copied here; never one of our own.
        return QueueStep(suspend=True if not job.spec.suspend else None,
                         condition=("False", c.REASON_QUEUED, f"waiting for its Workload {prebuilt}"))
    if workload is None:
        return QueueStep(create_workload=True, suspend=True if not job.spec.suspend else None,
                         condition=_waiting_condition(queue, None))
    if workload.evicted is not None:
        reason, message = workload.evicted
        said = f"evicted by Kueue ({reason}): {message}"
        step = QueueStep(condition=("False", c.REASON_EVICTED, said))
        if not job.spec.suspend:
            step.suspend = True
            step.events.append(Event("Warning", c.REASON_EVICTED, f"{said}; suspending, to resume when admitted again"))
        elif workload.quota_reserved and not live_pods:
            step.release_quota = True
        return step
    wanted = pod_set_counts(job)
    if workload.counts and dict(workload.counts) != wanted and not workload.finished:
        if not workload.quota_reserved:
            step = _queue_step_admission(job, workload, queue)
            step.resize = True
            return step
        if any(n > workload.counts.get(name, 0) for name, n in wanted.items()):
            return _outgrown(job, workload, wanted, live_pods)
    return _queue_step_admission(job, workload, queue)


def _outgrown(job: TrainingJob, workload: WorkloadState, wanted: Mapping[str, int], live_pods: bool) -> QueueStep:
    """A job scaled past the pods its Workload holds quota for never runs them: it is suspended (its
    workers checkpoint), and once they are gone its Workload is deleted, so the next pass asks Kueue again
    for the new size (Kueue's own integrations do this for a job that no longer matches its Workload).
    Scaled down, a job runs within what it holds."""
    admitted, now = workload.counts.get(POD_SET_WORKERS, 0), wanted[POD_SET_WORKERS]
    said = (f"scaled to {now} workers after ClusterQueue {workload.cluster_queue} admitted {admitted}: "
            f"asking Kueue again for {now}; it resumes from its checkpoint when admitted")
    step = QueueStep(condition=("False", c.REASON_RESIZED, said))
    if not job.spec.suspend:
        step.suspend = True
        step.events.append(Event("Normal", c.REASON_RESIZED, f"{said}; suspending"))
    elif not live_pods:
        step.requeue = True
    return step


def _queue_step_admission(job: TrainingJob, workload: WorkloadState, queue: str) -> QueueStep:
    """The queue's step for a Workload that matches the job (or holds quota for more than it runs)."""
    queue_suspended = c.ANNOTATION_QUEUE_SUSPENDED in job.metadata.annotations
    if job.spec.suspend:
        unplaceable = workload.placement_error or next(
            (why for p in workload.placements.values()
             if (why := selector_conflict(job.spec.template.node_selector, p)) is not None), None)
        if workload.admitted and queue_suspended and unplaceable is not None:
            # Kueue's integrations finish such a Workload (FailedToStart): its quota goes to the next job.
            message = f"admitted by ClusterQueue {workload.cluster_queue}, but {unplaceable}"
            failed: tuple[ConditionStatus, str, str] = ("False", c.REASON_FAILED_TO_START, message)
            if workload.finished:
                return QueueStep(condition=failed)
            return QueueStep(finish=("Failed", message), condition=failed,
                             events=[Event("Warning", c.REASON_FAILED_TO_START, message)])
        if workload.admitted and queue_suspended and workload.placement_pending is not None:
            return QueueStep(condition=("False", c.REASON_QUEUED, f"admitted by ClusterQueue "
                                        f"{workload.cluster_queue}; waiting: {workload.placement_pending}"))
        if workload.admitted and queue_suspended:
            message = f"admitted by ClusterQueue {workload.cluster_queue} from LocalQueue {queue}"
            return QueueStep(suspend=False, condition=("True", c.REASON_ADMITTED, message),
                             events=[Event("Normal", c.REASON_ADMITTED, message)])
        if workload.admitted:
            held = f"admitted by ClusterQueue {workload.cluster_queue}; suspended by spec.suspend"
            return QueueStep(condition=("True", c.REASON_ADMITTED, held))
        return QueueStep(condition=_waiting_condition(queue, workload))
    if not workload.admitted:
        return QueueStep(suspend=True, condition=_waiting_condition(queue, workload))
    return QueueStep(condition=("True", c.REASON_ADMITTED,
                                f"admitted by ClusterQueue {workload.cluster_queue} from LocalQueue {queue}"))


def unreachable_workers(step: QueueStep, unreachable: str | None) -> QueueStep:
    """A MultiKueue job waiting in the manager's queue whose worker clusters cannot be reached says so,
    naming them, instead of Kueue's words about an inactive ClusterQueue."""
    if unreachable is None or step.condition is None or step.condition[1] not in (c.REASON_QUEUED,
                                                                                    c.REASON_INADMISSIBLE):
        return step
    step.condition = ("False", c.REASON_WORKER_CLUSTER_UNAVAILABLE, unreachable)
    return step


def _set(conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str,
         generation: int, stamp: str) -> list[dict[str, Any]]:
    """Kueue's conditions are metav1.Conditions: lastTransitionTime moves only when the status does."""
    out, found = [], False
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(cond)
            continue
        found = True
        moved = cond.get("status") != status
        out.append({**cond, "status": status, "reason": reason, "message": message[:32768],
                    "observedGeneration": generation,
                    "lastTransitionTime": stamp if moved else cond.get("lastTransitionTime", stamp)})
    if not found:
        out.append({"type": type_, "status": status, "reason": reason, "message": message[:32768],
                    "observedGeneration": generation, "lastTransitionTime": stamp})
    return out


def released_status(workload: WorkloadState, now: datetime) -> dict[str, Any]:
    """The Workload status that gives an evicted job's quota back (Kueue's UnsetQuotaReservation with
    a Requeued condition): the job is stopped, so Kueue may queue it again."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    reason, message = workload.evicted or ("", "")
    conditions = [dict(cond) for cond in workload.conditions]
    requeued = reason in ("Preempted", "NodeFailures")
    conditions = _set(conditions, "Requeued", "True" if requeued else "False", reason, message,
                      workload.generation, stamp)
    conditions = _set(conditions, "QuotaReserved", "False", "Pending", message, workload.generation, stamp)
    if any(cond.get("type") == "Admitted" for cond in conditions):
        conditions = _set(conditions, "Admitted", "False", "NoReservation", "The workload has no reservation",
                          workload.generation, stamp)
    return {"admission": None, "conditions": conditions}


def finished_status(workload: WorkloadState, outcome: tuple[str, str], now: datetime) -> dict[str, Any]:
    """The Workload status that frees a finished job's quota for the next job in the queue."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = _set([dict(cond) for cond in workload.conditions], "Finished", "True", outcome[0], outcome[1],
                      workload.generation, stamp)
    return {"conditions": conditions}
