"""Desired versus observed: the one reconcile decision, as a pure function.

`reconcile(job, pods, now)` looks at a TrainingJob and the pods it owns and
returns a Plan: what to create, what to delete, the new status and the Events
to record. It applies the policies (`ludus.trainingjob.policies`) in a fixed order, asks
`ludus.trainingjob.status.compute_status` for the status, and never talks to the API server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ludus.api import constants as c
from ludus.api.conditions import CREATED, UPDATED, get_condition
from ludus.api.models import InitializedFrom, TrainingJob, TrainingJobStatus
from ludus.builders import pods as pod_builders
from ludus.builders.netpol import NO_POLICY, PolicySettings, build_network_policy, policy_wanted
from ludus.builders.podgroup import build_pod_group, effective_gang, gang_unavailable
from ludus.builders.service import build_headless_service
from ludus.builders.workload import POD_SET_STORE, POD_SET_WORKERS, build_pod_sets, build_workload
from ludus.trainingjob.observe import PodObservation, current_workers, own_pods, rendezvous_pod
from ludus.trainingjob.placement import Placement, PlacementError, place_pod
from ludus.trainingjob.policies.capacity import NodeCapacity, capacity_problem
from ludus.trainingjob.policies.deadline import deadline_exceeded, seconds_left
from ludus.trainingjob.policies.decision import Decision, Event, Finish, PodDeletion, Restart, cleanup
from ludus.trainingjob.policies.failure import failed_workers
from ludus.trainingjob.policies.init import InitOutcome, pinned_model
from ludus.trainingjob.policies.stall import stall_deadline, stalled
from ludus.trainingjob.policies.success import succeeded
from ludus.trainingjob.policies.suspension import SUSPENDED_MESSAGE, suspend_deletions
from ludus.trainingjob.policies.ttl import ttl_seconds_left
from ludus.trainingjob.progress import ProgressSample, Unavailable
from ludus.trainingjob.queueing import (
    QueueStep,
    WorkloadState,
    finished_status,
    queue_step,
    released_status,
    unreachable_workers,
)
from ludus.trainingjob.status import (
    compute_status,
    init_blocked_status,
    invalid_spec_status,
    progress_status,
    scheduling_wake,
)

__all__ = ["Event", "Plan", "PodDeletion", "invalid_spec_plan", "reconcile"]


@dataclass
class Plan:
    """Everything one reconcile pass wants done, in the order it must happen."""

    status: TrainingJobStatus
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[PodDeletion] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    delete_job: bool = False
    # Kueue: set spec.suspend for the queue (True) or lift the queue's suspension (False); the job's
    # Workload to create; the Workload status to write (quota given back, or the job finished).
    queue_suspend: bool | None = None
    workload: dict[str, Any] | None = None
    workload_status: tuple[WorkloadState, dict[str, Any]] | None = None
    # The Workload's pod sets to bring to the job's (it holds no quota), or None to delete it (it holds
    # quota for fewer pods than the job now runs: a new one is asked for).
    workload_change: tuple[WorkloadState, list[dict[str, Any]] | None] | None = None
    requeue_after: float | None = None


@dataclass(frozen=True)
class _Pass:
    """One pass's inputs, so each branch computes the status the same way: with what every branch
    decides alike (Kueue's word, the pinned model, a job too large for the nodes) in `base`."""

    job: TrainingJob
    pods: list[PodObservation]
    now: datetime
    progress: ProgressSample | None
    unavailable: Unavailable | None
    base: Decision
    placements: Mapping[str, Placement] = field(default_factory=dict)  # Kueue's admission, by pod set

    def status(self, **decided: Any) -> TrainingJobStatus:
        return compute_status(self.job, self.pods, replace(self.base, **decided), self.now, self.progress,
                              self.unavailable)


def _keep_finished(p: _Pass) -> Plan:
    """A terminal job: keep cleaning per policy and honour ttlSecondsAfterFinished."""
    job = p.job
    plan = Plan(status=p.status(), delete=cleanup(p.pods, job.spec.clean_pod_policy, c.REASON_JOB_FINISHED))
    left = ttl_seconds_left(job, job.status.completion_time, p.now)
    if left is not None and left <= 0:
        plan.delete_job = True
        message = f"deleting the job {job.spec.ttl_seconds_after_finished}s after it finished"
        plan.events.append(Event("Normal", c.REASON_TTL_EXPIRED, message))
    elif left is not None:
        plan.requeue_after = left
    return plan


def _suspended(p: _Pass) -> Plan:
    plan = Plan(status=p.status(suspend=True), delete=suspend_deletions(p.pods))
    if p.job.status.phase != c.PHASE_SUSPENDED:
        plan.events.append(Event("Normal", c.REASON_SUSPENDED, SUSPENDED_MESSAGE))
    return plan


def _finish_job(p: _Pass, finish: Finish) -> Plan:
    """Move the job to a terminal phase, clean its pods and record why."""
    job = p.job
    plan = Plan(
        status=p.status(finish=finish),
        delete=cleanup(p.pods, job.spec.clean_pod_policy, finish.reason),
        events=[Event("Normal" if finish.phase == c.PHASE_SUCCEEDED else "Warning", finish.reason, finish.message)],
    )
    if job.spec.ttl_seconds_after_finished is not None:
        plan.requeue_after = float(job.spec.ttl_seconds_after_finished)
    return plan


def _placed(pod: dict[str, Any], placement: Placement | None) -> dict[str, Any] | None:
    """The pod where its admission puts it; None where it cannot go (a conflict the queue step reports
    before the job starts: a pod is never created outside its flavor)."""
    try:
        return place_pod(pod, placement)
    except PlacementError:
        return None


def _children(
    job: TrainingJob,
    pods: list[PodObservation],
    workers: dict[int, PodObservation],
    expected: frozenset[str],
    gang: str,
    policy: PolicySettings = NO_POLICY,
    placements: Mapping[str, Placement] | None = None,
) -> tuple[list[dict[str, Any]], list[PodDeletion]]:
    """What is missing (the store, then each absent worker, never over a pod still terminating) and
    what is surplus (workers above the desired count, highest first: not restarts). New pods go where
    Kueue's admission placed their pod set (`placements`)."""
    placements = placements or {}
    desired = job.spec.replicas
    delete = [
        PodDeletion(pod.name, pod.uid, c.REASON_SCALED)
        for index, pod in sorted(workers.items(), reverse=True)
        if index >= desired and not pod.deleting
    ]
    create: list[dict[str, Any]] = []
    rdzv = rendezvous_pod(pods)
    if rdzv is None:
        manifest = _placed(pod_builders.build_rendezvous_pod(job, gang), placements.get(POD_SET_STORE))
        if manifest is not None and manifest["metadata"]["name"] not in expected:
            create.append(manifest)
    elif rdzv.finished and not rdzv.deleting:
        delete.append(PodDeletion(rdzv.name, rdzv.uid, c.REASON_RENDEZVOUS_ENDED))
    store_live = rdzv is not None and not rdzv.deleting
    for index in range(desired):
        if index in workers or not store_live and rdzv is not None:
            continue
        manifest = _placed(pod_builders.build_worker_pod(job, index, gang), placements.get(POD_SET_WORKERS))
        if manifest is not None and manifest["metadata"]["name"] not in expected:
            create.append(manifest)
    scaled = bool(job.status.desired) and job.status.desired != desired
    if create or scaled:
        # The group is applied (not just created) so that a scale moves its minimum with it.
        pod_group = build_pod_group(job, gang)
        network = [build_network_policy(job, policy)] if create and policy_wanted(job, policy) else []
        create[:0] = [*([build_headless_service(job)] if create else []), *network,
                      *([pod_group] if pod_group else [])]
    return create, delete


def managed_here(spec: Mapping[str, Any]) -> bool:
    """Whether this operator runs the job (`spec.managedBy` unset or ours) or at least keeps its queue
    part (MultiKueue's); a job another controller manages is left alone, as Kubernetes' Job controller does."""
    return spec.get("managedBy") in (None, c.MANAGED_BY_LUDUS, c.MANAGED_BY_MULTIKUEUE)


def dispatched(job: TrainingJob, workload: WorkloadState | None) -> bool:
    """A job MultiKueue runs in a worker cluster, once its Workload is placed there: its status is the
    worker's copy's (MultiKueue writes it), its pods are there."""
    placed = workload is not None and workload.dispatched_to is not None
    return job.spec.managed_by == c.MANAGED_BY_MULTIKUEUE and placed


def _dispatched(job: TrainingJob, step: QueueStep, workload: WorkloadState | None, now: datetime, gang: str) -> Plan:
    """Only the queue's part: the Workload's life (finished when the copied status ends), the suspension."""
    step.condition = None  # the status, conditions included, is the worker's
    return with_queue(Plan(status=job.status), job, step, workload, now, gang)


def reconcile(
    job: TrainingJob,
    pods: list[PodObservation],
    now: datetime,
    expected: frozenset[str] = frozenset(),
    gang: str = "none",
    progress: ProgressSample | None = None,
    unavailable: Unavailable | None = None,
    workload: WorkloadState | None = None,
    kueue_served: bool = True,
    policy: PolicySettings = NO_POLICY,
    init: InitOutcome | None = None,
    too_large: str | None = None,
    refused: str | None = None,
    update_refused: str | None = None,
    unreachable: str | None = None,
) -> Plan:
    """Decide one reconcile pass.

    `expected` names pods this operator created whose watch events have not
    arrived yet: they count as existing, so a stale view never re-creates them.
    `workload` is the job's Kueue Workload, for a job queued through Kueue. `init` is spec.init
    resolved (its model is pinned in the status); `too_large` is what `capacity_of` found for a job
    a pod of which the scheduler cannot place; `refused` is the API server's refusal of a child's
    create in an earlier pass, `update_refused` its refusal of a change (the Kueue suspension, the
    Workload's status); `unreachable` names the worker clusters a waiting MultiKueue job's queue cannot reach.
    """
    pods = own_pods(job.metadata.uid, pods)
    step = unreachable_workers(queue_step(job, workload, bool(pods), kueue_served), unreachable)
    if dispatched(job, workload):
        return _dispatched(job, step, workload, now, gang)
    unavailable_gang = gang_unavailable(job, gang)
    gang = effective_gang(job, gang)
    pinned = pinned_model(job.status.initialized_from, init, progress.init if progress else None, pods)
    base = Decision(admission=step.condition, pinned=pinned, too_large=too_large, refused=refused,
                    update_refused=update_refused)
    placements = workload.placements if workload is not None and workload.admitted else {}
    plan = _decide(_Pass(job, pods, now, progress, unavailable, base, placements), expected, gang, step, policy)
    if any(m["kind"] == "Pod" and m["metadata"]["labels"].get(c.LABEL_ROLE) == c.ROLE_RENDEZVOUS for m in plan.create):
        # Said once per start, with the store's creation: what the job runs without, or with more of.
        if unavailable_gang:
            plan.events.append(Event("Warning", c.REASON_NO_GANG, unavailable_gang))
        relaxed = pod_builders.relaxed_security(job)
        if relaxed:
            plan.events.append(Event("Normal", c.REASON_SECURITY_RELAXED, f"as the template asks: {relaxed}"))
    plan = with_queue(plan, job, step, workload, now, gang)
    plan.events.extend(_model_loaded(job.status.initialized_from, plan.status.initialized_from))
    for kind, words in ((CREATED, refused), (UPDATED, update_refused)):
        before = get_condition(job.status, kind.type)
        if words is not None and (before is None or before.status != "False" or before.message != words):
            plan.events.append(Event("Warning", kind.refused, words))
    plan.events.extend(_unreadable_events(job.status, plan.status))
    if too_large is not None:
        # One Warning per message of the capacity problem, instead of the scheduler's words.
        plan.events = [e for e in plan.events if e.reason not in (c.REASON_UNSCHEDULABLE, c.REASON_TOO_LARGE)]
        before = get_condition(job.status, c.COND_SCHEDULED)
        if before is None or before.reason != c.REASON_TOO_LARGE or before.message != too_large:
            plan.events.append(Event("Warning", c.REASON_TOO_LARGE, too_large))
    return plan


# Seconds between looks at a queued job while the cluster serves no Kueue.
KUEUE_RECHECK_SECONDS = 30.0


def with_queue(plan: Plan, job: TrainingJob, step: QueueStep, workload: WorkloadState | None, now: datetime,
               gang: str = "none") -> Plan:
    """Carry the queue's step into the plan: an Event when the Admitted condition's reason changes,
    the Workload to create or update, and spec.suspend to set or lift."""
    plan.queue_suspend = step.suspend
    plan.events.extend(step.events)
    if step.create_workload:
        plan.workload = build_workload(job, gang)
    if workload is not None and (step.resize or step.requeue):
        plan.workload_change = (workload, build_pod_sets(job, gang) if step.resize else None)
    if workload is not None and step.finish is not None:
        plan.workload_status = (workload, finished_status(workload, step.finish, now))
    elif workload is not None and step.release_quota:
        plan.workload_status = (workload, released_status(workload, now))
    if step.condition is None:
        return plan
    _, reason, message = step.condition
    if reason in (c.REASON_KUEUE_MISSING, c.REASON_WORKER_CLUSTER_UNAVAILABLE):
        # Look again later: Kueue (or the worker cluster) may be there meanwhile, and nothing else would
        # wake the job.
        plan.requeue_after = min(plan.requeue_after or KUEUE_RECHECK_SECONDS, KUEUE_RECHECK_SECONDS)
    before = get_condition(job.status, c.COND_ADMITTED)  # the condition itself is the status' (Decision.admission)
    waiting = reason in (c.REASON_QUEUED, c.REASON_INADMISSIBLE, c.REASON_KUEUE_MISSING,
                         c.REASON_WORKER_CLUSTER_UNAVAILABLE)
    # Queued: once per reason (Kueue's counts in the message move); what blocks a job: once per message.
    moved = before is None or before.reason != reason or (reason != c.REASON_QUEUED and before.message != message)
    if waiting and moved:
        plan.events.append(Event("Normal" if reason == c.REASON_QUEUED else "Warning", reason, message))
    return plan


def unschedulable(plan: Plan) -> bool:
    """The scheduler cannot place one of the job's pods: worth asking whether it ever could."""
    cond = get_condition(plan.status, c.COND_SCHEDULED)
    return cond is not None and cond.status == "False" and cond.reason in (c.REASON_UNSCHEDULABLE, c.REASON_TOO_LARGE)


def capacity_of(job: TrainingJob, nodes: list[NodeCapacity], gang: str = "none") -> str | None:
    """Whether no node (or all of them together) could ever hold the job: which resource and how much.
    Asked only for a job a pod of which the scheduler cannot place (`unschedulable`)."""
    gang = effective_gang(job, gang)
    worker = pod_builders.build_worker_pod(job, 0, gang)["spec"]
    store = pod_builders.build_rendezvous_pod(job, gang)["spec"]
    return capacity_problem(worker, store, job.spec.min_replicas, nodes)


def _decide(p: _Pass, expected: frozenset[str], gang: str, step: QueueStep, policy: PolicySettings) -> Plan:
    job, pods, now = p.job, p.pods, p.now
    if job.status.phase in c.TERMINAL_PHASES:
        return _keep_finished(p)
    if job.spec.suspend or step.suspend:
        return _suspended(p)
    over = deadline_exceeded(job, job.status.start_time, now)
    if over is not None:
        return _finish_job(p, over)

    workers = current_workers(pods)
    observed = {pod.uid for pod in pods}
    counted = frozenset(u for u in job.status.counted_failures if u in observed)
    failures = failed_workers(job, workers, pods, counted, job.status.restarts)
    if failures.finish is not None:
        return _finish_job(p, failures.finish)
    restarts: tuple[Restart, ...] = failures.restarts
    replacing = failures.replacing
    if not replacing:
        # The stall clock reads the step as this pass will record it.
        stall = stalled(job, progress_status(job.status.progress, p.progress), pods, job.status.restarts, now)
        if isinstance(stall, Finish):
            return _finish_job(p, stall)
        if stall is not None:
            restarts, replacing = (stall,), stall.indexes
    done = succeeded(job, workers, replacing)
    if done is not None:
        return _finish_job(p, done)

    create, surplus = _children(job, pods, workers, expected, gang, policy, p.placements)
    starting = bool(create) or any(not pod.deleting for pod in workers.values())
    status = p.status(restarts=restarts, replacing=replacing, starting=starting)
    deletions = [d for r in restarts for d in r.deletions] + list(failures.deletions) + surplus
    plan = Plan(status=status, create=create, delete=deletions, events=_events(job, status, restarts))
    wakes = [w for w in (_wake(job, status, now), scheduling_wake(pods, now)) if w is not None]
    plan.requeue_after = min(wakes) if wakes else None
    return plan


def _unreadable_events(old: TrainingJobStatus, new: TrainingJobStatus) -> list[Event]:
    """One Warning per set of unreadable pods (the condition's message), none while it stays the same."""
    before, after = get_condition(old, c.COND_PODS_READABLE), get_condition(new, c.COND_PODS_READABLE)
    if after is None or after.status != "False" or (before is not None and before.message == after.message):
        return []
    return [Event("Warning", c.REASON_POD_UNREADABLE, after.message)]


def _events(job: TrainingJob, status: TrainingJobStatus, restarts: tuple[Restart, ...]) -> list[Event]:
    """What a going job's pass records: its restarts, a resume, a scale, a recovery, progress lost or back."""
    events = [Event("Warning", r.reason, r.message) for r in restarts]
    before, after = get_condition(job.status, c.COND_PROGRESS), get_condition(status, c.COND_PROGRESS)
    if after is not None and (before is None or before.status != after.status):
        if after.status == "False":
            events.append(Event("Warning", after.reason, after.message))
        elif before is not None:
            events.append(Event("Normal", after.reason, after.message))
    before, after = get_condition(job.status, c.COND_SCHEDULED), get_condition(status, c.COND_SCHEDULED)
    if after is not None and after.status == "False" and (
            before is None or before.status != "False" or before.reason != after.reason):
        events.append(Event("Warning", after.reason, after.message))
    if job.status.phase == c.PHASE_SUSPENDED:
        events.append(Event("Normal", c.REASON_RESUMED, "spec.suspend is false: recreating the pods"))
    if job.status.desired and job.status.desired != job.spec.replicas:
        message = f"scaled from {job.status.desired} to {job.spec.replicas} workers"
        events.append(Event("Normal", c.REASON_SCALED, message))
    if status.phase == c.PHASE_RUNNING and job.status.phase == c.PHASE_RESTARTING:
        # A first start is in the Running condition; a recovery is worth an Event in the history.
        running = get_condition(status, c.COND_RUNNING)
        message = running.message if running else ""
        events.append(Event("Normal", c.REASON_ALL_RUNNING, f"{message} again after {status.restarts} restarts"))
    return events


def _wake(job: TrainingJob, status: TrainingJobStatus, now: datetime) -> float | None:
    """When the next pass must look even if nothing changes: the active deadline, the stall deadline."""
    wake = []
    left = seconds_left(job, status.start_time, now)
    if left is not None:
        wake.append(max(left, 0.0))
    stall_at = stall_deadline(job, status, status.progress)  # None while Restarting
    if stall_at is not None:
        wake.append(max((stall_at - now).total_seconds(), 0.0))
    return min(wake) if wake else None


def invalid_spec_plan(job_status: TrainingJobStatus, generation: int, message: str, now: datetime) -> Plan:
    """A spec the operator refuses: Failed with InvalidSpec (or, once started, SpecValid False), nothing
    deleted, the message kept in status; the Event goes out when the status did not say so yet."""
    status = invalid_spec_status(job_status, generation, message, now)
    said = any(cond.reason == c.REASON_INVALID_SPEC and cond.message == message and cond.status == "False"
               for cond in job_status.conditions if cond.type == c.COND_SPEC_VALID) or any(
        cond.reason == c.REASON_INVALID_SPEC and cond.message == message and cond.status == "True"
        for cond in job_status.conditions if cond.type == c.COND_FAILED)
    return Plan(status=status, events=[] if said else [Event("Warning", c.REASON_INVALID_SPEC, message)])


# Seconds between looks at a job that waits for init.fromJob's model (its events do not wake this job).
INIT_WAIT_SECONDS = 5.0


def init_blocked_plan(job: TrainingJob, outcome: InitOutcome, now: datetime) -> Plan:
    """A job whose starting model is not there: it waits (Pending, saying for what), or fails when
    the model can never come; no pods either way. The Event goes out when the reason changes."""
    status = init_blocked_status(job, outcome.waiting, outcome.unusable, now)
    if outcome.unusable is not None:
        if job.status.phase in c.TERMINAL_PHASES:
            return Plan(status=status)
        return Plan(status=status, events=[Event("Warning", c.REASON_INIT_UNUSABLE, outcome.unusable)])
    message = outcome.waiting or ""
    before = get_condition(job.status, c.COND_INITIALIZED)
    events = [] if before is not None and before.message == message else [
        Event("Warning", c.REASON_INIT_WAITING, message)]
    return Plan(status=status, events=events, requeue_after=INIT_WAIT_SECONDS)


def _model_loaded(before: InitializedFrom | None, after: InitializedFrom | None) -> list[Event]:
    """Once, when the trainer first reports the model it loaded."""
    if after is None or not after.sha256 or (before is not None and before.sha256):
        return []
    fresh = ", ".join(after.reinitialized or []) or "none"
    return [Event("Normal", c.REASON_MODEL_LOADED, f"started from {after.file} (step {after.step}, "
                  f"sha256 {after.sha256[:12]}){f' of {after.job}' if after.job else ''}; re-initialised: {fresh}")]
