"""The reconcile loop: a work queue of job keys, drained by a few async workers.

Kopf's handlers only feed this queue (they are thin glue). Each pass reads the
job from Kopf's in-memory index (with our own newer write over it, see
`written`) and its pods from the operator's own pod watch (`ludus.runtime.podwatch`;
never a list call), asks the pure `ludus.trainingjob.reconcile.reconcile` what to do, lets the
batcher decide whether the status goes out now, and hands the plan to the
executor (`apply`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.models import TrainingJob, TrainingJobStatus, parse_job, read_status
from ludus.builders import pods as pod_builders
from ludus.builders.netpol import NO_POLICY, PolicySettings
from ludus.builders.podsecurity import PodSecurityLevel, refusal
from ludus.builders.workload import LABEL_JOB_UID
from ludus.controller.apply import Executed, PlanExecutor, refused_retry_delay, status_dump
from ludus.controller.batching import STATUS_BATCH_SECONDS, STATUS_MAX_HOLD_SECONDS, StatusBatcher
from ludus.controller.expectations import Expectations
from ludus.controller.transitions import TransitionMetrics
from ludus.controller.worker import WorkerPool
from ludus.controller.written import WrittenStatus
from ludus.runtime.kube import ApiError, KubeClient, UnsafeName
from ludus.runtime.podwatch import PodIndex, PodWatch
from ludus.runtime.poller import ProgressPoller
from ludus.settings import DEFAULTS
from ludus.trainingjob.multikueue import admission_check_names, cluster_names, config_name, unavailable_clusters
from ludus.trainingjob.observe import PodObservation
from ludus.trainingjob.placement import assigned_flavors
from ludus.trainingjob.policies.capacity import NodeCapacity, parse_node
from ludus.trainingjob.policies.init import resolve_init
from ludus.trainingjob.progress import poll_interval
from ludus.trainingjob.queueing import WorkloadState, parse_workload, queue_name
from ludus.trainingjob.reconcile import (
    Plan,
    capacity_of,
    init_blocked_plan,
    invalid_spec_plan,
    managed_here,
    reconcile,
    unschedulable,
)
from ludus.trainingjob.tracking import job_with_default_tracker

logger = logging.getLogger("ludus.controller")

JobKey = tuple[str, str]  # (namespace, name)

# Delay before retrying after our own status write raced the watch.
# Delay before creating again a pod whose name is still held by a terminating or foreign pod.
NAME_TAKEN_RETRY_SECONDS: Final = 1.0
# Seconds a listing of the nodes serves capacity checks before it is read again.
NODES_SECONDS: Final = 30.0
# Pod security decisions kept by job uid (forgotten all at once past this: they are cheap to redo).
MAX_REMEMBERED_VERDICTS: Final = 10_000
# How long what a queue's MultiKueue worker clusters were found to be is believed, per LocalQueue.
WORKER_CLUSTERS_SECONDS: Final = 10.0

__all__ = ["Controller", "STATUS_BATCH_SECONDS", "STATUS_MAX_HOLD_SECONDS", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _invalid_spec_message(err: ValidationError) -> str:
    return "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" if e["loc"][:1] == ("spec",) else e["msg"]
        for e in err.errors()
    )


@dataclass(frozen=True)
class Refused:
    """The API server's last refusal of one of a job's children (its create, or a change to it), and when
    to try again."""

    message: str | None
    update: str | None
    tries: int
    next_try: float  # time.monotonic()


class Controller:
    """Task lifecycle and retries; each other concern lives in its own object."""

    def __init__(
        self,
        *,
        workers: int = 16,
        gang: str = "none",
        progress_interval: float = DEFAULTS.progress_interval,
        status_batch_seconds: float = STATUS_BATCH_SECONDS,
        status_max_hold_seconds: float = STATUS_MAX_HOLD_SECONDS,
        policy: PolicySettings = NO_POLICY,
        pod_security: str = DEFAULTS.pod_security,
        tracking_uri: str = DEFAULTS.tracking_uri,
    ) -> None:
        self.gang = gang
        self.tracking_uri = tracking_uri
        self.policy = policy
        self.pod_security = cast(PodSecurityLevel, pod_security)
        self._verdicts: dict[str, tuple[int, str | None]] = {}  # uid -> (generation, its pod security verdict)
        self._refused: dict[str, Refused] = {}  # the API server's last refusal of a job's child, by job uid
        # (namespace, LocalQueue) -> (when looked, the unreachable worker clusters it dispatches to)
        self._worker_clusters: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._progress_interval = progress_interval
        self.client: KubeClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: Mapping[Any, Any] | None = None
        self._workloads: Mapping[Any, Any] | None = None
        self._flavors: Mapping[Any, Any] | None = None
        self._nodes: tuple[float, list[NodeCapacity]] | None = None  # (read at, nodes), for capacity checks
        self.pods = PodIndex()
        self.expectations = Expectations()
        self.batcher = StatusBatcher(status_batch_seconds, status_max_hold_seconds, progress_interval=progress_interval)
        self.written = WrittenStatus()
        self.transitions = TransitionMetrics()
        self.executor: PlanExecutor | None = None
        self.now: Callable[[], datetime] = utcnow
        # Cleared while another replica is the active one (peering); reconcile waits for it.
        self.active = asyncio.Event()
        self.active.set()
        self.pool = WorkerPool("reconcile", self.sync, self.active, workers, report_depth=True)
        self.queue = self.pool.queue
        self.progress = ProgressPoller(self._worker0_address, self.enqueue, utcnow, active=self.active.is_set)

    # --- wiring -----------------------------------------------------------------------------------
    def bind_jobs(self, jobs: Mapping[Any, Any]) -> None:
        """Kopf hands its live indexes to handlers only; the first handler call passes the job index here."""
        if self._jobs is None:
            self._jobs = jobs

    def bind_workloads(self, workloads: Mapping[Any, Any], flavors: Mapping[Any, Any] | None = None) -> None:
        """Kueue's Workloads for queued jobs, by job, and its ResourceFlavors by name (both indexes stay
        empty where Kueue is absent)."""
        if self._workloads is None:
            self._workloads = workloads
        if self._flavors is None and flavors is not None:
            self._flavors = flavors

    def _flavors_of(self, workload: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        """The ResourceFlavors the Workload's admission names (one or two), not the whole index, every pass."""
        index = self._flavors
        if index is None:
            return {}
        names = {name for names in assigned_flavors(workload).values() for name in names}
        return {name: next(iter(index[name])) for name in names if name in index and index[name]}

    def _workload(self, key: JobKey, job: TrainingJob) -> WorkloadState | None:
        """The job's Workload from the index (None: not made yet, or the one of an earlier job by that name).
        MultiKueue's copy of a job uses the manager's Workload, named by a label (its UID is the manager's)."""
        if self._workloads is None or key not in self._workloads:
            return None
        prebuilt = job.metadata.labels.get(c.LABEL_KUEUE_PREBUILT_WORKLOAD)
        uid = job.metadata.uid
        body = next((b for b in self._workloads[key]
                     if (b["metadata"].get("name") == prebuilt if prebuilt
                         else b["metadata"].get("labels", {}).get(LABEL_JOB_UID) == uid)), None)
        return parse_workload(body, self._flavors_of(body)) if body is not None else None

    async def _unreachable(self, job: TrainingJob, workload: WorkloadState | None) -> str | None:
        """For a MultiKueue job still waiting in this (manager) cluster's queue: which worker clusters its
        queue dispatches to cannot be reached (looked up at most every WORKER_CLUSTERS_SECONDS per queue)."""
        queue = queue_name(job)
        placed = workload is not None and (workload.admitted or workload.dispatched_to is not None)
        if job.spec.managed_by != c.MANAGED_BY_MULTIKUEUE or queue is None or placed or self.executor is None:
            return None
        key, now = (job.metadata.namespace, queue), time.monotonic()
        seen = self._worker_clusters.get(key)
        if seen is not None and now - seen[0] < WORKER_CLUSTERS_SECONDS:
            return seen[1]
        try:
            said = await self._read_worker_clusters(*key)
        except (ApiError, UnsafeName) as err:  # Kueue's objects unreadable (RBAC, a name): Kueue's words stay
            logger.info("could not read the worker clusters of LocalQueue %s/%s: %s", *key, err)
            said = None
        if len(self._worker_clusters) >= MAX_REMEMBERED_VERDICTS:
            self._worker_clusters.clear()
        self._worker_clusters[key] = (now, said)
        return said

    async def _read_worker_clusters(self, namespace: str, queue: str) -> str | None:
        assert self.executor is not None
        get = self.executor.client.get_kueue_object
        cluster_queue = ((await get("localqueues", queue, namespace)) or {}).get("spec", {}).get("clusterQueue")
        if not isinstance(cluster_queue, str):
            return None
        clusters: dict[str, Mapping[str, Any] | None] = {}
        for check in admission_check_names(await get("clusterqueues", cluster_queue)):
            config = config_name(await get("admissionchecks", check))
            for name in cluster_names(await get("multikueueconfigs", config)) if config else []:
                clusters[name] = await get("multikueueclusters", name)
        return unavailable_clusters(clusters)

    async def nodes(self) -> list[NodeCapacity]:
        """The nodes, read at most every NODES_SECONDS and only for jobs a pod of which cannot be placed
        (an empty list when they cannot be read: the check then says nothing)."""
        now = time.monotonic()
        if self._nodes is not None and now - self._nodes[0] < NODES_SECONDS:
            return self._nodes[1]
        assert self.client is not None
        try:
            nodes = [parse_node(body) for body in await self.client.list_nodes()]
        except ApiError as err:
            logger.warning("cannot list nodes for the capacity check: %s", err)
            nodes = []
        self._nodes = (now, nodes)
        return nodes

    def start(self, client: KubeClient, namespaces: tuple[str, ...] = ()) -> None:
        """Start the pod watch, the reconcile workers (they wait for the pods' first listing) and the poller."""
        self.client = client
        self.executor = PlanExecutor(client, self.expectations)
        watch = PodWatch(self.pods, namespaces, self.pod_changed)
        self._tasks = [asyncio.create_task(watch.run(client), name="ludus-pod-watch")]
        self._tasks += self.pool.start(ready=watch.synced)
        self._tasks.append(asyncio.create_task(self.progress.run(), name="ludus-progress"))

    def follow(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a background loop (the peering gate) for the controller's lifetime."""
        self._tasks.append(asyncio.create_task(coroutine, name="ludus-background"))

    async def stop(self) -> None:
        self.pool.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.close()

    def enqueue(self, key: JobKey) -> None:
        self.pool.add(key)

    def pod_changed(self, key: JobKey, pod_name: str | None) -> None:
        """The pod watch saw one of the job's pods move (None: a relist changed the job's pods)."""
        self.batcher.pod_changed(key)
        if pod_name:
            self.expectations.observed(key, pod_name)
        self.enqueue(key)

    def forget_job(self, key: JobKey, uid: str) -> None:
        self.expectations.forget(key)
        self.written.forget(uid)
        self.batcher.forget(key, uid)
        self.progress.forget(key, uid)
        self._verdicts.pop(uid, None)
        self._refused.pop(uid, None)
        self.transitions.set_phase(uid, None)

    def _worker0_address(self, key: JobKey) -> tuple[str, str] | None:
        """Worker 0's IP and pod uid (a new pod is a new run of the trainer)."""
        worker0 = next(
            (p for p in self.pods.pods_of(key) if p.role == c.ROLE_WORKER and p.index == 0 and p.ip and not p.deleting),
            None,
        )
        return (worker0.ip, worker0.uid) if worker0 else None

    @property
    def healthy(self) -> bool:
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    # --- one pass --------------------------------------------------------------------------------
    def _current_body(self, key: JobKey) -> Mapping[str, Any] | None:
        if self._jobs is None or key not in self._jobs:
            return None
        body = next(iter(self._jobs[key]), None)
        return None if body is None else self.written.current(body)

    def _init_source(self, job: TrainingJob) -> Mapping[str, Any] | None:
        """The TrainingJob `spec.init.fromJob` names, from the job index (None: there is none)."""
        name = job.spec.init.from_job if job.spec.init else None
        if name is None or self._jobs is None:
            return None
        key = (job.metadata.namespace, name)
        return next(iter(self._jobs[key]), None) if key in self._jobs else None

    def _after_refusal(self, uid: str, plan: Plan, result: Executed) -> float | None:
        """Remember what the API server refused of a job's children, to name it on the job in the next
        pass; the next try comes after a delay that doubles with each refusal in a row (never a hot loop)."""
        if result.refused is None and result.update_refused is None:
            if plan.create or plan.workload is not None or plan.queue_suspend is not None \
                    or plan.workload_status is not None or plan.workload_change is not None:
                self._refused.pop(uid, None)
            return None
        tries = self._refused[uid].tries + 1 if uid in self._refused else 1
        delay = refused_retry_delay(tries)
        self._refused[uid] = Refused(result.refused, result.update_refused, tries, time.monotonic() + delay)
        return delay

    def _hold_refused(self, uid: str, plan: Plan) -> float | None:
        """Until a refused child's next try, a pass (woken by any event) creates and changes no child;
        returns the seconds left."""
        refused = self._refused.get(uid)
        left = refused.next_try - time.monotonic() if refused is not None else 0.0
        if left <= 0:
            return None
        plan.create, plan.workload, plan.queue_suspend, plan.workload_status = [], None, None, None
        plan.workload_change = None
        return left

    def _pod_security(self, job: TrainingJob) -> str | None:
        """Why a job that has not started would get pods beyond the operator's pod security level
        (decided once per generation). A started job was admitted under the level it started with."""
        if job.status.start_time is not None or job.status.phase in c.TERMINAL_PHASES:
            return None
        seen = self._verdicts.get(job.metadata.uid)
        if seen is None or seen[0] != job.metadata.generation:
            if len(self._verdicts) >= MAX_REMEMBERED_VERDICTS:
                self._verdicts.clear()
            pods = [pod_builders.build_worker_pod(job, 0, self.gang), pod_builders.build_rendezvous_pod(job, self.gang)]
            seen = (job.metadata.generation, refusal(pods, self.pod_security, len(job.spec.template.volumes)))
            self._verdicts[job.metadata.uid] = seen
        return seen[1]

    async def _plan(self, key: JobKey, job: TrainingJob, pods: list[PodObservation], now: datetime
                    ) -> tuple[Plan, float | None]:
        """The pass' plan for a job whose spec parses, and how long a refused child's next try is held."""
        assert self.executor is not None
        uid = job.metadata.uid
        outcome = resolve_init(job, self._init_source(job))
        insecure = self._pod_security(job)
        if insecure is not None:
            return invalid_spec_plan(job.status, job.metadata.generation, insecure, now), None
        if (outcome.waiting or outcome.unusable) and job.status.phase not in c.TERMINAL_PHASES:
            return init_blocked_plan(job, outcome, now), None
        expected = self.expectations.pending(key, (p.name for p in pods))
        workload = self._workload(key, job)
        args = (outcome.job, pods, now, expected, self.gang, self.progress.samples.get(uid),
                self.progress.unavailable(uid), workload, self.executor.kueue_served, self.policy, outcome)
        last = self._refused.get(uid)
        refused, update_refused = (last.message, last.update) if last is not None else (None, None)
        unreachable = await self._unreachable(job, workload)
        plan = reconcile(*args, refused=refused, update_refused=update_refused, unreachable=unreachable)
        if unschedulable(plan):  # the nodes are read only then; a job too large is decided again
            problem = capacity_of(outcome.job, await self.nodes(), self.gang)
            if problem is not None:
                plan = reconcile(*args, too_large=problem, refused=refused, update_refused=update_refused,
                                 unreachable=unreachable)
        return plan, self._hold_refused(uid, plan)

    async def sync(self, key: JobKey) -> float | None:
        """One reconcile pass for one job; returns seconds until it wants another, if any."""
        body = self._current_body(key)
        if body is None or body["metadata"].get("deletionTimestamp") or not managed_here(body.get("spec") or {}):
            return None
        assert self.executor is not None
        pods = self.pods.pods_of(key)
        now = self.now()
        uid = str(body["metadata"].get("uid", ""))
        held = None
        try:
            job = job_with_default_tracker(parse_job(body), self.tracking_uri)
        except ValidationError as err:
            old = read_status(body.get("status"), TrainingJobStatus)
            generation = int(body["metadata"].get("generation") or 0)
            plan = invalid_spec_plan(old, generation, _invalid_spec_message(err), now)
        else:
            old = job.status  # parsed once per pass
            plan, held = await self._plan(key, job, pods, now)
            if plan.status.phase == c.PHASE_RUNNING:
                interval = poll_interval(self._progress_interval, job.spec.progress_deadline_seconds)
                self.progress.follow(key, uid, interval)
            else:
                self.progress.unfollow(key)
        old_dump, new_dump = status_dump(old), status_dump(plan.status)
        # A pass that records an Event writes the status that says so with it: held, the next pass would
        # not know the Event went out and would record it again.
        hold = None if plan.events else self.batcher.decide(key, uid, old_dump, new_dump)
        write = new_dump if hold is None and new_dump != old_dump else None
        new = plan.status

        def written(response: Mapping[str, Any]) -> None:
            self.written.remember(uid, response)
            self.batcher.written(uid)
            self.transitions.record(key[0], body["metadata"], old, new, now)

        result = await self.executor.execute(key, body, write, plan, now, written)
        wake = [
            w
            for w in (plan.requeue_after, hold.seconds if hold else None, held,
                      NAME_TAKEN_RETRY_SECONDS if result.taken else None, self._after_refusal(uid, plan, result))
            if w is not None
        ]
        return min(wake) if wake else None
