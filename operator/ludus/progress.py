"""Training progress, read from the trainer's own metrics endpoint, for stall detection.

Every worker pod's local rank 0 serves `ludus_trainer_step` (and loss, epoch,
throughput) on the metrics port; ranks step in lock-step, so worker 0's pod
speaks for the job. The operator polls it only for jobs that set
`spec.progressDeadlineSeconds`: it needs no RBAC for the trainer, no write per
step, and sends no traffic to pods that nobody asked to watch.

`parse_progress` is pure; `ProgressPoller` is the small async loop around it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Final, Iterable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from ludus.api import constants as c

logger = logging.getLogger("ludus.progress")

# Poll at most this often per job, and at least three times per progress deadline.
DEFAULT_POLL_SECONDS: Final = 10.0
MIN_POLL_SECONDS: Final = 1.0
SCRAPE_TIMEOUT_SECONDS: Final = 3.0
_FIELDS: Final = {
    "ludus_trainer_step": "step",
    "ludus_trainer_epoch": "epoch",
    "ludus_trainer_loss": "loss",
    "ludus_trainer_samples_per_second": "samples_per_second",
}


@dataclass(frozen=True)
class ProgressSample:
    """What worker 0 reported, and when the operator saw its step move."""

    step: int
    epoch: int = 0
    loss: float | None = None
    samples_per_second: float | None = None
    observed_at: datetime | None = None


def parse_progress(text: str) -> ProgressSample | None:
    """The trainer's metrics page reduced to its progress; None when it has no step yet."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        field = _FIELDS.get(family.name)
        if field is None:
            continue
        for sample in family.samples:
            if sample.name == family.name and math.isfinite(sample.value):
                # Several local ranks in one pod: they agree on the step; keep the largest.
                values[field] = max(values.get(field, -math.inf), sample.value)
    if "step" not in values:
        return None
    return ProgressSample(
        step=int(values["step"]),
        epoch=int(values.get("epoch", 0)),
        loss=values.get("loss"),
        samples_per_second=values.get("samples_per_second"),
    )


def advance(previous: ProgressSample | None, current: ProgressSample, now: datetime) -> ProgressSample:
    """Keep the time the step last moved: a stalled trainer keeps serving the same step."""
    if previous is not None and previous.step == current.step and previous.observed_at is not None:
        return ProgressSample(current.step, current.epoch, current.loss, current.samples_per_second,
                              previous.observed_at)
    return ProgressSample(current.step, current.epoch, current.loss, current.samples_per_second, now)


def poll_interval(deadline_seconds: int, default: float = DEFAULT_POLL_SECONDS) -> float:
    """Often enough to see a stall within a third of the deadline, never more than once a second."""
    return max(MIN_POLL_SECONDS, min(default, deadline_seconds / 3))


@dataclass(frozen=True)
class ProgressTarget:
    """One job to poll: its key, its uid, worker 0's address and how often to look."""

    key: tuple[str, str]
    uid: str
    address: str
    interval: float


class ProgressPoller:
    """Scrapes worker 0 of each watched job; calls `changed(key)` when a job's step moves."""

    def __init__(
        self,
        targets: Callable[[], Iterable[ProgressTarget]],
        changed: Callable[[tuple[str, str]], None],
        now: Callable[[], datetime],
        *,
        tick: float = MIN_POLL_SECONDS,
        concurrency: int = 32,
    ) -> None:
        self._targets, self._changed, self._now = targets, changed, now
        self._tick = tick
        self._limit = asyncio.Semaphore(concurrency)
        self._due: dict[str, float] = {}
        self.samples: dict[str, ProgressSample] = {}

    def forget(self, uid: str) -> None:
        self.samples.pop(uid, None)
        self._due.pop(uid, None)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            loop = asyncio.get_running_loop()
            while True:
                now = loop.time()
                due = []
                for target in self._targets():
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
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
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
