"""The one worker loop every resource kind runs (TrainingJob, Sweep, ContinuousTraining).

A work queue of (namespace, name) keys drained by a few asyncio workers. A standby replica leaves the
keys queued until it becomes the active one; a write conflict is retried at once, any other failure
after a per-key back-off; every pass is timed and every retry and error counted, under the handler's
name. A pass may ask for another after some seconds (a deadline, a schedule).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from ludus.runtime import metrics
from ludus.runtime.kube import ApiError
from ludus.runtime.workqueue import WorkQueue

logger = logging.getLogger("ludus.controller")

Key = tuple[str, str]  # (namespace, name)
Sync = Callable[[Key], Awaitable[float | None]]  # one pass; seconds until it wants another, if any
CONFLICT_RETRY_SECONDS: Final = 0.2


class WorkerPool:
    """`workers` tasks running `sync` for the keys queued, as the active replica only."""

    def __init__(self, handler: str, sync: Sync, active: asyncio.Event, workers: int,
                 report_depth: bool = False) -> None:
        self.handler = handler
        self.queue: WorkQueue[Key] = WorkQueue()
        self._sync, self._active, self._workers, self._report_depth = sync, active, workers, report_depth

    def start(self, ready: asyncio.Event | None = None) -> list[asyncio.Task[None]]:
        """The workers, each waiting for `ready` first (a pass before the pods are listed would see
        none and create them again)."""
        return [asyncio.create_task(self._run(ready), name=f"ludus-{self.handler}-{i}")
                for i in range(self._workers)]

    def add(self, key: Key) -> None:
        self.queue.add(key)
        self._depth()

    def _depth(self) -> None:
        if self._report_depth:
            metrics.QUEUE_DEPTH.set(len(self.queue))

    async def _run(self, ready: asyncio.Event | None) -> None:
        if ready is not None:
            await ready.wait()
        while True:
            key = await self.queue.get()
            if not self._active.is_set():
                # Standby: leave the key queued for when this replica becomes the active one.
                self.queue.done(key)
                self.queue.add(key)
                await self._active.wait()
                continue
            started = time.perf_counter()
            try:
                await self._pass(key)
            finally:
                self.queue.done(key)
                metrics.RECONCILE_SECONDS.labels(handler=self.handler).observe(time.perf_counter() - started)
                self._depth()

    async def _pass(self, key: Key) -> None:
        try:
            requeue = await self._sync(key)
        except ApiError as err:
            if err.conflict:
                metrics.RECONCILE_RETRIES.labels(reason="conflict").inc()
                self.queue.add_after(key, CONFLICT_RETRY_SECONDS)
                return
            metrics.RECONCILE_RETRIES.labels(reason="error").inc()
            metrics.RECONCILE_ERRORS.labels(kind=f"http_{err.status}").inc()
            delay = self.queue.add_rate_limited(key)
            logger.warning("%s of %s/%s failed, retrying in %.2fs: %s", self.handler, *key, delay, err)
        except Exception as err:  # noqa: BLE001 - the worker must outlive any one resource's bug
            metrics.RECONCILE_ERRORS.labels(kind=type(err).__name__).inc()
            metrics.RECONCILE_RETRIES.labels(reason="error").inc()
            delay = self.queue.add_rate_limited(key)
            logger.exception("%s of %s/%s raised, retrying in %.2fs", self.handler, *key, delay)
        else:
            self.queue.forget(key)
            if requeue is not None:
                self.queue.add_after(key, requeue)

    def shutdown(self) -> None:
        self.queue.shutdown()
