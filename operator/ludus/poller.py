"""Polls worker 0's metrics page of each job that asks for progress (I/O around `ludus.progress`).

The poller owns its list of targets: the controller tells it which jobs to
follow (`follow`/`unfollow`) and it calls `changed(key)` when a job's step moves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import aiohttp

from ludus.api import constants as c
from ludus.progress import MIN_POLL_SECONDS, ProgressSample, advance, parse_progress

logger = logging.getLogger("ludus.progress")

JobKey = tuple[str, str]  # (namespace, name)

SCRAPE_TIMEOUT_SECONDS: Final = 3.0


@dataclass(frozen=True)
class ProgressTarget:
    """One job to poll: its key, its uid, worker 0's address and how often to look."""

    key: JobKey
    uid: str
    address: str
    interval: float


class ProgressPoller:
    """Scrapes worker 0 of each followed job; calls `changed(key)` when a job's step moves."""

    def __init__(
        self,
        address_of: Callable[[JobKey], str | None],
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

    def follow(self, key: JobKey, uid: str, interval: float) -> None:
        self._followed[key] = (uid, interval)

    def unfollow(self, key: JobKey) -> None:
        self._followed.pop(key, None)

    def forget(self, key: JobKey, uid: str) -> None:
        """The job is gone: stop polling it and drop what it reported."""
        self._followed.pop(key, None)
        self.samples.pop(uid, None)
        self._due.pop(uid, None)

    def targets(self) -> list[ProgressTarget]:
        """Worker 0 of each followed job that has an address (none while this replica stands by)."""
        if not self._active():
            return []
        out = []
        for key, (uid, interval) in self._followed.items():
            address = self._address_of(key)
            if address:
                out.append(ProgressTarget(key, uid, address, interval))
        return out

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
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
        url = f"http://{target.address}:{c.TRAINER_METRICS_PORT}/metrics"
        try:
            async with self._limit, session.get(url) as response:
                if response.status != 200:
                    return
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            logger.debug("progress of %s/%s unavailable: %s", *target.key, err)
            return
        current = parse_progress(text)
        if current is None:
            return
        previous = self.samples.get(target.uid)
        sample = advance(previous, current, self._now())
        self.samples[target.uid] = sample
        if previous is None or previous.step != sample.step:
            self._changed(target.key)
