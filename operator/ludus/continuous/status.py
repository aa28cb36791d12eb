"""The one place a ContinuousTraining's status is computed, from the pass's decisions (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from ludus.api import constants as c
from ludus.api.conditions import upsert_condition
from ludus.api.continuous import Champion, ContinuousTrainingStatus
from ludus.api.models import Condition, Objective, TrainingJob
from ludus.continuous.policies.triggers import Triggers
from ludus.continuous.state import RunPass
from ludus.trainingjob.child import unschedulable

# Run records and champions the status keeps (the newest); the runs themselves go by the history limits.
MAX_RECORDS: Final = 50


def continuous_status(s: RunPass, settled: bool, triggers: Triggers, last_schedule: datetime | None
                      ) -> ContinuousTrainingStatus:
    spec, old, started = s.ct.spec, s.ct.status, bool(s.plan.started)
    kept = sorted(s.records)[-MAX_RECORDS:]
    conditions = _conditions(s)
    phase = (c.PHASE_SUSPENDED if spec.suspend and not s.active else c.CT_PHASE_PUBLISHING if s.publishing
             else c.PHASE_RUNNING if s.active else c.CT_PHASE_WAITING)
    return old.model_copy(update={
        "objective": s.objective if settled else None, "observed_generation": s.ct.metadata.generation,
        "phase": phase, "conditions": conditions, "champion": s.champion,
        "champions": s.champions[-MAX_RECORDS:], "champion_summary": summary(s.champion, s.objective),
        "publishing": s.publishing, "runs": [s.records[n] for n in kept],
        "active": [r.name for r in sorted(s.active, key=lambda r: r.number)],
        "last_run": s.records[max(s.records)].name if s.records else None,
        "last_schedule_time": last_schedule, "next_schedule_time": triggers.next_fire,
        "data_version": triggers.data if started else triggers.last_data,
        "handled_retrain": triggers.retrain if started and triggers.retrain else triggers.last_retrain,
        "handled_promote": s.handled_promote, "promotions": s.promotions, "rejections": s.rejections,
    })


def invalid_status(old: ContinuousTrainingStatus, message: str, generation: int, now: datetime
                   ) -> ContinuousTrainingStatus:
    """A spec the schema let through but the model refuses (a cron, a time zone): Failed, naming the
    field, until the spec is fixed. One that has runs keeps its phase (Valid False names the field): a
    stored spec another operator version wrote must not fail a running run or hide its champion."""
    conditions = upsert_condition(list(old.conditions), c.CT_COND_VALID, "False", c.REASON_INVALID_SPEC, message, now)
    if old.runs and old.phase != c.PHASE_FAILED:
        return old.model_copy(update={"conditions": conditions})
    return old.model_copy(update={"phase": c.PHASE_FAILED, "conditions": conditions, "observed_generation": generation})


def _conditions(s: RunPass) -> list[Condition]:
    champion, suspend, now = s.champion, s.ct.spec.suspend, s.now
    conditions = upsert_condition(
        s.conditions, c.CT_COND_CHAMPION, "True" if champion else "False",
        champion.reason if champion else c.CT_REASON_NO_CHAMPION,
        f"{champion.job} serves from {champion.model_path}" if champion else
        "no run has been promoted yet: the first evaluated run that meets the thresholds will be", now)
    if suspend or any(x.type == c.COND_SUSPENDED for x in conditions):
        conditions = upsert_condition(conditions, c.COND_SUSPENDED, "True" if suspend else "False",
                                      c.REASON_SUSPENDED if suspend else c.REASON_RESUMED,
                                      "spec.suspend is true: no run starts" if suspend else "runs start", now)
    active = [s.by_number[r.number] for r in s.active if r.number in s.by_number]
    return run_scheduling(conditions, active, now)


def run_scheduling(conditions: list[Condition], active: Sequence[TrainingJob], now: datetime) -> list[Condition]:
    """RunScheduled False, with the run's own words, while an active run's pods cannot be placed (its
    claim does not bind, no room); True again once they can."""
    for job in active:
        cond = unschedulable(job)
        if cond is not None:
            return upsert_condition(conditions, c.CT_COND_RUN_SCHEDULED, "False", cond.reason,
                                    f"{job.metadata.name}: {cond.message}", now)
    if any(x.type == c.CT_COND_RUN_SCHEDULED and x.status == "False" for x in conditions):
        return upsert_condition(conditions, c.CT_COND_RUN_SCHEDULED, "True", c.CT_REASON_RUN_PLACED,
                                "the active run is placed", now)
    return conditions


def summary(champion: Champion | None, objective: Objective) -> str:
    if champion is None:
        return ""
    value = champion.evaluation.get(objective.metric)
    return (f"{champion.job} {objective.metric} {value:.4g}" if value is not None else champion.job)[:63]
