"""Pods this operator created whose watch events have not arrived yet.

Until the watch shows a created pod, a pass could see it missing and create it
again; expected names count as existing for a while (client-go's pattern).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final

JobKey = tuple[str, str]  # (namespace, name)

# How long a created pod counts as existing before its watch event must have arrived.
EXPECTATION_TTL_SECONDS: Final = 30.0


class Expectations:
    def __init__(self, ttl: float = EXPECTATION_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock
        self._expected: dict[JobKey, dict[str, float]] = {}

    def created(self, key: JobKey, pod_name: str) -> None:
        self._expected.setdefault(key, {})[pod_name] = self._clock()

    def observed(self, key: JobKey, pod_name: str) -> None:
        """A watch event for a pod we may have created: its expectation is met."""
        expected = self._expected.get(key)
        if expected:
            expected.pop(pod_name, None)

    def pending(self, key: JobKey, seen: Iterable[str]) -> frozenset[str]:
        """Names still expected for this job, dropping those seen or past their time."""
        expected = self._expected.get(key)
        if not expected:
            return frozenset()
        seen_names = set(seen)
        cutoff = self._clock() - self._ttl
        for name in [n for n, t in expected.items() if n in seen_names or t < cutoff]:
            del expected[name]
        return frozenset(expected)

    def forget(self, key: JobKey) -> None:
        self._expected.pop(key, None)
