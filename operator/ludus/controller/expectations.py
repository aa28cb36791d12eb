"""Children this operator created whose watch events have not arrived yet: a job's pods, a Sweep's or
a ContinuousTraining's TrainingJobs.

Until the watch shows a created child, a pass could see it missing and create it again; expected
names count as existing for a while (client-go's pattern). An owner that reads its children's bodies
keeps the body it created too, to lay over the lagging index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

JobKey = tuple[str, str]  # (namespace, name)

# How long a created child counts as existing before its watch event must have arrived.
EXPECTATION_TTL_SECONDS: Final = 30.0


class Expectations:
    def __init__(self, ttl: float = EXPECTATION_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._clock = ttl, clock
        self._expected: dict[JobKey, dict[str, float]] = {}
        self._bodies: dict[JobKey, dict[str, Mapping[str, Any]]] = {}

    def created(self, key: JobKey, name: str, body: Mapping[str, Any] | None = None) -> None:
        """Created now or before (409): either way it exists; count it until the watch shows it."""
        self._expected.setdefault(key, {})[name] = self._clock()
        if body is not None:
            self._bodies.setdefault(key, {})[name] = body

    def observed(self, key: JobKey, pod_name: str) -> None:
        """A watch event for a pod we may have created: its expectation is met."""
        expected = self._expected.get(key)
        if expected:
            expected.pop(pod_name, None)
            self._bodies.get(key, {}).pop(pod_name, None)

    def pending(self, key: JobKey, seen: Iterable[str]) -> frozenset[str]:
        """Names still expected for this job, dropping those seen or past their time."""
        expected = self._expected.get(key)
        if not expected:
            return frozenset()
        seen_names = set(seen)
        cutoff = self._clock() - self._ttl
        bodies = self._bodies.get(key, {})
        for name in [n for n, t in expected.items() if n in seen_names or t < cutoff]:
            del expected[name]
            bodies.pop(name, None)
        return frozenset(expected)

    def pending_bodies(self, key: JobKey, seen: Iterable[str]) -> list[Mapping[str, Any]]:
        """The bodies of the children still expected (created with a body) that `seen` lacks."""
        names = self.pending(key, seen)
        bodies = self._bodies.get(key, {})
        return [bodies[n] for n in sorted(names) if n in bodies]

    def forget(self, key: JobKey) -> None:
        self._expected.pop(key, None)
        self._bodies.pop(key, None)
