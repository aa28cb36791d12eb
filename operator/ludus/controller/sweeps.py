"""The Sweep loop: a work queue of sweep keys; each pass asks `ludus.sweep.plan` and carries it out.

Sweeps and their trials come from Kopf's indexes (no list calls); this operator's own writes are
laid over them until the watch catches up (created trials, the status), so a pass never acts on
a view older than what it did itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from ludus import metrics
from ludus.api import constants as c
from ludus.api.sweep import Sweep, SweepStatus
from ludus.controller.written import WrittenStatus
from ludus.kube import ApiError, KubeClient, job_path
from ludus.sweep.plan import (
    COND_FAILED,
    REASON_INVALID,
    REASON_TRIAL_CREATED,
    SweepPlan,
    reconcile_sweep,
    values_text,
)
from ludus.workqueue import WorkQueue

logger = logging.getLogger("ludus.sweeps")

SweepKey = tuple[str, str]  # (namespace, name)
CONFLICT_RETRY_SECONDS: Final = 0.2
# A created trial the index has not shown yet is assumed to exist for this long.
CREATED_GRACE_SECONDS: Final = 30.0


def _invalid_message(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())


class SweepController:
    def __init__(self, now: Callable[[], datetime], active: asyncio.Event, *, workers: int = 2) -> None:
        self.now = now
        self.active = active
        self.queue: WorkQueue[SweepKey] = WorkQueue()
        self.client: KubeClient | None = None
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._sweeps: Mapping[Any, Any] | None = None
        self._trials: Mapping[Any, Any] | None = None
        self.written = WrittenStatus()
        # Trials this operator created that the index may not show yet: key -> name -> (body, when).
        self._created: dict[SweepKey, dict[str, tuple[dict[str, Any], float]]] = {}

    def bind(self, sweeps: Mapping[Any, Any], trials: Mapping[Any, Any]) -> None:
        if self._sweeps is None:
            self._sweeps, self._trials = sweeps, trials

    def start(self, client: KubeClient) -> None:
        self.client = client
        self._tasks = [asyncio.create_task(self._worker(), name=f"ludus-sweep-{i}") for i in range(self._workers)]

    async def stop(self) -> None:
        self.queue.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def enqueue(self, key: SweepKey) -> None:
        self.queue.add(key)

    def forget(self, key: SweepKey, uid: str) -> None:
        self._created.pop(key, None)
        self.written.forget(uid)

    @property
    def healthy(self) -> bool:
        return all(not t.done() for t in self._tasks)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if not self.active.is_set():
                self.queue.done(key)
                self.queue.add(key)
                await self.active.wait()
                continue
            started = time.perf_counter()
            try:
                await self.sync(key)
            except ApiError as err:
                if err.conflict:
                    self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
                else:
                    delay = self.queue.add_rate_limited(key)
                    logger.warning("sweep %s/%s failed, retrying in %.2fs: %s", *key, delay, err)
            except Exception:  # noqa: BLE001 - the worker must outlive any one sweep's bug
                delay = self.queue.add_rate_limited(key)
                logger.exception("sweep %s/%s raised, retrying in %.2fs", *key, delay)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)
                metrics.RECONCILE_SECONDS.labels(handler="sweep").observe(time.perf_counter() - started)

    def _trial_jobs(self, key: SweepKey) -> list[Mapping[str, Any]]:
        """The sweep's trials: the index, and those created here that it does not show yet."""
        seen = list(self._trials.get(key, ())) if self._trials is not None and key in self._trials else []
        names = {j["metadata"]["name"] for j in seen}
        created = self._created.get(key, {})
        deadline = time.monotonic() - CREATED_GRACE_SECONDS
        for name in [n for n, (_, at) in created.items() if n in names or at < deadline]:
            del created[name]
        return seen + [body for body, _ in created.values()]

    async def sync(self, key: SweepKey) -> None:
        if self._sweeps is None or key not in self._sweeps:
            return
        body = next(iter(self._sweeps[key]), None)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        body = self.written.current(body)
        assert self.client is not None
        now = self.now()
        try:
            sweep = Sweep.model_validate(body)
        except ValidationError as err:
            await self._invalid(body, _invalid_message(err), now)
            return
        plan = reconcile_sweep(sweep, self._trial_jobs(key), now)
        await self._execute(key, body, sweep, plan, now)

    async def _invalid(self, body: Mapping[str, Any], message: str, now: datetime) -> None:
        """A spec the schema let through but the model refuses: Failed, naming the field, once."""
        from ludus.conditions import upsert_condition

        try:
            old = SweepStatus.model_validate(body.get("status") or {})
        except ValidationError:
            old = SweepStatus()
        if old.phase == c.PHASE_FAILED:
            return
        status = old.model_copy(update={
            "phase": c.PHASE_FAILED, "completion_time": now,
            "conditions": upsert_condition(list(old.conditions), COND_FAILED, "True", REASON_INVALID, message, now),
        })
        await self._write_status(body, status)
        await self._event(body, "Warning", REASON_INVALID, message, now)

    async def _execute(self, key: SweepKey, body: Mapping[str, Any], sweep: Sweep, plan: SweepPlan,
                       now: datetime) -> None:
        assert self.client is not None
        namespace = key[0]
        for job in plan.create:
            created = await self.client.create(job)
            if created:
                metrics.SWEEP_TRIALS_CREATED.labels(namespace=namespace).inc()
                values = json.loads(job["metadata"]["annotations"][c.ANNOTATION_TRIAL_PARAMETERS])
                await self._event(body, "Normal", REASON_TRIAL_CREATED,
                                  f"trial {job['metadata']['name']} with {values_text(values)}", now)
            # Created now or before (409): either way it exists; count it until the index shows it.
            self._created.setdefault(key, {})[job["metadata"]["name"]] = (job, time.monotonic())
        for name in plan.stop:
            await self._patch_trial(namespace, name, {
                "metadata": {"annotations": {c.ANNOTATION_STOPPED_EARLY: "true"}}, "spec": {"suspend": True}})
        for name in plan.suspend:
            await self._patch_trial(namespace, name, {"spec": {"suspend": True}})
        for name in plan.resume:
            await self._patch_trial(namespace, name, {"spec": {"suspend": False}})
        new = plan.status.model_dump(by_alias=True, exclude_none=True, mode="json")
        old = sweep.status.model_dump(by_alias=True, exclude_none=True, mode="json")
        if new != old:
            await self._write_status(body, plan.status)
        metrics.observe_sweep(namespace, sweep.metadata.name, plan.status)
        stamp = now.isoformat().replace("+00:00", "Z")
        for type_, reason, message in plan.events:
            await self._event(body, type_, reason, message, now, stamp)

    async def _patch_trial(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        assert self.client is not None
        try:
            await self.client.request("PATCH", job_path(namespace, name), patch,
                                      content_type="application/merge-patch+json")
        except ApiError as err:
            if err.status != 404:
                raise

    async def _write_status(self, body: Mapping[str, Any], status: SweepStatus) -> None:
        assert self.client is not None
        meta = body["metadata"]
        dump = status.model_dump(by_alias=True, exclude_none=True, mode="json")
        # The whole trial list is ours: replace it rather than merge into a stale one.
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": dump}
        response = await self.client.request(
            "PATCH", job_path(meta["namespace"], meta["name"], "status", plural=c.SWEEP_PLURAL), patch,
            content_type="application/merge-patch+json")
        self.written.remember(str(meta.get("uid", "")), response)

    async def _event(self, body: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime,
                     stamp: str | None = None) -> None:
        assert self.client is not None
        try:
            await self.client.post_event(body, type_, reason, message,
                                         stamp or now.isoformat().replace("+00:00", "Z"), kind=c.SWEEP_KIND)
        except ApiError as err:  # an Event is best effort: the status already says it
            logger.warning("event %s on sweep %s not recorded: %s", reason, body["metadata"]["name"], err)
