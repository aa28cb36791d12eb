"""The poller against real HTTP endpoints on loopback: garbage never crashes it, failures are reported once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from aiohttp import web

from ludus.api import constants as c
from ludus.runtime.poller import FAILURES_BEFORE_UNAVAILABLE, MAX_PAGE_BYTES, ProgressPoller, ProgressTarget

KEY = ("ns", "job")
GOOD = 'ludus_trainer_step{job="j",rank="0"} 42\nludus_trainer_loss{job="j",rank="0"} NaN\n'


def _free_port_taken() -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", c.TRAINER_METRICS_PORT)) == 0


@pytest.fixture
async def endpoint() -> AsyncIterator[Callable[[bytes, str], None]]:
    """A metrics endpoint on 127.0.0.1 at the trainer's port whose body the test sets."""
    if _free_port_taken():
        pytest.skip(f"port {c.TRAINER_METRICS_PORT} is in use on this machine")
    page = {"body": b"", "type": "text/plain"}

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=page["body"], content_type=page["type"])

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", c.TRAINER_METRICS_PORT).start()

    def serve(body: bytes, content_type: str = "text/plain") -> None:
        page.update(body=body, type=content_type)

    yield serve
    await runner.cleanup()


async def _poll(poller: ProgressPoller, address: str, times: int = 1) -> None:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        for _ in range(times):
            await poller._poll(session, ProgressTarget(KEY, "uid", address, 1.0, "pod-1"))


def _poller(changed: list[tuple[str, str]]) -> ProgressPoller:
    return ProgressPoller(lambda _: None, changed.append, lambda: datetime.now(UTC))


async def test_garbage_pages_are_invalid_responses_and_the_last_progress_is_kept(endpoint) -> None:  # type: ignore[no-untyped-def]
    changed: list[tuple[str, str]] = []
    poller = _poller(changed)
    endpoint(GOOD.encode())
    await _poll(poller, "127.0.0.1")
    assert poller.samples["uid"].step == 42 and poller.samples["uid"].loss is None  # NaN loss: no loss
    assert poller.samples["uid"].source == "pod-1" and changed == [KEY]
    for body, kind in [
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
        (b'{"step": 43, "loss": 0.', "application/json"),
        (b"x" * (10 * 1024 * 1024), "text/plain"),
        (GOOD.encode() + b"#" * (10 * 1024 * 1024), "text/plain"),  # a valid start does not make it a page
        (b"\xff\xfe\x00garbage", "application/octet-stream"),
    ]:
        endpoint(body, kind)
        await _poll(poller, "127.0.0.1", FAILURES_BEFORE_UNAVAILABLE)
        why = poller.unavailable("uid")
        assert why is not None and why.reason == c.REASON_PROGRESS_INVALID, body[:20]
        assert poller.samples["uid"].step == 42  # what was read before stays
        endpoint(GOOD.encode())
        await _poll(poller, "127.0.0.1")
        assert poller.unavailable("uid") is None
    assert MAX_PAGE_BYTES < 10 * 1024 * 1024
    # Each flip (unavailable, then available again) asked for one reconcile; repeated failures did not.
    assert changed == [KEY] + [KEY, KEY] * 5


async def test_an_unreachable_endpoint_is_reported_once_after_several_failures() -> None:
    changed: list[tuple[str, str]] = []
    poller = _poller(changed)
    await _poll(poller, "127.0.0.1", FAILURES_BEFORE_UNAVAILABLE - 1)
    assert poller.unavailable("uid") is None and changed == []  # one slow answer is not an outage
    await _poll(poller, "127.0.0.1", 5)
    why = poller.unavailable("uid")
    assert why is not None and why.reason == c.REASON_PROGRESS_UNREACHABLE and changed == [KEY]
    poller.unfollow(KEY)
    poller.forget(KEY, "uid")
    assert poller.unavailable("uid") is None


async def test_the_poll_loop_survives_a_bad_endpoint(endpoint) -> None:  # type: ignore[no-untyped-def]
    endpoint(b"<html>", "text/html")
    changed: list[tuple[str, str]] = []
    poller = ProgressPoller(lambda _: ("127.0.0.1", "pod-1"), changed.append, lambda: datetime.now(UTC), tick=0.05)
    poller.follow(KEY, "uid", 0.05)
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.6)
    assert not task.done() and poller.unavailable("uid") is not None
    endpoint(GOOD.encode())
    await asyncio.sleep(0.3)
    assert poller.samples["uid"].step == 42
    task.cancel()


async def test_a_page_padded_to_a_megabyte_is_read_for_the_trainer_lines_alone(endpoint) -> None:  # type: ignore[no-untyped-def]
    """What a pod serves besides the trainer's families (a megabyte of other series, or of the
    trainer's own family repeated) is scanned, not parsed: the step is still read."""
    changed: list[tuple[str, str]] = []
    poller = _poller(changed)
    padding = "".join(f'other_series{{n="{i}"}} 1\n' for i in range(60_000)).encode()
    endpoint(GOOD.encode() + padding[: MAX_PAGE_BYTES - len(GOOD) - 1])
    await _poll(poller, "127.0.0.1")
    assert poller.samples["uid"].step == 42 and poller.unavailable("uid") is None
    flood = "".join(f'ludus_trainer_eval_metric{{metric="m{i}"}} 1\n' for i in range(40_000)).encode()
    endpoint(GOOD.encode() + flood[: MAX_PAGE_BYTES - len(GOOD) - 1])
    await _poll(poller, "127.0.0.1")
    assert poller.samples["uid"].step == 42 and poller.unavailable("uid") is None
