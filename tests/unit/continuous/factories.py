"""ContinuousTraining objects and passes for the pure tests: a resource as the API server would hold
it, and a pass's state with runs in given phases."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining, RunRecord
from ludus.api.models import Objective, TrainingJob
from ludus.continuous.state import RunPass

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def ct_body(name: str = "fresh", annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "template": {"image": "ludus-trainer:latest", "command": ["python", "-m", "ludus_trainer"],
                     "checkpoint": {"claimName": "models"}},
        "promotion": {"objective": {"metric": "accuracy", "goal": "maximize"}, "minImprovement": 0.01},
    }
    base.update(spec)
    return {"apiVersion": c.API_VERSION, "kind": c.CT_KIND,
            "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}", "generation": 1,
                         "creationTimestamp": T0.isoformat(), "annotations": annotations or {}},
            "spec": base}


def run_job(name: str, number: int, phase: str, annotations: dict[str, str] | None = None,
            **metrics: float) -> TrainingJob:
    """A run's TrainingJob as its owner reads it."""
    body = {"metadata": {"name": f"{name}-{number}", "namespace": "team-a", "labels": {c.LABEL_RUN: str(number)},
                         "annotations": annotations or {}},
            "spec": {"image": "ludus-trainer:latest", "checkpoint": {"claimName": "models"}},
            "status": {"phase": phase,
                       "evaluation": {"latest": {m: {"value": v, "step": 9} for m, v in metrics.items()}}}}
    return TrainingJob.model_validate(body)


def make_pass(runs: Mapping[int, tuple[str, dict[str, float]]] | None = None, decided: Mapping[int, bool] | None = None,
              name: str = "fresh", annotations: dict[str, str] | None = None, **spec: Any) -> RunPass:
    """A pass over a resource whose runs `number -> (phase, evaluation)` exist; `decided` marks runs whose
    promotion was already decided (True: promoted)."""
    ct = ContinuousTraining.model_validate(ct_body(name, annotations, **spec))
    runs, decided = dict(runs or {}), dict(decided or {})
    records = {n: RunRecord(number=n, name=f"{name}-{n}", phase=phase, evaluation=evaluation,
                            promoted=decided.get(n)) for n, (phase, evaluation) in runs.items()}
    by_number = {n: run_job(name, n, phase, **evaluation) for n, (phase, evaluation) in runs.items()}
    return RunPass(ct=ct, now=T0, objective=Objective(metric="accuracy", goal="maximize"), records=records,
                   by_number=by_number, conditions=[])
