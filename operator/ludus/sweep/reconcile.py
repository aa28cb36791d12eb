"""One pass over a Sweep: from the sweep and its trial TrainingJobs to what to do and its status (pure).

The trials in the API server are the record. A trial's number is its name's suffix, so a pass
that runs twice (a lagging cache, a restarted operator) can only try to create the same trial
again, which the API server refuses: no trial is repeated, and none is lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ludus.api import constants as c
from ludus.api.conditions import valid_again
from ludus.api.models import Objective, TrainingJob
from ludus.api.sweep import BestTrial, Sweep, SweepStatus, TrialRecord
from ludus.sweep.records import ended_records, stopped_record_pod
from ludus.sweep.space import SpaceError, distributions, grid_size
from ludus.sweep.status import (
    counted_status,
    counts_of,
    created_count,
    ended_status,
    running_status,
    suspended_status,
)
from ludus.sweep.study import suggest_many, to_stop
from ludus.sweep.trials import outcome, record, state_of, trial_job, trial_name, trial_number
from ludus.trainingjob.child import latest_metrics, phase_of, reported_objective
from ludus.trainingjob.objective import better, resolve


@dataclass
class SweepPlan:
    """What one pass does: trial jobs to create, record pods to create, trials to stop early, suspend or
    resume, ended record pods to delete, the status and the Events, in that order."""

    create: list[dict[str, Any]] = field(default_factory=list)
    record: list[dict[str, Any]] = field(default_factory=list)  # pods tagging stopped trials' runs, before the stop
    delete_pods: list[str] = field(default_factory=list)  # record pods that ended
    recording: bool = False  # a record pod still runs: look again
    announce: list[str] = field(default_factory=list)  # the TrialCreated Event of each created trial, in order
    stop: list[str] = field(default_factory=list)
    suspend: list[str] = field(default_factory=list)
    resume: list[str] = field(default_factory=list)
    status: SweepStatus = field(default_factory=SweepStatus)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def objective_of(sweep: Sweep, jobs: Sequence[TrainingJob], old: SweepStatus) -> tuple[Objective, bool]:
    """The objective: the sweep's, the template's, the one the trials' status resolved (the
    workload's own), or loss/minimize. The flag says whether it is settled: by a finished trial (the
    trainer's own word, from its termination message); a running one's is used meanwhile, not recorded."""
    done = (reported_objective(j) for j in jobs if phase_of(j) == c.PHASE_SUCCEEDED)
    return resolve(sweep.spec.objective or sweep.spec.template.objective, old.objective, done,
                   (reported_objective(j) for j in jobs))


def _records(jobs: Sequence[TrainingJob], old: SweepStatus, objective: Objective,
             settled: bool) -> dict[int, TrialRecord]:
    """Each trial's record: from its TrainingJob, else the last one kept. A trial whose job was deleted
    by hand keeps its record, and one deleted before it finished is recorded as Deleted: it no longer
    holds a parallel slot, and the sweep can end."""
    previous = {t.number: t for t in old.trials}
    records = {n: t if state_of(t) != "running" else t.model_copy(update={"phase": c.SWEEP_TRIAL_DELETED})
               for n, t in previous.items()}
    for job in jobs:
        number = trial_number(job)
        if number is not None:
            records[number] = record(job, number, objective, previous.get(number), track=settled)
    return records


def _best(records: Mapping[int, TrialRecord], jobs: Mapping[str, TrainingJob], objective: Objective,
          old: BestTrial | None) -> BestTrial | None:
    best: TrialRecord | None = None
    for trial in sorted(records.values(), key=lambda t: t.number):
        if state_of(trial) == "succeeded" and trial.value is not None:
            if best is None or better(trial.value, best.value or 0.0, objective):
                best = trial
    if best is None or best.value is None:
        return None
    job = jobs.get(best.name)
    metrics = {m: v for m, (v, _) in latest_metrics(job).items()} if job else (
        dict(old.metrics) if old and old.number == best.number else {})
    return BestTrial(number=best.number, name=best.name, parameters=dict(best.parameters), value=best.value,
                     metrics=metrics)


def reconcile_sweep(sweep: Sweep, jobs: Sequence[TrainingJob], now: datetime,
                    record_pods: Sequence[Mapping[str, Any]] = ()) -> SweepPlan:
    """The pass for one sweep, the TrainingJobs labelled as its trials and its record pods (stopped trials'
    runs tagged in MLflow, records.py)."""
    conditions = valid_again(list(sweep.status.conditions), now)  # a spec that stopped validating, fixed
    if conditions is not None:
        sweep = sweep.model_copy(update={"status": sweep.status.model_copy(update={"conditions": conditions})})
    spec, old = sweep.spec, sweep.status
    plan = SweepPlan()
    plan.delete_pods, plan.events, plan.recording = ended_records(sweep, record_pods)
    objective, settled = objective_of(sweep, jobs, old)
    records = _records(jobs, old, objective, settled)
    by_name = {j.metadata.name: j for j in jobs}
    for trial in old.trials:
        if state_of(trial) == "running" and state_of(records[trial.number]) == "deleted":
            plan.events.append(("Warning", c.SWEEP_REASON_TRIAL_DELETED, f"trial {trial.name} was deleted before "
                                "it finished: recorded as Deleted, its place is free"))
    best = _best(records, by_name, objective, old.best)
    status = counted_status(old, records, objective if settled else None, best, spec.max_trials,
                            sweep.metadata.generation)
    if best and (old.best is None or old.best.number != best.number):
        plan.events.append(("Normal", c.SWEEP_REASON_NEW_BEST, f"trial {best.name} is the best so far: "
                            f"{objective.metric} {best.value:.4g} with {values_text(best.parameters)}"))
    if old.phase in c.TERMINAL_PHASES:
        plan.status = status
        return plan
    try:
        distributions(spec.parameters)  # a space no algorithm can search is refused, whichever runs
        limit = min(spec.max_trials, grid_size(spec.parameters)) if spec.algorithm.name == "grid" else spec.max_trials
    except SpaceError as err:
        plan.status = ended_status(status, c.PHASE_FAILED, c.COND_FAILED, c.REASON_INVALID_SPEC, str(err), now)
        plan.events.append(("Warning", c.REASON_INVALID_SPEC, str(err)))
        return plan
    ended = _ending(sweep, records, by_name, objective, limit)
    if ended is not None:
        phase, cond, reason, message = ended
        plan.status = ended_status(status, phase, cond, reason, message, now)
        plan.events.append(("Normal" if phase == c.PHASE_SUCCEEDED else "Warning", reason, message))
        return plan
    running = [t for t in records.values() if state_of(t) == "running"]
    if spec.suspend:
        plan.suspend = [t.name for t in running if not _suspended(by_name.get(t.name))]
        plan.status = suspended_status(status, now)
        return plan
    plan.resume = [t.name for t in running if _suspended(by_name.get(t.name))]
    active = _stop_and_start(sweep, plan, records, objective, limit, len(running))
    finished = created_count(records) - len(running)
    plan.status = running_status(status, created_count(records) + len(plan.create), active, finished, limit, now)
    return plan


def _stop_and_start(sweep: Sweep, plan: SweepPlan, records: Mapping[int, TrialRecord], objective: Objective,
                    limit: int, running: int) -> int:
    """Stop the trials median stopping rules out, then start as many as the parallelism and the limit allow
    (the algorithm may have nothing more to suggest); returns how many trials are active after."""
    spec = sweep.spec
    outcomes = [outcome(t) for t in records.values()]
    stopping = set(to_stop(spec, objective, outcomes))
    for number in sorted(stopping):
        trial = records[number]
        plan.stop.append(trial.name)
        why = f"{objective.metric} {trial.value} is worse than the median of earlier trials at its step"
        plan.events.append(("Normal", c.SWEEP_REASON_STOPPED_EARLY, f"trial {trial.name} stopped early: {why}"))
        pod = stopped_record_pod(sweep, trial, why)
        if pod is not None:
            plan.record.append(pod)
    active = running - len(stopping)
    first = created_count(records)
    slots = max(0, min(spec.parallel_trials - active, limit - first))
    numbers = [n for n in range(first, first + slots) if n < limit]
    for number, values in zip(numbers, suggest_many(spec, objective, outcomes, numbers), strict=True):
        if values is None:
            break
        job = trial_job(sweep, number, values, spec.objective or spec.template.objective)
        plan.create.append(job)
        plan.announce.append(f"trial {trial_name(sweep.metadata.name, number)} with {values_text(values)}")
        active += 1  # its TrialCreated Event goes out once the API server took it
    return active


def _suspended(job: TrainingJob | None) -> bool:
    return job is not None and job.spec.suspend


def values_text(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))


def _ending(sweep: Sweep, records: Mapping[int, TrialRecord], jobs: Mapping[str, TrainingJob],
            objective: Objective, limit: int) -> tuple[str, str, str, str] | None:
    """Why the sweep ends now, if it does: (phase, condition, reason, message)."""
    spec = sweep.spec
    counts = counts_of(records)
    finished = created_count(records) - counts["running"]
    done = [t for t in records.values() if state_of(t) == "succeeded"]
    if done and all(t.value is None for t in done) and not any(t.value is not None for t in records.values()):
        reported = sorted({m for t in done for m in (latest_metrics(jobs[t.name]) if t.name in jobs else {})})
        message = (f"the objective metric {objective.metric!r} was never reported: trials "
                   f"{', '.join(t.name for t in done)} reported "
                   f"{', '.join(reported) if reported else 'no evaluation metrics'}")
        return c.PHASE_FAILED, c.COND_FAILED, c.SWEEP_REASON_OBJECTIVE_MISSING, message
    if counts["failed"] >= spec.max_failed_trials:
        return (c.PHASE_FAILED, c.COND_FAILED, c.SWEEP_REASON_TOO_MANY_FAILED,
                f"{counts['failed']} trials failed (maxFailedTrials {spec.max_failed_trials})")
    if finished >= limit and counts["running"] == 0:
        if limit < spec.max_trials:
            return (c.PHASE_SUCCEEDED, c.COND_SUCCEEDED, c.SWEEP_REASON_EXHAUSTED,
                    f"every one of the grid's {limit} combinations ran")
        return c.PHASE_SUCCEEDED, c.COND_SUCCEEDED, c.SWEEP_REASON_MAX_TRIALS, f"{finished} trials finished"
    return None
