"""What one pass over a ContinuousTraining knows and has decided so far: read by every policy in
`continuous/policies/`, and turned into the status by `continuous/status.py` (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ludus.api.continuous import (
    Champion,
    ChampionHistory,
    ContinuousTraining,
    ContinuousTrainingStatus,
    Publishing,
    RunRecord,
)
from ludus.api.models import Condition, Objective, TrainingJob


@dataclass
class CTPlan:
    """What one pass does, in order: create runs and publish pods, write the status, delete what
    is done with (replaced runs, runs past the history limits, finished publish pods), send Events."""

    create: list[dict[str, Any]] = field(default_factory=list)
    status: ContinuousTrainingStatus = field(default_factory=ContinuousTrainingStatus)  # set last
    delete_runs: list[str] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # triggers of the runs created
    decisions: list[tuple[str, str]] = field(default_factory=list)  # (promoted|rejected, reason)
    requeue_after: float | None = None
    recording: bool = False  # a record pod (a rejection tagged in MLflow) has not ended yet


@dataclass(frozen=True)
class Observed:
    """What the controller read besides the resource and its runs."""

    data_version: str | None = None
    data_error: str | None = None  # why the referenced ConfigMap key could not be read


@dataclass
class RunPass:
    """The pass's working state: the run records (by number), the runs in the API server (by number),
    the champion and the publication in flight, and the plan the policies add to."""

    ct: ContinuousTraining
    now: datetime
    objective: Objective
    records: dict[int, RunRecord]
    by_number: dict[int, TrainingJob]
    conditions: list[Condition]
    plan: CTPlan = field(default_factory=CTPlan)
    champion: Champion | None = None
    publishing: Publishing | None = None
    champions: list[ChampionHistory] = field(default_factory=list)
    promotions: int = 0
    rejections: int = 0
    handled_promote: str | None = None
    active: list[RunRecord] = field(default_factory=list)

    def event(self, kind: str, reason: str, message: str) -> None:
        self.plan.events.append((kind, reason, message))
