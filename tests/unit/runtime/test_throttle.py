"""The client's own QPS limit, and the API server's Retry-After, against a real HTTP server on loopback."""

from __future__ import annotations

import time

import kopf
from aiohttp import web
from aiohttp.test_utils import TestServer

from ludus.runtime.kube import KubeClient, TokenBucket, retry_after


async def test_a_throttled_request_is_sent_again_after_retry_after() -> None:
    answers = [429, 503, 200]
    seen: list[float] = []

    async def handler(_: web.Request) -> web.Response:
        seen.append(time.monotonic())
        status = answers.pop(0)
        return web.json_response({"message": "slow down", "ok": status == 200}, status=status,
                                 headers={"Retry-After": "0.2"} if status != 200 else {})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces", handler)
    async with TestServer(app) as server:
        client = KubeClient(kopf.ConnectionInfo(server=str(server.make_url("/")), insecure=True))
        try:
            assert (await client.request("GET", "/api/v1/namespaces"))["ok"] is True
        finally:
            await client.close()
    assert len(seen) == 3 and seen[1] - seen[0] >= 0.2 and seen[2] - seen[1] >= 0.2


def test_retry_after_is_read_and_capped() -> None:
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({}) == 1.0 and retry_after({"Retry-After": "soon"}) == 1.0
    assert retry_after({"Retry-After": "86400"}) == 30.0


async def test_the_bucket_lets_a_burst_through_then_the_rate() -> None:
    bucket = TokenBucket(qps=20, burst=5)
    started = time.monotonic()
    for _ in range(9):
        await bucket.take()
    # Five at once, then four more at 20 a second: never sooner than 0.2 s (a lower bound only: a busy
    # machine can only make it slower).
    assert time.monotonic() - started >= 0.19
    assert TokenBucket(qps=0, burst=1)._qps == 0  # 0: unlimited
