"""The reconcile loop: a work queue of job keys, drained by a few async workers.

Kopf's handlers only feed this queue (they are thin glue). Each pass reads the
job from Kopf's in-memory index and its pods from the operator's own pod watch
(`ludus.podwatch`; never a list call), asks the
pure `ludus.plan.reconcile` what to do, and carries the plan out in a fixed
order: status first (guarded by resourceVersion), then children, then Events.
Status is written before children so that a crash in between can only repeat
work, never lose a restart count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable, Coroutine, Final, Mapping

from pydantic import ValidationError

from ludus import metrics
from ludus.api import constants as c
from ludus.api.models import TrainingJob, TrainingJobStatus
from ludus.kube import ApiError, KubeClient
from ludus.observe import PodObservation
from ludus.plan import Plan, invalid_spec_plan, reconcile
from ludus.podwatch import PodIndex, PodWatch
from ludus.progress import ProgressPoller, ProgressTarget, poll_interval
from ludus.status import can_wait
from ludus.workqueue import WorkQueue

logger = logging.getLogger("ludus.controller")

JobKey = tuple[str, str]  # (namespace, name)

# How long a created pod counts as existing before its watch event must have arrived.
EXPECTATION_TTL_SECONDS: Final = 30.0
# Delay before retrying after our own status write raced the watch.
CONFLICT_RETRY_SECONDS: Final = 0.2
# Delay before creating again a pod whose name is still held by a terminating or foreign pod.
NAME_TAKEN_RETRY_SECONDS: Final = 1.0
# Status changes that can wait (`ludus.status.can_wait`: pod counts, the step, a Pending job's
# bookkeeping) are written once the job's pods have been quiet this long, and at most this often:
# pods turning Running one by one cost one write, not one each, and a job whose pods move steadily
# until it runs costs one in all. Phase changes and restarts are always written at once.
STATUS_BATCH_SECONDS: Final = 5.0
# ... but such a change is never held longer than this after the job's last write (or first sight),
# however busy its pods are: a job's counts are at most this stale.
STATUS_MAX_HOLD_SECONDS: Final = 30.0
_RESTART_REASONS: Final = frozenset(
    {c.REASON_POD_FAILED, c.REASON_POD_DELETED, c.REASON_POD_EVICTED, c.REASON_NODE_LOST, c.REASON_STALLED}
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _rv(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def slim_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the job index keeps: no managedFields, no annotations Kopf may add."""
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion", c.API_VERSION),
        "kind": body.get("kind", c.KIND),
        "metadata": {
            k: meta[k]
            for k in (
                "name", "namespace", "uid", "generation", "resourceVersion",
                "labels", "creationTimestamp", "deletionTimestamp",
            )
            if k in meta
        }
        | {"annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(c.GROUP)}},
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def _status_dump(status: TrainingJobStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, mode="json")


def _old_status(body: Mapping[str, Any]) -> TrainingJobStatus:
    try:
        return TrainingJob.model_validate(body).status
    except ValidationError:
        try:
            return TrainingJobStatus.model_validate(body.get("status") or {})
        except ValidationError:
            return TrainingJobStatus()


class Controller:
    """Owns the queue, the expectations and the last status it wrote for each job."""

    def __init__(
        self,
        *,
        workers: int = 16,
        gang: str = "none",
        progress_poll_seconds: float = 10.0,
        status_batch_seconds: float = STATUS_BATCH_SECONDS,
        status_max_hold_seconds: float = STATUS_MAX_HOLD_SECONDS,
    ) -> None:
        self.gang = gang
        self._batch_seconds = status_batch_seconds
        self._max_hold = status_max_hold_seconds
        self._poll_seconds = progress_poll_seconds
        self.queue: WorkQueue[JobKey] = WorkQueue()
        self.client: KubeClient | None = None
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: Mapping[Any, Any] | None = None
        self.pods = PodIndex()
        self._expected: dict[JobKey, dict[str, float]] = {}
        self._written: dict[str, tuple[int, dict[str, Any]]] = {}
        # Per job uid: when its status was last written, or first seen if never (the batch clock).
        self._written_at: dict[str, float] = {}
        # Per job: when one of its pods last changed (the quiet period runs from here).
        self._pod_changed_at: dict[JobKey, float] = {}
        self._phases: dict[str, str] = {}
        # Jobs whose progress is polled (Running, with progressDeadlineSeconds): key -> (uid, deadline).
        self._watched: dict[JobKey, tuple[str, int]] = {}
        self.now: Callable[[], datetime] = utcnow
        self.progress = ProgressPoller(self._progress_targets, self.enqueue, utcnow)
        # Cleared while another replica is the active one (peering); reconcile waits for it.
        self.active = asyncio.Event()
        self.active.set()

    # --- wiring -----------------------------------------------------------------------------------
    def bind_jobs(self, jobs: Mapping[Any, Any]) -> None:
        """Kopf hands its live indexes to handlers only; the first handler call passes the job index here."""
        if self._jobs is None:
            self._jobs = jobs

    def start(self, client: KubeClient, namespaces: tuple[str, ...] = ()) -> None:
        """Start the pod watch, the reconcile workers (they wait for the pods' first listing) and the poller."""
        self.client = client
        watch = PodWatch(self.pods, namespaces, self._pod_changed)
        self._tasks = [asyncio.create_task(watch.run(client), name="ludus-pod-watch")]
        self._tasks += [
            asyncio.create_task(self._worker(i, watch.synced), name=f"ludus-reconcile-{i}")
            for i in range(self._workers)
        ]
        self._tasks.append(asyncio.create_task(self.progress.run(), name="ludus-progress"))

    def _pod_changed(self, key: JobKey, pod_name: str | None) -> None:
        self._pod_changed_at[key] = time.monotonic()
        if pod_name:
            self.observed_pod(key, pod_name)
        self.enqueue(key)

    def follow(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a background loop (the peering gate) for the controller's lifetime."""
        self._tasks.append(asyncio.create_task(coroutine, name="ludus-background"))

    async def stop(self) -> None:
        self.queue.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.close()

    def enqueue(self, key: JobKey) -> None:
        self.queue.add(key)
        metrics.QUEUE_DEPTH.set(len(self.queue))

    def observed_pod(self, key: JobKey, pod_name: str) -> None:
        """A watch event for a pod we may have created: its expectation is met."""
        expected = self._expected.get(key)
        if expected:
            expected.pop(pod_name, None)

    def forget_job(self, key: JobKey, uid: str) -> None:
        self._expected.pop(key, None)
        self._written.pop(uid, None)
        self._written_at.pop(uid, None)
        self._pod_changed_at.pop(key, None)
        self._watched.pop(key, None)
        self.progress.forget(uid)
        self._set_phase(uid, None)

    def _progress_targets(self) -> list[ProgressTarget]:
        """Worker 0 of each Running job with a progress deadline (only while this replica is active)."""
        if not self.active.is_set():
            return []
        out = []
        for key, (uid, deadline) in self._watched.items():
            worker0 = next(
                (p for p in self._pods_of(key) if p.role == c.ROLE_WORKER and p.index == 0 and p.ip and not p.deleting),
                None,
            )
            if worker0 is not None:
                out.append(ProgressTarget(key, uid, worker0.ip, poll_interval(deadline, self._poll_seconds)))
        return out

    def _watch_progress(self, key: JobKey, job: TrainingJob, plan: Plan) -> None:
        deadline = job.spec.progress_deadline_seconds
        if deadline is not None and plan.status.phase == c.PHASE_RUNNING:
            self._watched[key] = (job.metadata.uid, deadline)
        else:
            self._watched.pop(key, None)

    @property
    def healthy(self) -> bool:
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    # --- the loop ---------------------------------------------------------------------------------
    async def _worker(self, number: int, pods_listed: asyncio.Event) -> None:
        # A pass before the pods are listed would see none and create them again.
        await pods_listed.wait()
        while True:
            key = await self.queue.get()
            if not self.active.is_set():
                # Standby: leave the key queued for when this replica becomes the active one.
                self.queue.done(key)
                self.queue.add(key)
                await self.active.wait()
                continue
            started = time.perf_counter()
            try:
                requeue = await self.sync(key)
            except ApiError as err:
                if err.conflict:
                    metrics.RECONCILE_RETRIES.labels(reason="conflict").inc()
                    self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
                else:
                    metrics.RECONCILE_RETRIES.labels(reason="error").inc()
                    metrics.RECONCILE_ERRORS.labels(kind=f"http_{err.status}").inc()
                    delay = self.queue.add_rate_limited(key)
                    logger.warning("reconcile of %s/%s failed, retrying in %.2fs: %s", *key, delay, err)
            except Exception as err:  # noqa: BLE001 - the worker must outlive any one job's bug
                metrics.RECONCILE_ERRORS.labels(kind=type(err).__name__).inc()
                metrics.RECONCILE_RETRIES.labels(reason="error").inc()
                delay = self.queue.add_rate_limited(key)
                logger.exception("reconcile of %s/%s raised, retrying in %.2fs", *key, delay)
            else:
                self.queue.forget(key)
                if requeue is not None:
                    self.queue.add_after(key, requeue)
            finally:
                self.queue.done(key)
                metrics.RECONCILE_SECONDS.labels(handler="reconcile").observe(time.perf_counter() - started)
                metrics.QUEUE_DEPTH.set(len(self.queue))

    def _current_body(self, key: JobKey) -> dict[str, Any] | None:
        if self._jobs is None or key not in self._jobs:
            return None
        body = next(iter(self._jobs[key]), None)
        if body is None:
            return None
        uid = body["metadata"].get("uid", "")
        written = self._written.get(uid)
        if written and written[0] > _rv(body["metadata"].get("resourceVersion")):
            # The watch has not caught up with our own status write: use what we wrote.
            rv, status = written
            body = {**body, "metadata": {**body["metadata"], "resourceVersion": str(rv)}, "status": status}
        return body

    def _pods_of(self, key: JobKey) -> list[PodObservation]:
        return self.pods.pods_of(key)

    def _expected_names(self, key: JobKey, pods: list[PodObservation]) -> frozenset[str]:
        expected = self._expected.get(key)
        if not expected:
            return frozenset()
        seen = {p.name for p in pods}
        cutoff = time.monotonic() - EXPECTATION_TTL_SECONDS
        for name in [n for n, t in expected.items() if n in seen or t < cutoff]:
            del expected[name]
        return frozenset(expected)

    async def sync(self, key: JobKey) -> float | None:
        """One reconcile pass for one job; returns seconds until it wants another, if any."""
        body = self._current_body(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        pods = self._pods_of(key)
        now = self.now()
        generation = int(body["metadata"].get("generation") or 0)
        try:
            job = TrainingJob.model_validate(body)
        except ValidationError as err:
            old = _old_status(body)
            message = "; ".join(
                f"spec.{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" if e["loc"][:1] == ("spec",) else e["msg"]
                for e in err.errors()
            )
            plan = invalid_spec_plan(old, generation, message, now)
        else:
            old = job.status  # parsed once per pass; defer and execute compare against it
            sample = self.progress.samples.get(job.metadata.uid)
            plan = reconcile(job, pods, now, self._expected_names(key, pods), self.gang, sample)
            self._watch_progress(key, job, plan)
        deferred = self._defer_status(key, body, old, plan)
        taken = await self.execute(key, body, old, plan, now)
        wake = [w for w in (plan.requeue_after, deferred, NAME_TAKEN_RETRY_SECONDS if taken else None) if w is not None]
        return min(wake) if wake else None

    def _defer_status(
        self, key: JobKey, body: Mapping[str, Any], old_status: TrainingJobStatus, plan: Plan
    ) -> float | None:
        """Hold back a status change that can wait while the job's pods are still moving (see
        STATUS_BATCH_SECONDS); returns when to look again."""
        uid = body["metadata"].get("uid", "")
        now = time.monotonic()
        since = self._written_at.setdefault(uid, now)
        quiet_from = max(since, self._pod_changed_at.get(key, since))
        left = min(quiet_from + self._batch_seconds, since + max(self._max_hold, self._batch_seconds)) - now
        if left <= 0 or not can_wait(_status_dump(old_status), _status_dump(plan.status)):
            return None
        plan.status = old_status
        return left

    async def execute(
        self, key: JobKey, body: Mapping[str, Any], old: TrainingJobStatus, plan: Plan, now: datetime
    ) -> bool:
        """Carry out a plan; True when a pod name was still taken (the caller retries shortly)."""
        assert self.client is not None
        meta = body["metadata"]
        uid = meta.get("uid", "")
        new_status = _status_dump(plan.status)
        async def write_status() -> None:
            assert self.client is not None
            response = await self.client.patch_job_status(key[0], key[1], meta["resourceVersion"], new_status)
            self._written[uid] = (_rv(response["metadata"]["resourceVersion"]), response.get("status") or {})
            self._written_at[uid] = time.monotonic()
            self._record_transition(key, body, old, plan.status, now)

        changed = new_status != _status_dump(old)
        # Status lands before anything is deleted: a crash in between may repeat work but never lose a
        # restart count. A pass that only creates has nothing to lose (the next pass recomputes its
        # status from the pods), so it writes status and children at once, one round trip less.
        together = changed and not plan.delete and not plan.delete_job and plan.status.restarts == old.restarts
        if changed and not together:
            await write_status()
        results = await asyncio.gather(
            *(self._create(key, manifest) for manifest in plan.create),
            *(self._delete(key, d.name, d.uid, d.reason) for d in plan.delete),
            *([write_status()] if together else []),
            return_exceptions=True,
        )
        if plan.suspend_for_queue:
            await self.client.suspend_job_for_queue(key[0], key[1], uid)
        if plan.delete_job:
            await self.client.delete_job(key[0], key[1], uid)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        for event in plan.events:
            try:
                await self.client.post_event(body, event.type, event.reason, event.message, stamp)
            except ApiError as err:  # Events are best effort; the status already says it.
                logger.warning("could not record event %s on %s/%s: %s", event.reason, *key, err)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        return any(r is False for r in results[: len(plan.create)])

    async def _create(self, key: JobKey, manifest: dict[str, Any]) -> bool:
        """Create a child; False when a pod of that name already exists (ours, not yet seen, or a leftover)."""
        assert self.client is not None
        created = await self.client.create(manifest)
        if manifest["kind"] != "Pod":
            return True
        if created:
            self._expected.setdefault(key, {})[manifest["metadata"]["name"]] = time.monotonic()
            metrics.PODS_CREATED.labels(role=manifest["metadata"]["labels"][c.LABEL_ROLE]).inc()
        return created

    async def _delete(self, key: JobKey, name: str, uid: str, reason: str) -> None:
        assert self.client is not None
        if await self.client.delete_pod(key[0], name, uid):
            metrics.PODS_DELETED.labels(reason=reason).inc()

    def _record_transition(
        self, key: JobKey, body: Mapping[str, Any], old: TrainingJobStatus, new: TrainingJobStatus, now: datetime
    ) -> None:
        namespace = key[0]
        uid = body["metadata"].get("uid", "")
        if old.start_time is None and new.start_time is not None and old.phase != c.PHASE_SUSPENDED:
            metrics.JOBS_CREATED.labels(namespace=namespace).inc()
        if new.phase != old.phase:
            if new.phase == c.PHASE_SUCCEEDED:
                metrics.JOBS_SUCCEEDED.labels(namespace=namespace).inc()
            elif new.phase == c.PHASE_FAILED:
                reason = next((x.reason for x in new.conditions if x.type == c.COND_FAILED), "")
                metrics.JOBS_FAILED.labels(namespace=namespace, reason=reason).inc()
            elif new.phase == c.PHASE_RUNNING and not any(x.type == c.COND_RUNNING for x in old.conditions):
                created = body["metadata"].get("creationTimestamp")
                if created:
                    started = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
                    metrics.TIME_TO_RUNNING.observe(max((now - started).total_seconds(), 0.0))
        if new.restarts > old.restarts:
            restarting = next((x for x in new.conditions if x.type == c.COND_RESTARTING), None)
            reason = restarting.reason if restarting and restarting.reason in _RESTART_REASONS else "WorkerReplaced"
            metrics.JOBS_RESTARTED.labels(namespace=namespace, reason=reason).inc(new.restarts - old.restarts)
        self._set_phase(uid, new.phase)

    def _set_phase(self, uid: str, phase: str | None) -> None:
        """Move one job between phases in the gauge: O(1) per write, never a recount of every job."""
        old = self._phases.pop(uid, None)
        if old is not None:
            metrics.JOBS_BY_PHASE.labels(phase=old).dec()
        if phase is not None:
            self._phases[uid] = phase
            metrics.JOBS_BY_PHASE.labels(phase=phase).inc()
