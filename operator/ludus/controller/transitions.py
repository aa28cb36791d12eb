"""Prometheus metrics of what a status write changed: jobs created, finished, restarted, by phase."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.models import TrainingJobStatus
from ludus.runtime import metrics

_RESTART_REASONS: Final = frozenset(
    {c.REASON_POD_FAILED, c.REASON_POD_DELETED, c.REASON_POD_EVICTED, c.REASON_NODE_LOST, c.REASON_STALLED}
)


class TransitionMetrics:
    """Counts transitions as they are written; the phase gauge moves per job, never by recount."""

    def __init__(self) -> None:
        self._phases: dict[str, str] = {}

    def record(
        self, namespace: str, meta: Mapping[str, Any], old: TrainingJobStatus, new: TrainingJobStatus, now: datetime
    ) -> None:
        if old.start_time is None and new.start_time is not None and old.phase != c.PHASE_SUSPENDED:
            metrics.JOBS_CREATED.labels(namespace=namespace).inc()
        if new.phase != old.phase:
            if new.phase == c.PHASE_SUCCEEDED:
                metrics.JOBS_SUCCEEDED.labels(namespace=namespace).inc()
            if new.phase == c.PHASE_FAILED:
                reason = next((x.reason for x in new.conditions if x.type == c.COND_FAILED), "")
                metrics.JOBS_FAILED.labels(namespace=namespace, reason=reason).inc()
            if new.phase in c.TERMINAL_PHASES and old.phase not in c.TERMINAL_PHASES:
                _count_goodput(namespace, new)
            if new.phase == c.PHASE_RUNNING and not any(x.type == c.COND_RUNNING for x in old.conditions):
                created = meta.get("creationTimestamp")
                if created:
                    started = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
                    metrics.TIME_TO_RUNNING.observe(max((now - started).total_seconds(), 0.0))
        if new.restarts > old.restarts:
            reason = new.last_restart.reason if new.last_restart else ""
            metrics.JOBS_RESTARTED.labels(
                namespace=namespace, reason=reason if reason in _RESTART_REASONS else c.REASON_WORKER_REPLACED
            ).inc(new.restarts - old.restarts)
        self.set_phase(str(meta.get("uid", "")), new.phase)

    def set_phase(self, uid: str, phase: str | None) -> None:
        """Move one job between phases in the gauge: O(1) per write."""
        old = self._phases.pop(uid, None)
        if old is not None:
            metrics.JOBS_BY_PHASE.labels(phase=old).dec()
        if phase is not None:
            self._phases[uid] = phase
            metrics.JOBS_BY_PHASE.labels(phase=phase).inc()


def _count_goodput(namespace: str, status: TrainingJobStatus) -> None:
    """A finished job adds its goodput to the fleet's: productive and badput seconds by cause."""
    goodput = status.goodput
    if goodput is None:
        return
    metrics.JOB_PRODUCTIVE_SECONDS.labels(namespace=namespace).inc(max(goodput.productive_seconds, 0.0))
    for category, badput in goodput.badput.items():
        metrics.JOB_BADPUT_SECONDS.labels(namespace=namespace, category=category).inc(max(badput.seconds, 0.0))
    metrics.JOB_STEPS_REDONE.labels(namespace=namespace).inc(max(goodput.steps_redone, 0))
