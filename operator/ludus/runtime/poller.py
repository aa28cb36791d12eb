"""Polls worker 0's metrics page of every Running job (I/O around `ludus.trainingjob.progress`).

The poller owns its list of targets: the controller tells it which jobs to
follow (`follow`/`unfollow`) and it calls `changed(key)` when a job's step
moves or its endpoint stops (or starts again) answering. Polling is bounded:
one shared session, at most `concurrency` requests in flight, a timeout per
request and a cap on the bytes read, whatever a pod serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import aiohttp

from ludus.api import constants as c
from ludus.trainingjob.progress import (
    MIN_POLL_SECONDS,
    ProgressSample,
    Unavailable,
    advance,
    parse_progress,
)

logger = logging.getLogger("ludus.progress")

JobKey = tuple[str, str]  # (namespace, name)

SCRAPE_TIMEOUT_SECONDS: Final = 3.0
# A trainer's page is a few kilobytes; more than this is not one (and is not read further).
MAX_PAGE_BYTES: Final = 1 << 20
# Pages above this are parsed in a worker thread (the parse itself reads only the trainer's lines).
PARSE_INLINE_BYTES: Final = 64 * 1024
# Consecutive failed polls before a job's progress counts as unavailable (one slow answer is not).
FAILURES_BEFORE_UNAVAILABLE: Final = 3

@dataclass(frozen=True)
class ProgressTarget:
    """One job to poll: its key, its uid, worker 0's address and pod uid, and how often to look."""

    key: JobKey
    uid: str
    address: str
    interval: float
    source: str = ""


class _PollFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class ProgressPoller:
    """Scrapes worker 0 of each followed job; calls `changed(key)` when what it knows of a job moves."""

    def __init__(
        self,
        address_of: Callable[[JobKey], tuple[str, str] | None],
        changed: Callable[[JobKey], None],
        now: Callable[[], datetime],
        *,
        active: Callable[[], bool] = lambda: True,
        tick: float = MIN_POLL_SECONDS,
        concurrency: int = 32,
    ) -> None:
        self._address_of, self._changed, self._now, self._active = address_of, changed, now, active
        self._tick = tick
        self._limit = asyncio.Semaphore(concurrency)
        self._due: dict[str, float] = {}
        # The jobs to poll: key -> (uid, seconds between polls).
        self._followed: dict[JobKey, tuple[str, float]] = {}
        self.samples: dict[str, ProgressSample] = {}
        self._failures: dict[str, tuple[int, Unavailable]] = {}

    def follow(self, key: JobKey, uid: str, interval: float) -> None:
        self._followed[key] = (uid, interval)

    def unfollow(self, key: JobKey) -> None:
        followed = self._followed.pop(key, None)
        if followed is not None:
            self._failures.pop(followed[0], None)

    def forget(self, key: JobKey, uid: str) -> None:
        """The job is gone: stop polling it and drop what it reported."""
        self._followed.pop(key, None)
        self.samples.pop(uid, None)
        self._due.pop(uid, None)
        self._failures.pop(uid, None)

    def unavailable(self, uid: str) -> Unavailable | None:
        """Why the job's progress cannot be read, once enough polls in a row failed; else None."""
        failures = self._failures.get(uid)
        if failures is None or failures[0] < FAILURES_BEFORE_UNAVAILABLE:
            return None
        return failures[1]

    def targets(self) -> list[ProgressTarget]:
        """Worker 0 of each followed job that has an address (none while this replica stands by)."""
        if not self._active():
            return []
        out = []
        for key, (uid, interval) in self._followed.items():
            worker0 = self._address_of(key)
            if worker0:
                out.append(ProgressTarget(key, uid, worker0[0], interval, worker0[1]))
        return out

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS)
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            loop = asyncio.get_running_loop()
            while True:
                now = loop.time()
                due = []
                for target in self.targets():
                    if self._due.get(target.uid, 0.0) <= now:
                        self._due[target.uid] = now + target.interval
                        due.append(target)
                if due:
                    await asyncio.gather(*(self._poll(session, t) for t in due))
                await asyncio.sleep(self._tick)

    async def _poll(self, session: aiohttp.ClientSession, target: ProgressTarget) -> None:
        try:
            async with self._limit:
                current = await self._fetch(session, target)
        except _PollFailed as failed:
            self._failed(target, Unavailable(failed.reason, failed.message))
            return
        except Exception as err:  # noqa: BLE001 - whatever a pod serves must not stop the poller
            why = f"unreadable metrics page ({type(err).__name__})"
            self._failed(target, Unavailable(c.REASON_PROGRESS_INVALID, why))
            return
        was_unavailable = self.unavailable(target.uid) is not None
        self._failures.pop(target.uid, None)
        if current is None:  # the trainer serves its page but has not stepped yet
            if was_unavailable:
                self._changed(target.key)
            return
        previous = self.samples.get(target.uid)
        sample = advance(previous, replace(current, source=target.source), self._now())
        self.samples[target.uid] = sample
        if was_unavailable or previous is None or previous.step != sample.step:
            self._changed(target.key)

    async def _fetch(self, session: aiohttp.ClientSession, target: ProgressTarget) -> ProgressSample | None:
        url = f"http://{target.address}:{c.TRAINER_METRICS_PORT}/metrics"
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    raise _PollFailed(c.REASON_PROGRESS_INVALID, f"{url} answered HTTP {response.status}")
                body = await _read_at_most(response, MAX_PAGE_BYTES + 1)
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise _PollFailed(c.REASON_PROGRESS_UNREACHABLE, f"{url}: {type(err).__name__}") from err
        if len(body) > MAX_PAGE_BYTES:
            raise _PollFailed(c.REASON_PROGRESS_INVALID, f"{url} served more than {MAX_PAGE_BYTES} bytes")
        try:
            text = body.decode("utf-8")
            if len(body) > PARSE_INLINE_BYTES:  # a large page is scanned off the event loop
                return await asyncio.to_thread(parse_progress, text)
            return parse_progress(text)
        except (ValueError, UnicodeDecodeError, IndexError, KeyError, TypeError) as err:
            raise _PollFailed(c.REASON_PROGRESS_INVALID, f"{url} is not a Prometheus metrics page") from err

    def _failed(self, target: ProgressTarget, why: Unavailable) -> None:
        count = self._failures.get(target.uid, (0, why))[0] + 1
        self._failures[target.uid] = (count, why)
        logger.debug("progress of %s/%s unavailable (%d): %s", *target.key, count, why.message)
        if count == FAILURES_BEFORE_UNAVAILABLE:
            self._changed(target.key)


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first `limit` bytes (one read returns what has arrived, not the whole body)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
