"""Desired versus observed: the one reconcile decision, as a pure function.

`reconcile(job, pods, now)` looks at a TrainingJob and the pods it owns and
returns a Plan: what to create, what to delete, the new status and the Events
to record. Create, resume, update and every pod change go through it, so they
all converge the same way; it never talks to the API server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from ludus.api import constants as c
from ludus.api.models import TrainingJob, TrainingJobStatus
from ludus.build import labels, pods as pod_builders
from ludus.build.podgroup import build_pod_group
from ludus.build.service import build_headless_service
from ludus.api.models import Progress, RestartRecord
from ludus.observe import PodObservation
from ludus.progress import ProgressSample
from ludus.status import get_condition, upsert_condition, with_phase


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


@dataclass
class Plan:
    """Everything one reconcile pass wants done, in the order it must happen."""

    status: TrainingJobStatus
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[PodDeletion] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    delete_job: bool = False
    suspend_for_queue: bool = False
    requeue_after: float | None = None


@dataclass(frozen=True)
class _Failure:
    pod: PodObservation
    reason: str
    message: str
    retryable: bool


def _workers(pods: Iterable[PodObservation]) -> dict[int, PodObservation]:
    """Worker pods by index; of two with one index, the newer wins (the older is being replaced)."""
    out: dict[int, PodObservation] = {}
    for pod in pods:
        if pod.role != c.ROLE_WORKER or pod.index is None:
            continue
        seen = out.get(pod.index)
        if seen is None or (pod.created_at or datetime.min) >= (seen.created_at or datetime.min):
            out[pod.index] = pod
    return out


def _rendezvous(pods: Iterable[PodObservation]) -> PodObservation | None:
    return next((p for p in pods if p.role == c.ROLE_RENDEZVOUS), None)


def classify_failure(job: TrainingJob, pod: PodObservation) -> _Failure | None:
    """Why a worker pod needs replacing, and whether the restart policy allows it; None if it is fine."""
    disrupted = pod.disrupted
    if disrupted:
        return _Failure(pod, disrupted, f"worker pod {pod.name} ended by {disrupted}", retryable=True)
    if pod.phase != "Failed":
        return None
    code = pod.exit_code
    shown = "unknown" if code is None else str(code)
    policy = job.spec.restart_policy
    if policy == c.RESTART_NEVER:
        return _Failure(pod, c.REASON_NEVER_RESTART, f"worker pod {pod.name} failed with exit code {shown}", False)
    if policy == c.RESTART_EXIT_CODE:
        retryable = code is not None and (code >= 128 or code in job.spec.retryable_exit_codes)
        reason = c.REASON_POD_FAILED if retryable else c.REASON_EXIT_CODE_FATAL
        return _Failure(pod, reason, f"worker pod {pod.name} failed with exit code {shown}", retryable)
    return _Failure(pod, c.REASON_POD_FAILED, f"worker pod {pod.name} failed with exit code {shown}", True)


def closes_rendezvous(pod: PodObservation) -> bool:
    """A torchrun agent that exits by itself after its workers failed closes the c10d rendezvous for
    good (torch keeps it open only when the agent dies by a signal, exit code >= 128): no replacement
    can join it, so the whole group must start again with a fresh store."""
    return pod.phase == "Failed" and not pod.disrupted and pod.exit_code is not None and pod.exit_code < 128


def needs_queue_suspension(job: TrainingJob) -> bool:
    """A job for a Kueue queue starts suspended until admitted, unless it was queued or started before."""
    return (
        c.LABEL_KUEUE_QUEUE in job.metadata.labels
        and c.ANNOTATION_QUEUED not in job.metadata.annotations
        and not job.spec.suspend
        and job.status.start_time is None
        and not any(cond.type == c.COND_CREATED for cond in job.status.conditions)
    )


def restart_limit(job: TrainingJob) -> int:
    """Recreations allowed: backoffLimit, and elastic.maxRestarts when that is lower."""
    limit = job.spec.backoff_limit
    if job.spec.elastic:
        limit = min(limit, job.spec.elastic.max_restarts)
    return limit


def _cleanup(pods: Iterable[PodObservation], policy: str, why: str) -> list[PodDeletion]:
    """Pods a finished job deletes, per cleanPodPolicy."""
    out = []
    for pod in pods:
        if pod.deleting:
            continue
        if policy == c.CLEAN_ALL or (policy == c.CLEAN_RUNNING and not pod.finished):
            out.append(PodDeletion(pod.name, pod.uid, why))
    return out


def progress_status(old: Progress | None, sample: ProgressSample | None) -> Progress | None:
    """The status' progress record; it moves only with the step, so a steady job costs no writes."""
    if sample is None or (old is not None and old.step == sample.step):
        return old
    return Progress(
        step=sample.step,
        epoch=sample.epoch,
        loss=None if sample.loss is None else round(sample.loss, 6),
        samples_per_second=None if sample.samples_per_second is None else round(sample.samples_per_second, 2),
        updated_at=sample.observed_at,
    )


def stall_deadline(job: TrainingJob, status: TrainingJobStatus) -> datetime | None:
    """When a Running job counts as stalled: progressDeadlineSeconds after the later of its last
    step and the moment all its workers last became Running (a hang before the first step counts)."""
    seconds = job.spec.progress_deadline_seconds
    running = get_condition(status, c.COND_RUNNING)
    if seconds is None or status.phase != c.PHASE_RUNNING or running is None or running.status != "True":
        return None
    since = running.last_transition_time
    if since is None:
        return None
    moved = status.progress.updated_at if status.progress else None
    if moved is not None and moved > since:
        since = moved
    return since + timedelta(seconds=seconds)


def _first_created(pods: Iterable[PodObservation], now: datetime) -> datetime:
    """When the job started: its oldest live pod's creation, which an earlier pass may have made
    without writing status (that write can wait), else now."""
    created = [p.created_at for p in pods if p.created_at is not None and not p.deleting]
    return min([*created, now])


def _counts(job: TrainingJob, workers: dict[int, PodObservation], desired: int) -> dict[str, Any]:
    in_range = [p for i, p in workers.items() if i < desired]
    ready = sum(1 for p in in_range if p.ready and p.phase == "Running" and not p.deleting)
    return {
        "desired": desired,
        "active": sum(1 for p in in_range if not p.finished and not p.deleting),
        "ready": ready,
        "succeeded": sum(1 for p in in_range if p.phase == "Succeeded"),
        "failed": sum(1 for p in in_range if p.phase == "Failed"),
        "workers": f"{ready}/{desired}",
        "selector": labels.selector_string(labels.worker_selector(job)),
    }


def _finish(
    job: TrainingJob,
    status: TrainingJobStatus,
    pods: list[PodObservation],
    phase: str,
    reason: str,
    message: str,
    now: datetime,
) -> Plan:
    """Move the job to a terminal phase, clean its pods and record why."""
    conditions = with_phase(list(status.conditions), phase, reason, message, now)
    new = status.model_copy(
        update={"phase": phase, "conditions": conditions, "completion_time": status.completion_time or now}
    )
    kind = "Normal" if phase == c.PHASE_SUCCEEDED else "Warning"
    plan = Plan(
        status=new,
        delete=_cleanup(pods, job.spec.clean_pod_policy, reason),
        events=[Event(kind, reason, message)],
    )
    if job.spec.ttl_seconds_after_finished is not None:
        plan.requeue_after = float(job.spec.ttl_seconds_after_finished)
    return plan


def _finished(job: TrainingJob, pods: list[PodObservation], base: TrainingJobStatus, now: datetime) -> Plan:
    """A terminal job: keep cleaning per policy and honour ttlSecondsAfterFinished."""
    plan = Plan(status=base, delete=_cleanup(pods, job.spec.clean_pod_policy, "JobFinished"))
    ttl = job.spec.ttl_seconds_after_finished
    if ttl is not None:
        done = base.completion_time or now
        left = (done + timedelta(seconds=ttl) - now).total_seconds()
        if left <= 0:
            plan.delete_job = True
            plan.events.append(Event("Normal", c.REASON_TTL_EXPIRED, f"deleting the job {ttl}s after it finished"))
        else:
            plan.requeue_after = left
    return plan


def _suspended(job: TrainingJob, pods: list[PodObservation], base: TrainingJobStatus, now: datetime) -> Plan:
    message = "spec.suspend is true: pods deleted, the job is kept"
    conditions = with_phase(list(base.conditions), c.PHASE_SUSPENDED, c.REASON_SUSPENDED, message, now)
    new = base.model_copy(update={"phase": c.PHASE_SUSPENDED, "conditions": conditions, "start_time": None})
    plan = Plan(status=new, delete=[PodDeletion(p.name, p.uid, c.REASON_SUSPENDED) for p in pods if not p.deleting])
    if job.status.phase != c.PHASE_SUSPENDED:
        plan.events.append(Event("Normal", c.REASON_SUSPENDED, message))
    return plan


def _next_phase(
    job: TrainingJob, counts: dict[str, Any], restarted: bool, rendezvous_ready: bool
) -> tuple[str, str, str]:
    """Phase, reason and message for a job that is neither terminal nor suspended."""
    previous = job.status.phase
    ready, desired = counts["ready"], counts["desired"]
    # Workers that already exited 0 are done, not missing: the others are finishing their last steps.
    progressing = ready + counts["succeeded"]
    if progressing >= desired and (rendezvous_ready or counts["succeeded"]):
        return c.PHASE_RUNNING, c.REASON_ALL_RUNNING, f"{ready}/{desired} workers running"
    was_running = previous in (c.PHASE_RUNNING, c.PHASE_RESTARTING)
    if was_running and (restarted or previous == c.PHASE_RESTARTING):
        return c.PHASE_RESTARTING, c.REASON_WAITING, f"{ready}/{desired} workers running; replacing the rest"
    if previous == c.PHASE_RUNNING:
        # Nothing failed: workers finishing their last step or joining after a scale-up. A job that
        # trained does not go back to Pending.
        return c.PHASE_RUNNING, c.REASON_WAITING, f"{ready}/{desired} workers running; waiting for the rest"
    return c.PHASE_PENDING, c.REASON_WAITING, f"{ready}/{desired} workers running"


def reconcile(
    job: TrainingJob,
    pods: list[PodObservation],
    now: datetime,
    expected: frozenset[str] = frozenset(),
    gang: str = "none",
    progress: ProgressSample | None = None,
) -> Plan:
    """Decide one reconcile pass.

    `expected` names pods this operator created whose watch events have not
    arrived yet: they count as existing, so a stale view never re-creates them.
    """
    # Pods left by an earlier job of the same name (deleted and re-created) share our labels until
    # garbage collection removes them: they are not ours to count or replace.
    pods = [p for p in pods if not p.owner_uid or p.owner_uid == job.metadata.uid]
    observed_uids = {p.uid for p in pods}
    desired = job.spec.replicas
    workers = _workers(pods)
    base = job.status.model_copy(
        update={
            **_counts(job, workers, desired),
            "observed_generation": job.metadata.generation,
            "counted_failures": [u for u in job.status.counted_failures if u in observed_uids],
            "progress": progress_status(job.status.progress, progress),
        }
    )

    if job.status.phase in c.TERMINAL_PHASES:
        return _finished(job, pods, base, now)
    if needs_queue_suspension(job):
        # Kueue's webhook would have set suspend at creation; we do it on first sight instead, once
        # (the annotation remembers), and Kueue admits the job by setting suspend back to false.
        plan = _suspended(job, pods, base, now)
        plan.suspend_for_queue = True
        return plan
    if job.spec.suspend:
        return _suspended(job, pods, base, now)

    # activeDeadlineSeconds counts from the first start (reset by suspend, as Kubernetes Jobs do).
    deadline = job.spec.active_deadline_seconds
    if deadline is not None and base.start_time is not None:
        left = (base.start_time + timedelta(seconds=deadline) - now).total_seconds()
        if left <= 0:
            return _finish(
                job, base, pods, c.PHASE_FAILED, c.REASON_DEADLINE,
                f"the job ran longer than activeDeadlineSeconds={deadline}", now,
            )

    # Failures: count each failed pod once, then decide whether the job goes on.
    counted = list(base.counted_failures)
    restarts = base.restarts
    events: list[Event] = []
    deletions: list[PodDeletion] = []
    replacing: set[int] = set()
    group_restart = False
    cause: tuple[str, str] | None = None  # reason and message of the first restart counted in this pass
    for index, pod in sorted(workers.items()):
        if index >= desired:
            continue
        failure = classify_failure(job, pod)
        if failure is None:
            continue
        if not failure.retryable:
            return _finish(job, base, pods, c.PHASE_FAILED, failure.reason, failure.message, now)
        replacing.add(index)
        if pod.uid not in counted:
            if restarts + 1 > restart_limit(job):
                message = f"{failure.message}; restart limit {restart_limit(job)} reached after {restarts} restarts"
                return _finish(job, base, pods, c.PHASE_FAILED, c.REASON_BACKOFF_LIMIT, message, now)
            restarts += 1
            counted.append(pod.uid)
            group_restart = group_restart or closes_rendezvous(pod)
            scope = "restarting the worker group" if closes_rendezvous(pod) else "replacing it"
            events.append(Event("Warning", failure.reason, f"{failure.message}; {scope} (restart {restarts})"))
            cause = cause or (failure.reason, events[-1].message)
        if not pod.deleting:
            deletions.append(PodDeletion(pod.name, pod.uid, failure.reason))
    if group_restart:
        # The failed agent closed the rendezvous: every worker and the store start afresh. The pods
        # deleted alongside are part of this one restart, so they are marked counted too.
        doomed = {d.uid for d in deletions}
        for pod in pods:
            if pod.uid not in doomed and not pod.deleting and not pod.finished:
                deletions.append(PodDeletion(pod.name, pod.uid, c.REASON_GROUP_RESTART))
                counted.append(pod.uid)
                if pod.index is not None:
                    replacing.add(pod.index)

    # Stall: Running, and the step has not moved for progressDeadlineSeconds (a hung collective keeps
    # every pod Running). The whole group restarts from its checkpoint, counted like any restart.
    stall_at = stall_deadline(job, base)
    stalled = not replacing and stall_at is not None and now >= stall_at
    if stalled:
        seconds = job.spec.progress_deadline_seconds
        step = base.progress.step if base.progress else 0
        message = f"no training progress for {seconds}s (step {step})"
        if restarts + 1 > restart_limit(job):
            message = f"{message}; restart limit {restart_limit(job)} reached after {restarts} restarts"
            return _finish(job, base, pods, c.PHASE_FAILED, c.REASON_BACKOFF_LIMIT, message, now)
        restarts += 1
        for pod in pods:
            if not pod.deleting and not pod.finished:
                deletions.append(PodDeletion(pod.name, pod.uid, c.REASON_STALLED))
                counted.append(pod.uid)
                if pod.index is not None:
                    replacing.add(pod.index)
        message = f"{message}; restarting the worker group (restart {restarts})"
        events.append(Event("Warning", c.REASON_STALLED, message))
        cause = (c.REASON_STALLED, message)

    # Success: all workers exited 0 (elastic: worker 0 did, as torchrun's agents finish together).
    if job.spec.elastic is None:
        done = all(workers.get(i) is not None and workers[i].phase == "Succeeded" for i in range(desired))
    else:
        done = workers.get(0) is not None and workers[0].phase == "Succeeded"
    if done and not replacing:
        base = base.model_copy(update={"restarts": restarts, "counted_failures": counted})
        return _finish(
            job, base, pods, c.PHASE_SUCCEEDED, c.REASON_SUCCEEDED, f"{desired} workers finished training", now
        )

    # Scale down: workers above the desired count go, highest first; they are not restarts.
    for index, pod in sorted(workers.items(), reverse=True):
        if index >= desired and not pod.deleting:
            deletions.append(PodDeletion(pod.name, pod.uid, c.REASON_SCALED))

    # Create what is missing: the store, then each absent worker (never over a pod still terminating).
    create: list[dict[str, Any]] = []
    rdzv = _rendezvous(pods)
    if rdzv is None:
        manifest = pod_builders.build_rendezvous_pod(job)
        if manifest["metadata"]["name"] not in expected:
            create.append(manifest)
    elif rdzv.finished and not rdzv.deleting:
        deletions.append(PodDeletion(rdzv.name, rdzv.uid, "RendezvousEnded"))
    store_live = rdzv is not None and not rdzv.deleting
    for index in range(desired):
        if index in workers or not store_live and rdzv is not None:
            continue
        manifest = pod_builders.build_worker_pod(job, index, gang)
        if manifest["metadata"]["name"] not in expected:
            create.append(manifest)
    if create:
        pod_group = build_pod_group(job, gang)
        create[:0] = [build_headless_service(job), *([pod_group] if pod_group else [])]

    # Pods already there without a start time: created by a pass whose status write was lost.
    first_start = base.start_time is None and (bool(create) or any(not p.deleting for p in workers.values()))
    start_time = _first_created(pods, now) if first_start else base.start_time
    rendezvous_ready = rdzv is not None and rdzv.ready and not rdzv.deleting
    counts = _counts(job, workers, desired)
    phase, reason, message = _next_phase(job, counts, bool(replacing), rendezvous_ready)
    if stalled:
        phase = c.PHASE_RESTARTING
    if phase == c.PHASE_RESTARTING:
        # The Restarting condition says why until the group is whole again, not just "waiting".
        previous = get_condition(job.status, c.COND_RESTARTING)
        if cause is not None:
            reason, message = cause
        elif previous is not None and previous.status == "True":
            reason, message = previous.reason, previous.message
    conditions = list(base.conditions)
    if first_start:
        conditions = upsert_condition(
            conditions, c.COND_CREATED, "True", c.REASON_CREATED, f"created {desired} worker pods", start_time or now
        )
        # No Event here: the Created condition records it, and an Event per job is one more write.
    if job.status.phase == c.PHASE_SUSPENDED:
        events.append(Event("Normal", c.REASON_RESUMED, "spec.suspend is false: recreating the pods"))
    if job.status.desired and job.status.desired != desired:
        events.append(Event("Normal", c.REASON_SCALED, f"scaled from {job.status.desired} to {desired} workers"))
    conditions = with_phase(conditions, phase, reason, message, now)
    if phase == c.PHASE_RUNNING and job.status.phase == c.PHASE_RESTARTING:
        # A first start is in the Running condition; a recovery is worth an Event in the history.
        events.append(Event("Normal", c.REASON_ALL_RUNNING, f"{message} again after {restarts} restarts"))

    status = base.model_copy(
        update={
            "phase": phase,
            "conditions": conditions,
            "restarts": restarts,
            "counted_failures": counted,
            "start_time": start_time,
            "last_restart": RestartRecord(reason=cause[0], message=cause[1], time=now) if cause else base.last_restart,
        }
    )
    plan = Plan(status=status, create=create, delete=deletions, events=events)
    wake = []
    if deadline is not None and start_time is not None:
        wake.append(max((start_time + timedelta(seconds=deadline) - now).total_seconds(), 0.0))
    stall_at = None if stalled else stall_deadline(job, status)
    if stall_at is not None:
        wake.append(max((stall_at - now).total_seconds(), 0.0))
    if wake:
        plan.requeue_after = min(wake)
    return plan


def invalid_spec_plan(job_status: TrainingJobStatus, generation: int, message: str, now: datetime) -> Plan:
    """A spec the operator refuses: Failed with InvalidSpec, nothing deleted, the message kept in status."""
    conditions = with_phase(list(job_status.conditions), c.PHASE_FAILED, c.REASON_INVALID_SPEC, message, now)
    status = job_status.model_copy(
        update={
            "phase": c.PHASE_FAILED,
            "conditions": conditions,
            "observed_generation": generation,
            "completion_time": job_status.completion_time or now,
        }
    )
    return Plan(status=status, events=[Event("Warning", c.REASON_INVALID_SPEC, message)])
