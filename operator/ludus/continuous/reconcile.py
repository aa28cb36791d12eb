"""One pass over a ContinuousTraining: from it, its runs and its publish pods to what to do (pure).

The runs in the API server are the record: each carries what started it (the schedule's time, the
data version, the retrain request) as annotations, so a pass that runs twice, or an operator
restarted between a run's end and its promotion, decides the same thing again and the API server
refuses the second copy of a run or a publish pod (their names are fixed by the run's number).
A promotion is decided, written to the status (`publishing`), published by a pod, and only then
made champion: no step is lost and none is done twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.conditions import upsert_condition
from ludus.api.continuous import (
    Champion,
    ChampionHistory,
    ContinuousTraining,
    ContinuousTrainingStatus,
    Publishing,
    RunRecord,
    parse_threshold,
)
from ludus.api.models import Condition, Objective
from ludus.continuous.promotion import decide
from ludus.continuous.publish import publish_pod, publish_pod_name, published
from ludus.continuous.runs import (
    TRIGGER_DATA,
    TRIGGER_MANUAL,
    TRIGGER_SCHEDULE,
    champion_path,
    claim_of,
    model_dir,
    objective_of,
    run_job,
    run_name,
    run_number,
    warm_start_of,
)
from ludus.continuous.schedule import due
from ludus.trainingjob.child import annotation, latest_metrics, phase_of, reported_objective
from ludus.trainingjob.objective import resolve

COND_VALID: Final = "Valid"
COND_DATA: Final = "DataVersionAvailable"
COND_CHAMPION: Final = "ChampionAvailable"
COND_SUSPENDED: Final = "Suspended"
COND_RUN_SCHEDULED: Final = "RunScheduled"
REASON_INVALID: Final = "InvalidSpec"
REASON_RUN_STARTED: Final = "RunStarted"
REASON_SKIPPED: Final = "ScheduleSkipped"
REASON_REPLACED: Final = "RunReplaced"
REASON_PROMOTED: Final = "Promoted"
REASON_REJECTED: Final = "ModelRejected"
REASON_RUN_FAILED: Final = "RunFailed"
REASON_PUBLISH_FAILED: Final = "PublishFailed"
REASON_PUBLISHING: Final = "Publishing"
REASON_MANUAL: Final = "Manual"
REASON_PROMOTE_REFUSED: Final = "PromoteRefused"
REASON_DATA_MISSING: Final = "DataVersionMissing"
PHASE_REPLACED: Final = "Replaced"
# Run records and champions the status keeps (the newest); the runs themselves go by the history limits.
MAX_RECORDS: Final = 50


@dataclass
class CTPlan:
    """What one pass does, in order: create runs and publish pods, write the status, delete what
    is done with (replaced runs, runs past the history limits, finished publish pods), send Events."""

    create: list[dict[str, Any]] = field(default_factory=list)
    status: ContinuousTrainingStatus = field(default_factory=ContinuousTrainingStatus)
    delete_runs: list[str] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # triggers of the runs created
    decisions: list[tuple[str, str]] = field(default_factory=list)  # (promoted|rejected, reason)
    requeue_after: float | None = None


@dataclass(frozen=True)
class Observed:
    """What the controller read besides the resource and its runs."""

    data_version: str | None = None
    data_error: str | None = None  # why the referenced ConfigMap key could not be read


def _record(ct: ContinuousTraining, job: Mapping[str, Any], number: int, old: RunRecord | None) -> RunRecord:
    phase = phase_of(job)
    evaluation = dict(old.evaluation) if old else {}
    if phase in c.TERMINAL_PHASES:
        evaluation = {m: v for m, (v, _) in latest_metrics(job).items()}
    base = old or RunRecord(number=number, name=str(job["metadata"]["name"]))
    return base.model_copy(update={
        "phase": phase if not old or old.phase != PHASE_REPLACED else PHASE_REPLACED,
        "trigger": annotation(job, c.ANNOTATION_TRIGGER) or base.trigger,
        "data_version": annotation(job, c.ANNOTATION_DATA_VERSION) or base.data_version,
        "warm_start": warm_start_of(ct, job) or base.warm_start,
        "evaluation": evaluation,
    })


def _objective(ct: ContinuousTraining, jobs: Sequence[Mapping[str, Any]], old: ContinuousTrainingStatus
               ) -> tuple[Objective, bool]:
    """Only a finished run settles the objective (a running run's word is never used)."""
    done = (reported_objective(j) for j in jobs if phase_of(j) == c.PHASE_SUCCEEDED)
    return resolve(objective_of(ct), old.objective, done)


def _newest(jobs: Sequence[Mapping[str, Any]], key: str) -> str | None:
    """The annotation `key` of the newest run that has it."""
    numbered = sorted(((run_number(j) or -1, j) for j in jobs), key=lambda p: p[0])
    for _, job in reversed(numbered):
        value = annotation(job, key)
        if value is not None:
            return value
    return None


def _summary(champion: Champion | None, objective: Objective) -> str:
    if champion is None:
        return ""
    value = champion.evaluation.get(objective.metric)
    return (f"{champion.job} {objective.metric} {value:.4g}" if value is not None else champion.job)[:63]


def reconcile_continuous(ct: ContinuousTraining, jobs: Sequence[Mapping[str, Any]],
                         pods: Sequence[Mapping[str, Any]], observed: Observed, now: datetime) -> CTPlan:
    """The pass for one resource, the TrainingJobs labelled as its runs and its publish pods."""
    spec, old = ct.spec, ct.status
    plan = CTPlan()
    name = ct.metadata.name
    objective, settled = _objective(ct, jobs, old)
    previous = {r.number: r for r in old.runs}
    records: dict[int, RunRecord] = dict(previous)
    by_number: dict[int, Mapping[str, Any]] = {}
    for job in jobs:
        number = run_number(job)
        if number is not None:
            by_number[number] = job
            records[number] = _record(ct, job, number, previous.get(number))
    status = old.model_copy(update={"objective": objective if settled else None,
                                    "observed_generation": ct.metadata.generation})
    champion, publishing = old.champion, old.publishing
    champions = list(old.champions)
    promotions, rejections = old.promotions, old.rejections
    conditions = upsert_condition(list(old.conditions), COND_VALID, "True", "SpecValid", "the spec is valid", now)

    # 1. A publication in flight: done when its pod is.
    publishing_number = next((n for n, r in records.items() if publishing and r.name == publishing.job), None)
    if publishing is not None and publishing_number is None:
        plan.events.append(("Warning", REASON_PUBLISH_FAILED, f"{publishing.job} has no run record: not published"))
        publishing = None
    if publishing is not None and publishing_number is not None:
        number = publishing_number
        pod_name = publish_pod_name(name, number)
        pod = next((p for p in pods if p["metadata"]["name"] == pod_name), None)
        outcome = published(pod) if pod is not None else None
        if pod is None:
            plan.create.append(publish_pod(ct, publishing.job, number))
        elif outcome is not None:
            plan.delete_pods.append(pod_name)
            record = records.get(number)
            if outcome.ok:
                if champion is not None and champions and champions[-1].retired_at is None:
                    champions[-1] = champions[-1].model_copy(update={"retired_at": now})
                champion = Champion(job=publishing.job, claim_name=claim_of(ct), model_path=champion_path(ct),
                                    source_path=model_dir(ct, publishing.job), evaluation=dict(publishing.evaluation),
                                    promoted_at=now, reason=publishing.reason, sha256=outcome.sha256 or None)
                champions.append(ChampionHistory(job=publishing.job, promoted_at=now, reason=publishing.reason))
                promotions += 1
                plan.decisions.append(("promoted", publishing.reason))
                plan.events.append(("Normal", REASON_PROMOTED, f"{publishing.job} is the champion "
                                    f"({publishing.reason}: {publishing.message}); {champion_path(ct)} on claim "
                                    f"{claim_of(ct)} now holds its model"))
                if record is not None:
                    records[record.number] = record.model_copy(update={
                        "promoted": True, "reason": publishing.reason, "message": publishing.message,
                        "finished_at": record.finished_at or now})
            else:
                rejections += 1
                plan.decisions.append(("rejected", REASON_PUBLISH_FAILED))
                message = f"{publishing.job} was not published: {outcome.message}"
                plan.events.append(("Warning", REASON_PUBLISH_FAILED, message))
                if record is not None:
                    records[record.number] = record.model_copy(update={
                        "promoted": False, "reason": REASON_PUBLISH_FAILED, "message": message[:1000],
                        "finished_at": record.finished_at or now})
            publishing = None

    # 2. Runs that ended: decide, in order, against the champion (or the one being published).
    thresholds = [parse_threshold(t) for t in spec.promotion.thresholds]
    for number in sorted(records):
        record = records[number]
        if record.promoted is not None or record.reason == REASON_PUBLISHING or number not in by_number:
            continue
        if record.phase == c.PHASE_FAILED:
            records[number] = record.model_copy(update={
                "promoted": False, "reason": REASON_RUN_FAILED, "finished_at": now,
                "message": "the run failed: its model is not considered (see the TrainingJob's conditions)"})
            plan.events.append(("Warning", REASON_RUN_FAILED, f"{record.name} failed; the champion stays"))
            continue
        if record.phase != c.PHASE_SUCCEEDED or publishing is not None:
            continue  # running, or waiting for the promotion before it to be published
        against = champion.evaluation if champion is not None else None
        verdict = decide(record.evaluation, against, objective, spec.promotion.min_improvement, thresholds)
        if verdict.promote:
            publishing = Publishing(job=record.name, reason=verdict.reason, message=verdict.message,
                                    evaluation=dict(record.evaluation), started_at=now)
            records[number] = record.model_copy(update={"reason": REASON_PUBLISHING, "message": verdict.message})
            plan.create.append(publish_pod(ct, record.name, number))
        else:
            rejections += 1
            plan.decisions.append(("rejected", verdict.reason))
            records[number] = record.model_copy(update={
                "promoted": False, "reason": verdict.reason, "message": verdict.message, "finished_at": now})
            plan.events.append(("Normal", REASON_REJECTED, f"{record.name} is not promoted: {verdict.message}"))

    # 3. A promotion by hand (`ludus promote`): any succeeded run, the rule aside (a rollback).
    request = ct.metadata.annotations.get(c.ANNOTATION_PROMOTE)
    handled_promote = old.handled_promote
    if request and request != handled_promote and publishing is None:
        handled_promote = request
        wanted = request.split("@", 1)[0]
        target = next((r for r in records.values() if r.name == wanted), None)
        if target is None or target.phase != c.PHASE_SUCCEEDED:
            why = "no run of that name" if target is None else f"it is {target.phase}, not Succeeded"
            plan.events.append(("Warning", REASON_PROMOTE_REFUSED, f"cannot promote {wanted}: {why}"))
        elif champion is not None and champion.job == wanted:
            plan.events.append(("Normal", REASON_PROMOTE_REFUSED, f"{wanted} is already the champion"))
        else:
            message = f"promoted by hand (ludus promote) over {champion.job if champion else 'no champion'}"
            publishing = Publishing(job=wanted, reason=REASON_MANUAL, message=message,
                                    evaluation=dict(target.evaluation), started_at=now)
            records[target.number] = target.model_copy(update={"reason": REASON_PUBLISHING, "message": message})
            plan.create.append(publish_pod(ct, wanted, target.number))

    # 4. Triggers: the schedule, a new data version, a retrain request.
    active = sorted((r for r in records.values() if number_active(r, by_number)), key=lambda r: r.number)
    if spec.concurrency_policy == "Replace":  # only the newest run may run, even after a restart mid-replace
        for record in active[:-1]:
            _replace(plan, records, record, "a newer run", now)
        active = active[-1:]
    marks = [t for t in (old.last_schedule_time, _parse_time(_newest(jobs, c.ANNOTATION_SCHEDULED_TIME))) if t]
    since = max(marks) if marks else (ct.metadata.creation_timestamp or now)
    fire, next_fire = due(spec.schedule, spec.time_zone, since, now) if spec.schedule else (None, None)
    last_data = _newest(jobs, c.ANNOTATION_DATA_VERSION) or old.data_version
    data = observed.data_version
    if spec.data_version is None:
        data = ct.metadata.annotations.get(c.ANNOTATION_DATA_VERSION) or data
    retrain = ct.metadata.annotations.get(c.ANNOTATION_RETRAIN)
    last_retrain = _newest(jobs, c.ANNOTATION_RETRAIN) or old.handled_retrain
    triggers = [t for t, on in ((TRIGGER_MANUAL, bool(retrain) and retrain != last_retrain),
                                (TRIGGER_DATA, data is not None and data != last_data),
                                (TRIGGER_SCHEDULE, fire is not None)) if on]
    last_schedule = old.last_schedule_time
    if spec.data_version is not None:
        if observed.data_error:
            conditions = upsert_condition(conditions, COND_DATA, "False", REASON_DATA_MISSING,
                                          observed.data_error, now)
        else:
            conditions = upsert_condition(conditions, COND_DATA, "True", "DataVersionRead",
                                          f"data version {data}", now)
    if spec.suspend:
        triggers = []
        last_schedule = fire or last_schedule  # a suspended schedule's firings are missed, not saved up
    elif triggers and publishing is None:
        if active and spec.concurrency_policy == "Forbid":
            if fire is not None:
                last_schedule = fire
                plan.events.append(("Normal", REASON_SKIPPED, f"the schedule fired at {_stamp(fire)} while "
                                    f"{', '.join(r.name for r in active)} ran (concurrencyPolicy Forbid)"))
                triggers.remove(TRIGGER_SCHEDULE)
            # A new data version or a retrain request waits for the active run to end.
        else:
            for record in active:
                _replace(plan, records, record, f"a {triggers[0]} trigger", now)
            active = []
        if triggers and not active:
            number = max([*records, *by_number, -1]) + 1
            trigger = triggers[0]
            job = run_job(ct, number, trigger, data, fire if TRIGGER_SCHEDULE in triggers else None,
                          champion.job if champion else None)
            if retrain:
                job["metadata"]["annotations"][c.ANNOTATION_RETRAIN] = retrain
            plan.create.append(job)
            plan.started.append(trigger)
            if fire is not None:
                last_schedule = fire
            warm = f", warm-started from {champion.job}" if champion else ""
            records[number] = RunRecord(number=number, name=run_name(name, number), trigger=trigger,
                                        data_version=data, warm_start=champion.job if champion else None)
            plan.events.append(("Normal", REASON_RUN_STARTED, f"{run_name(name, number)} started ({trigger}"
                                f"{f', data version {data}' if data else ''}{warm})"))
            active = [records[number]]

    # 5. History limits: the newest finished runs are kept, the champion's and the publishing one always.
    keep = {champion.job if champion else None, publishing.job if publishing else None}
    for phase, limit in ((c.PHASE_SUCCEEDED, spec.successful_runs_history_limit),
                         (c.PHASE_FAILED, spec.failed_runs_history_limit)):
        finished = sorted((n for n, j in by_number.items() if phase_of(j) == phase and records[n].promoted is not None
                           and records[n].name not in keep), reverse=True)
        plan.delete_runs.extend(records[n].name for n in finished[limit:])

    # 6. The status.
    kept = sorted(records)[-MAX_RECORDS:]
    conditions = upsert_condition(
        conditions, COND_CHAMPION, "True" if champion else "False",
        champion.reason if champion else "NoChampionYet",
        f"{champion.job} serves from {champion.model_path}" if champion else
        "no run has been promoted yet: the first evaluated run that meets the thresholds will be", now)
    if spec.suspend or any(x.type == COND_SUSPENDED for x in conditions):
        conditions = upsert_condition(conditions, COND_SUSPENDED, "True" if spec.suspend else "False",
                                      "Suspended" if spec.suspend else "Resumed",
                                      "spec.suspend is true: no run starts" if spec.suspend else "runs start", now)
    conditions = _run_scheduling(conditions, [by_number[r.number] for r in active if r.number in by_number], now)
    phase = ("Suspended" if spec.suspend and not active else "Publishing" if publishing else
             c.PHASE_RUNNING if active else "Waiting")
    plan.status = status.model_copy(update={
        "phase": phase, "conditions": conditions, "champion": champion, "champions": champions[-MAX_RECORDS:],
        "champion_summary": _summary(champion, objective), "publishing": publishing,
        "runs": [records[n] for n in kept], "active": [r.name for r in sorted(active, key=lambda r: r.number)],
        "last_run": records[max(records)].name if records else None,
        "last_schedule_time": last_schedule, "next_schedule_time": next_fire,
        "data_version": data if plan.started else last_data,
        "handled_retrain": retrain if plan.started and retrain else last_retrain,
        "handled_promote": handled_promote, "promotions": promotions, "rejections": rejections,
    })
    if next_fire is not None:
        plan.requeue_after = max((next_fire - now).total_seconds(), 0.05)
    return plan


def _run_scheduling(conditions: list[Condition], active: Sequence[Mapping[str, Any]], now: datetime
                    ) -> list[Condition]:
    """RunScheduled False, with the run's own words, while an active run's pods cannot be placed (its
    claim does not bind, no room); True again once they can."""
    for job in active:
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("type") == c.COND_SCHEDULED and cond.get("status") == "False":
                return upsert_condition(conditions, COND_RUN_SCHEDULED, "False", str(cond.get("reason") or ""),
                                        f"{job['metadata']['name']}: {cond.get('message', '')}", now)
    if any(x.type == COND_RUN_SCHEDULED and x.status == "False" for x in conditions):
        return upsert_condition(conditions, COND_RUN_SCHEDULED, "True", "Scheduled", "the active run is placed", now)
    return conditions


def _replace(plan: CTPlan, records: dict[int, RunRecord], record: RunRecord, by: str, now: datetime) -> None:
    plan.delete_runs.append(record.name)
    records[record.number] = record.model_copy(update={
        "phase": PHASE_REPLACED, "promoted": False, "reason": PHASE_REPLACED, "finished_at": now,
        "message": f"replaced: {by} started a newer run (concurrencyPolicy Replace)"})
    plan.events.append(("Normal", REASON_REPLACED, f"{record.name} stopped: {by} started a newer run "
                        "(concurrencyPolicy Replace)"))


def number_active(record: RunRecord, jobs: Mapping[int, Mapping[str, Any]]) -> bool:
    """A run that exists and has not finished (a replaced one is finished for us)."""
    return record.number in jobs and record.phase not in (*c.TERMINAL_PHASES, PHASE_REPLACED)


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None

