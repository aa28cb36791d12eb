"""The one worker loop of every kind: passes, retries after a conflict or an error (counted), a pass's
own requeue, and a standby replica that leaves its keys queued."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from ludus.controller.worker import WorkerPool
from ludus.runtime.kube import ApiError

KEY = ("team-a", "x")


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _until(check: object, seconds: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_conflict_is_retried_and_an_error_is_counted_and_retried_with_back_off() -> None:
    outcomes: list[Exception | None] = [ApiError(409, "PATCH", "/x", "conflict"), ApiError(500, "GET", "/x", "boom"),
                                        RuntimeError("bug"), None]
    seen: list[tuple[str, str]] = []

    async def sync(key: tuple[str, str]) -> float | None:
        seen.append(key)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return None

    conflicts = _sample("ludus_reconcile_retries_total", reason="conflict")
    http_errors = _sample("ludus_reconcile_errors_total", kind="http_500")
    active = asyncio.Event()
    active.set()
    pool = WorkerPool("test-kind", sync, active, workers=1)
    tasks = pool.start()
    pool.add(KEY)
    await _until(lambda: not outcomes)
    pool.shutdown()
    for task in tasks:
        task.cancel()
    assert seen == [KEY] * 4
    assert _sample("ludus_reconcile_retries_total", reason="conflict") == conflicts + 1
    assert _sample("ludus_reconcile_errors_total", kind="http_500") == http_errors + 1
    assert _sample("ludus_reconcile_duration_seconds_count", handler="test-kind") == 4


async def test_a_pass_asks_for_another_and_a_standby_replica_waits_to_be_active() -> None:
    passes: list[float] = []

    async def sync(key: tuple[str, str]) -> float | None:
        passes.append(asyncio.get_running_loop().time())
        return 0.05 if len(passes) == 1 else None

    active = asyncio.Event()  # standby
    pool = WorkerPool("test-standby", sync, active, workers=2)
    tasks = pool.start()
    pool.add(KEY)
    await asyncio.sleep(0.1)
    assert passes == [] and len(pool.queue) == 1  # left queued
    active.set()
    await _until(lambda: len(passes) == 2)
    assert passes[1] - passes[0] >= 0.04  # the requeue the first pass asked for
    pool.shutdown()
    for task in tasks:
        task.cancel()
