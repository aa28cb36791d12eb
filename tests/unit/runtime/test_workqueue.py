"""The work queue: one pass per key at a time, bursts collapse, delays and backoff."""

from __future__ import annotations

import asyncio

from ludus.runtime.workqueue import WorkQueue


async def test_bursts_for_one_key_collapse_into_one_item() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert {await queue.get(), await queue.get()} == {"a", "b"}


async def test_a_key_added_while_processing_comes_back_once_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")
    queue.add("a")
    # Not handed to a second worker while the first holds it.
    assert queue._ready.empty()
    queue.done(key)
    assert await asyncio.wait_for(queue.get(), 1) == "a"


async def test_add_after_keeps_the_earliest_timer() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0.05)
    queue.add_after("a", 10)
    assert await asyncio.wait_for(queue.get(), 1) == "a"
    queue.shutdown()


async def test_rate_limited_backoff_doubles_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(base_backoff=0.01, max_backoff=0.04)
    delays = [queue.add_rate_limited("a") for _ in range(4)]
    assert delays == [0.01, 0.02, 0.04, 0.04]
    queue.forget("a")
    assert queue.add_rate_limited("a") == 0.01
    queue.shutdown()
