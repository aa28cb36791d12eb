"""The evaluation a job reports: every metric's latest and best value, and the objective.

It reaches the TrainingJob's status without the network: each evaluation is written
to the container's termination-message file, which the kubelet copies into the pod's
status when the container ends; the operator reads it from the pod watch it already
has. It also travels in the checkpoint, so a restarted group keeps its best values.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ludus_trainer.env import ENV_OBJECTIVE, ENV_TERMINATION_LOG

# The kubelet keeps at most 4096 bytes of a termination message.
MAX_MESSAGE_BYTES: Final = 4096
DEFAULT_TERMINATION_LOG: Final = "/dev/termination-log"


@dataclass(frozen=True)
class Objective:
    metric: str = "loss"
    goal: str = "minimize"

    @classmethod
    def parse(cls, text: str | None, default: Objective | None = None) -> Objective:
        """`metric:goal` as the operator sets it from spec.objective; the workload's default otherwise."""
        if text and ":" in text:
            metric, goal = text.rsplit(":", 1)
            if metric and goal in ("maximize", "minimize"):
                return cls(metric, goal)
        return default or cls()


def _minimized(metric: str, objective: Objective) -> bool:
    if metric == objective.metric:
        return objective.goal == "minimize"
    return "loss" in metric or "error" in metric


@dataclass
class EvaluationRecord:
    """Latest and best value of each metric, with the step and epoch each was measured at."""

    objective: Objective = field(default_factory=Objective)
    latest: dict[str, dict[str, float]] = field(default_factory=dict)
    best: dict[str, dict[str, float]] = field(default_factory=dict)
    # Where this process's time went (`ludus_trainer.goodput`): sent with the evaluation, not checkpointed.
    goodput: dict[str, Any] = field(default_factory=dict)
    # The model this run started from (file, step, SHA-256): status.initializedFrom, even for a run too
    # short for the operator's progress polls.
    init: dict[str, Any] = field(default_factory=dict)
    # The newest complete checkpoint (step, sizeBytes, time): the status names it after the pods are gone.
    checkpoint: dict[str, Any] = field(default_factory=dict)
    # The experiment tracker's run and whether everything reached it (`ludus_trainer.tracking`).
    tracking: dict[str, Any] = field(default_factory=dict)
    # The starting weights (spec.init) evaluated on this run's data before training: what promotion
    # compares the final evaluation with, measured on the same data.
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)

    def set_baseline(self, results: dict[str, float], step: int = 0) -> None:
        self.baseline = {m: {"value": round(float(v), 6), "step": step, "epoch": 0}
                         for m, v in results.items() if math.isfinite(float(v))}

    def update(self, results: dict[str, float], step: int, epoch: int) -> None:
        for metric, raw in results.items():
            value = float(raw)
            if not math.isfinite(value):
                continue
            entry = {"value": round(value, 6), "step": step, "epoch": epoch}
            self.latest[metric] = entry
            best = self.best.get(metric)
            lower = _minimized(metric, self.objective)
            if best is None or (value < best["value"] if lower else value > best["value"]):
                self.best[metric] = entry

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "objective": {"metric": self.objective.metric, "goal": self.objective.goal},
            "latest": self.latest,
            "best": self.best,
        }
        if self.baseline:
            record["baseline"] = self.baseline
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, objective: Objective) -> EvaluationRecord:
        """Restore from a checkpoint; the objective is today's (the spec may have named another)."""
        data = data or {}
        return cls(objective, dict(data.get("latest") or {}), dict(data.get("best") or {}),
                   baseline=dict(data.get("baseline") or {}))

    def message(self) -> str:
        """The termination message: compact JSON under the kubelet's size limit (the best values go first
        when there are too many metrics for both)."""
        extra = {k: v for k, v in (("goodput", self.goodput), ("init", self.init), ("checkpoint", self.checkpoint),
                                   ("tracking", self.tracking)) if v}
        full = json.dumps({"ludusEvaluation": {**self.as_dict(), **extra}}, separators=(",", ":"))
        if len(full.encode()) <= MAX_MESSAGE_BYTES:
            return full
        slim = {"objective": self.as_dict()["objective"], "latest": {}, "best": {}, "baseline": {}, **extra}
        keys = [self.objective.metric, *sorted(k for k in self.latest if k != self.objective.metric)]
        for key in keys:
            for part in ("baseline", "best", "latest"):
                source = getattr(self, part)
                if key in source:
                    slim[part][key] = source[key]
                    text = json.dumps({"ludusEvaluation": slim}, separators=(",", ":"))
                    if len(text.encode()) > MAX_MESSAGE_BYTES:
                        del slim[part][key]
        return json.dumps({"ludusEvaluation": slim}, separators=(",", ":"))

    def publish(self) -> None:
        """Overwrite the termination-message file (inside a pod; a no-op where there is none)."""
        _write_termination_message(self.message())


def publish_error(reason: str, message: str) -> None:
    """A failure no restart can mend (a model that does not fit, a source with no model): the operator
    reads it from the termination message and fails the job with this reason instead of retrying."""
    error = {"reason": reason, "message": message[:3000]}
    _write_termination_message(json.dumps({"ludusEvaluation": {"error": error}}, separators=(",", ":")))


def _write_termination_message(text: str) -> None:
    path = Path(os.environ.get(ENV_TERMINATION_LOG, DEFAULT_TERMINATION_LOG))
    if not path.parent.exists() or (not path.exists() and ENV_TERMINATION_LOG not in os.environ):
        return
    try:
        path.write_text(text)
    except OSError:
        pass  # a read-only or missing file: the metrics and the logs still carry it


def objective_from_env(default: Objective | None = None) -> Objective:
    return Objective.parse(os.environ.get(ENV_OBJECTIVE), default)
