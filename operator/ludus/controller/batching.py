"""When a status change is written: at once, or held while the job's pods are still moving.

Pod counts and the step may wait, and so may everything a job gains while it
stays Pending: pods turning Running one by one then cost one write, not one
each. Progress alone (the step, and the goodput that moves with it) waits for
the progress interval since the job's last write: at most one progress write
per job per interval, and any other write carries the latest progress with
it. Phase changes, restarts, failures, conditions and a newly observed spec
generation never wait. The decision is a value (`Hold` or None); the clock is
injectable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from ludus.api import constants as c
from ludus.settings import DEFAULTS

JobKey = tuple[str, str]  # (namespace, name)

# Changes that can wait are written once the job's pods have been quiet this long...
STATUS_BATCH_SECONDS: Final = DEFAULTS.status_batch_seconds
# ... but never held longer than this after the job's last write (or first sight).
STATUS_MAX_HOLD_SECONDS: Final = 30.0

# Status fields that report training progress, and those that only count pods or report the step.
_PROGRESS_FIELDS: Final = frozenset({"progress", "goodput", "evaluation"})  # evaluation: while it trains
_COUNT_FIELDS: Final = frozenset({"active", "ready", "succeeded", "failed", "workers"}) | _PROGRESS_FIELDS
# What a Pending job's first write adds besides counts: its Created/Pending bookkeeping.
_FIRST_SIGHT_FIELDS: Final = _COUNT_FIELDS | {
    "phase", "conditions", "startTime", "observedGeneration", "desired", "selector",
}


def _changed(old: Mapping[str, object], new: Mapping[str, object]) -> set[str]:
    return {k for k in new.keys() | old.keys() if new.get(k) != old.get(k)}


def only_progress(old: Mapping[str, object], new: Mapping[str, object]) -> bool:
    """Whether the change is progress alone (it waits for the progress interval)."""
    changed = _changed(old, new)
    return bool(changed) and changed <= _PROGRESS_FIELDS


def can_wait(old: Mapping[str, object], new: Mapping[str, object]) -> bool:
    """Whether a status change (both as written, camelCase) may be batched with a later one."""
    changed = _changed(old, new)
    if not changed:
        return False
    if changed <= _COUNT_FIELDS:
        return True
    still_pending = old.get("phase", c.PHASE_PENDING) == c.PHASE_PENDING and new.get("phase") == c.PHASE_PENDING
    first_generation = not old.get("observedGeneration")
    return still_pending and first_generation and changed <= _FIRST_SIGHT_FIELDS


@dataclass(frozen=True)
class Hold:
    """Do not write now; look again in `seconds`."""

    seconds: float


class StatusBatcher:
    """Per job: when its status was last written (or first seen), and when one of its pods last moved."""

    def __init__(
        self,
        batch_seconds: float = STATUS_BATCH_SECONDS,
        max_hold_seconds: float = STATUS_MAX_HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        progress_interval: float = DEFAULTS.progress_interval,
    ) -> None:
        self.batch_seconds = batch_seconds
        self.progress_interval = progress_interval
        self.max_hold_seconds = max(max_hold_seconds, batch_seconds)
        self.clock = clock
        self._written_at: dict[str, float] = {}
        self._pod_changed_at: dict[JobKey, float] = {}

    def pod_changed(self, key: JobKey) -> None:
        self._pod_changed_at[key] = self.clock()

    def written(self, uid: str) -> None:
        self._written_at[uid] = self.clock()

    def forget(self, key: JobKey, uid: str) -> None:
        self._written_at.pop(uid, None)
        self._pod_changed_at.pop(key, None)

    def decide(self, key: JobKey, uid: str, old: Mapping[str, object], new: Mapping[str, object]) -> Hold | None:
        """None: write `new` now. Hold: keep `old` and look again later."""
        now = self.clock()
        since = self._written_at.setdefault(uid, now)
        if only_progress(old, new):
            left = since + self.progress_interval - now
            return Hold(left) if left > 0 else None
        quiet_from = max(since, self._pod_changed_at.get(key, since))
        left = min(quiet_from + self.batch_seconds, since + self.max_hold_seconds) - now
        if left <= 0 or not can_wait(old, new):
            return None
        return Hold(left)
