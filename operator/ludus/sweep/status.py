"""The one place a Sweep's status is computed: counted from its trial records, then ended, suspended
or running as the pass decided (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from ludus.api import constants as c
from ludus.api.conditions import RefusalCondition, refusal_condition, spec_invalid, upsert_condition
from ludus.api.models import Objective
from ludus.api.sweep import BestTrial, SweepStatus, TrialRecord
from ludus.sweep.trials import state_of

STATES = ("running", "succeeded", "failed", "stopped", "deleted")
# Trials a Sweep's status lists, at most: the best, then the running ones (newest first), then the latest
# finished. The others are counted; their TrainingJobs are their record (a sweep may run 10,000 trials,
# and their records would not fit one object). Early stopping compares against the trials listed.
MAX_LISTED_TRIALS: Final = 100


def created_count(records: Mapping[int, TrialRecord]) -> int:
    """Trials created so far: they are numbered from 0, and the newest are always known."""
    return max(records, default=-1) + 1


def listed_trials(records: Mapping[int, TrialRecord], best: BestTrial | None) -> list[TrialRecord]:
    """The window of trials the status lists (MAX_LISTED_TRIALS), by number."""
    newest_first = sorted(records.values(), key=lambda t: -t.number)
    ranked = ([records[best.number]] if best is not None and best.number in records else []) + [
        t for t in newest_first if state_of(t) == "running"] + [t for t in newest_first if state_of(t) != "running"]
    chosen: dict[int, TrialRecord] = {}
    for trial in ranked:
        if len(chosen) >= MAX_LISTED_TRIALS:
            break
        chosen.setdefault(trial.number, trial)
    return [chosen[n] for n in sorted(chosen)]


def counts_of(records: Mapping[int, TrialRecord]) -> dict[str, int]:
    states = [state_of(t) for t in records.values()]
    return {s: sum(1 for state in states if state == s) for s in STATES}


def counted_status(old: SweepStatus, records: Mapping[int, TrialRecord], objective: Objective | None,
                   best: BestTrial | None, max_trials: int, generation: int) -> SweepStatus:
    """The trials, their counts and the best one; `objective` only once it is settled."""
    counts = counts_of(records)
    finished = created_count(records) - counts["running"]
    metric = objective.metric if objective else ""
    return old.model_copy(update={
        "objective": objective,
        "trials": listed_trials(records, best),
        "created": created_count(records), "running": counts["running"], "succeeded": counts["succeeded"],
        "failed": counts["failed"], "stopped": counts["stopped"], "deleted": counts["deleted"],
        "progress": f"{finished}/{max_trials}",
        "best": best,
        "best_summary": f"{metric} {best.value:.4g}"[:63] if best else "",
        "observed_generation": generation,
    })


def ended_status(status: SweepStatus, phase: str, cond: str, reason: str, message: str, now: datetime
                 ) -> SweepStatus:
    conditions = upsert_condition(list(status.conditions), cond, "True", reason, message, now)
    conditions = upsert_condition(conditions, c.COND_RUNNING, "False", reason, message, now)
    return status.model_copy(update={"phase": phase, "conditions": conditions,
                                     "completion_time": status.completion_time or now})


def suspended_status(status: SweepStatus, now: datetime) -> SweepStatus:
    conditions = upsert_condition(list(status.conditions), c.COND_SUSPENDED, "True", c.REASON_SUSPENDED,
                                  "spec.suspend is true: trials are suspended and none start", now)
    return status.model_copy(update={"phase": c.PHASE_SUSPENDED, "conditions": conditions})


def refusal_status(status: SweepStatus, kind: RefusalCondition, refused: str | None, now: datetime
                   ) -> tuple[SweepStatus, bool]:
    """Created (or ChildrenUpdated) False naming the trial the API server refused and its words, True again
    once it accepts; and whether the status already said exactly that (its Event went out then)."""
    conditions, said = refusal_condition(status.conditions, kind, refused, now)
    return (status if conditions is None else status.model_copy(update={"conditions": conditions})), said


def running_status(status: SweepStatus, created: int, active: int, finished: int, limit: int, now: datetime
                   ) -> SweepStatus:
    conditions = list(status.conditions)
    if any(x.type == c.COND_SUSPENDED for x in conditions):
        conditions = upsert_condition(conditions, c.COND_SUSPENDED, "False", c.SWEEP_REASON_RUNNING, "trials run", now)
    conditions = upsert_condition(conditions, c.COND_RUNNING, "True", c.SWEEP_REASON_RUNNING,
                                  f"{active} trials running, {finished} of {limit} finished", now)
    return status.model_copy(update={"phase": c.PHASE_RUNNING, "conditions": conditions,
                                     "start_time": status.start_time or now, "created": created, "running": active})


def invalid_status(old: SweepStatus, message: str, now: datetime) -> SweepStatus:
    """A spec the schema let through but the model refuses: Failed, naming the field. A sweep that
    already started keeps its phase and its trials, with SpecValid False naming the field (a stored
    spec another operator version wrote must not end a running search)."""
    if old.start_time is not None and old.phase not in c.TERMINAL_PHASES:
        return old.model_copy(update={"conditions": spec_invalid(list(old.conditions), message, now)})
    return old.model_copy(update={
        "phase": c.PHASE_FAILED, "completion_time": now,
        "conditions": upsert_condition(list(old.conditions), c.COND_FAILED, "True", c.REASON_INVALID_SPEC, message,
                                       now),
    })
