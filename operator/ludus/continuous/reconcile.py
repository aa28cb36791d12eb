"""One pass over a ContinuousTraining: from it, its runs and its publish pods to what to do (pure).

The runs in the API server are the record: each carries what started it (the schedule's time, the
data version, the retrain request) as annotations, so a pass that runs twice, or an operator
restarted between a run's end and its promotion, decides the same thing again and the API server
refuses the second copy of a run or a publish pod (their names are fixed by the run's number).
A promotion is decided, written to the status (`publishing`), published by a pod, and only then
made champion: no step is lost and none is done twice. The rules are the policies in
`continuous/policies/`, applied here in order; the status is computed by `continuous/status`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ludus.api import constants as c
from ludus.api.conditions import upsert_condition
from ludus.api.continuous import ContinuousTraining, RunRecord
from ludus.api.models import TrainingJob
from ludus.continuous.policies.concurrency import replace_older_runs, start_runs
from ludus.continuous.policies.history import expired_runs
from ludus.continuous.policies.promotion import decide_ended_runs, promote_by_hand
from ludus.continuous.policies.publication import clear_records, finish_publication
from ludus.continuous.policies.triggers import data_condition, read_triggers
from ludus.continuous.runs import objective_of, run_number, warm_start_of
from ludus.continuous.state import CTPlan, Observed, RunPass
from ludus.continuous.status import continuous_status
from ludus.trainingjob.child import annotation, baseline_metrics, latest_metrics, phase_of, reported_objective
from ludus.trainingjob.objective import resolve

__all__ = ["CTPlan", "Observed", "reconcile_continuous"]


def reconcile_continuous(ct: ContinuousTraining, jobs: Sequence[TrainingJob],
                         pods: Sequence[Mapping[str, Any]], observed: Observed, now: datetime) -> CTPlan:
    """The pass for one resource, the TrainingJobs labelled as its runs and its publish pods."""
    s, settled = _begin(ct, jobs, now)
    finish_publication(s, pods)
    clear_records(s, pods)
    decide_ended_runs(s)
    promote_by_hand(s)
    triggers = read_triggers(ct, jobs, observed, now)
    replace_older_runs(s)
    s.conditions = data_condition(s.conditions, ct, observed, triggers.data, now)
    last_schedule = start_runs(s, triggers)
    s.plan.delete_runs.extend(expired_runs(s))
    s.plan.status = continuous_status(s, settled, triggers, last_schedule)
    if triggers.next_fire is not None:
        s.plan.requeue_after = max((triggers.next_fire - now).total_seconds(), 0.05)
    return s.plan


def _begin(ct: ContinuousTraining, jobs: Sequence[TrainingJob], now: datetime) -> tuple[RunPass, bool]:
    """The pass's state: the old records updated from the runs in the API server, and the objective
    (only a finished run settles it: a running run's word is never used)."""
    old = ct.status
    done = (reported_objective(j) for j in jobs if phase_of(j) == c.PHASE_SUCCEEDED)
    objective, settled = resolve(objective_of(ct), old.objective, done)
    previous = {r.number: r for r in old.runs}
    records: dict[int, RunRecord] = dict(previous)
    by_number: dict[int, TrainingJob] = {}
    for job in jobs:
        number = run_number(job)
        if number is not None:
            by_number[number] = job
            records[number] = _record(ct, job, number, previous.get(number))
    conditions = upsert_condition(list(old.conditions), c.CT_COND_VALID, "True", c.CT_REASON_SPEC_VALID,
                                  "the spec is valid", now)
    return RunPass(ct=ct, now=now, objective=objective, records=records, by_number=by_number,
                   conditions=conditions, champion=old.champion, publishing=old.publishing,
                   champions=list(old.champions), promotions=old.promotions, rejections=old.rejections,
                   handled_promote=old.handled_promote), settled


def _record(ct: ContinuousTraining, job: TrainingJob, number: int, old: RunRecord | None) -> RunRecord:
    phase = phase_of(job)
    evaluation = dict(old.evaluation) if old else {}
    baseline = dict(old.baseline) if old else {}
    if phase in c.TERMINAL_PHASES:
        evaluation = {m: v for m, (v, _) in latest_metrics(job).items()}
        baseline = baseline_metrics(job)
    base = old or RunRecord(number=number, name=job.metadata.name)
    return base.model_copy(update={
        "phase": phase if not old or old.phase != c.CT_PHASE_REPLACED else c.CT_PHASE_REPLACED,
        "trigger": annotation(job, c.ANNOTATION_TRIGGER) or base.trigger,
        "data_version": annotation(job, c.ANNOTATION_DATA_VERSION) or base.data_version,
        "warm_start": warm_start_of(ct, job) or base.warm_start,
        "evaluation": evaluation,
        "baseline": baseline,
        "tracking_run_id": job.status.tracking.run_id if job.status.tracking else base.tracking_run_id,
    })
