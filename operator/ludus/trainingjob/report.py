"""What a finished or running TrainingJob reports, read from its status by the resources that own
jobs (a Sweep's trials, a ContinuousTraining's runs): its latest evaluation metrics and objective."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ludus.api.models import Objective


def latest_metrics(job: Mapping[str, Any]) -> dict[str, tuple[float, int]]:
    """Each evaluation metric's latest value and the step it was measured at."""
    latest = (((job.get("status") or {}).get("evaluation") or {}).get("latest")) or {}
    out: dict[str, tuple[float, int]] = {}
    for metric, entry in latest.items():
        if isinstance(entry, Mapping) and isinstance(entry.get("value"), int | float):
            out[str(metric)] = (float(entry["value"]), int(entry.get("step") or 0))
    return out


def reported_objective(job: Mapping[str, Any]) -> Objective | None:
    """The objective the trial's status resolved (the workload's own when nothing was declared)."""
    raw = (((job.get("status") or {}).get("evaluation") or {}).get("objective")) or {}
    if raw.get("metric") and raw.get("goal") in ("maximize", "minimize"):
        return Objective(metric=raw["metric"], goal=raw["goal"])
    return None
