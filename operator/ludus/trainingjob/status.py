"""The one place a TrainingJob's status is computed.

`compute_status(job, pods, decision, now)` turns what was observed (the job's
pods, the trainer's progress) and what the policies decided (a finish, a
suspension, restarts) into the whole status. Nothing else assembles a status:
the controller only decides when to write it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.conditions import (
    CREATED,
    UPDATED,
    get_condition,
    refusal_condition,
    spec_invalid,
    upsert_condition,
    valid_again,
    with_phase,
)
from ludus.api.models import (
    Condition,
    ConditionStatus,
    Evaluation,
    InitializedFrom,
    MetricValue,
    Objective,
    ObjectiveValue,
    Progress,
    RestartRecord,
    TrainingJob,
    TrainingJobStatus,
)
from ludus.builders import labels
from ludus.trainingjob.checkpoints import newest_checkpoint
from ludus.trainingjob.goodput import final_report, goodput_status
from ludus.trainingjob.objective import better, parse_objective
from ludus.trainingjob.observe import PodObservation, current_workers, rendezvous_pod
from ludus.trainingjob.policies.decision import Decision
from ludus.trainingjob.policies.suspension import SUSPENDED_MESSAGE
from ludus.trainingjob.progress import ProgressSample, Unavailable
from ludus.trainingjob.tracking import TrackingReport, latest_report, tracked_condition, tracking_status


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


# The digits the trainer keeps of an evaluation value (ludus_trainer.evaluation).
EVALUATION_DIGITS: Final = 6


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def progress_status(old: Progress | None, sample: ProgressSample | None) -> Progress | None:
    """The status' progress record; it moves only with the step, so a steady job costs no writes."""
    if sample is None or (old is not None and old.step == sample.step):
        return old
    total = sample.total_steps
    return Progress(
        step=sample.step,
        total_steps=total,
        percent=sample.percent,
        summary=f"{sample.step}/{total}" if total else str(sample.step),
        epoch=sample.epoch,
        loss=_rounded(sample.loss, 6),
        samples_per_second=_rounded(sample.samples_per_second, 2),
        tokens_per_second=_rounded(sample.tokens_per_second, 1),
        eta_seconds=sample.eta_seconds,
        eta=_duration(sample.eta_seconds),
        updated_at=sample.observed_at,
    )


def final_progress(progress: Progress | None, pods: Iterable[PodObservation], now: datetime) -> Progress | None:
    """The last step, from worker 0's termination message: the last poll may be an interval old."""
    report = final_report(pods)
    step = report.get("step") if report is not None else None
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < 2**53:
        return progress
    if progress is not None and progress.step >= step:
        return progress
    assert report is not None
    total = report.get("totalSteps")
    total = total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None
    if total is None and progress is not None:
        total = progress.total_steps
    return (progress or Progress()).model_copy(update={
        "step": step, "total_steps": total, "summary": f"{step}/{total}" if total else str(step),
        "percent": round(min(100.0, 100.0 * step / total), 1) if total else None,
        "eta_seconds": 0.0 if total else None, "eta": "0s" if total else "", "updated_at": now,
    })


def progress_condition(
    conditions: list[Condition], unavailable: Unavailable | None, now: datetime
) -> list[Condition]:
    """ProgressReported False while worker 0 cannot be read; True again once it can (only if it was False)."""
    if unavailable is not None:
        return upsert_condition(conditions, c.COND_PROGRESS, "False", unavailable.reason,
                                f"{unavailable.message}; keeping the last progress", now)
    before = next((cond for cond in conditions if cond.type == c.COND_PROGRESS), None)
    if before is None or before.status == "True":
        return conditions
    return upsert_condition(conditions, c.COND_PROGRESS, "True", c.REASON_PROGRESS_REPORTED,
                            "worker 0's progress is read again", now)


_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
# Metrics kept per job: the status stays small whatever a script reports.
MAX_METRICS: Final = 32


def _metric_value(entry: Any) -> MetricValue | None:
    """One reported metric, if it is well formed: a finite number and non-negative step and epoch."""
    if not isinstance(entry, Mapping):
        return None
    value, step, epoch = entry.get("value"), entry.get("step", 0), entry.get("epoch", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**53 for n in (step, epoch)):
        return None
    return MetricValue(value=float(value), step=step, epoch=epoch)


def live_report(progress: ProgressSample | None) -> Mapping[str, Any] | None:
    """The evaluation worker 0's metrics page shows while it trains, in a termination report's shape:
    what a Sweep's early stopping compares before the trial ends."""
    if progress is None or progress.evaluation_step is None or not progress.evaluation:
        return None
    # Rounded as the trainer rounds its own record (the termination message, the baseline): a value read
    # from the metrics page compares equal to the same value read from there.
    entries = {m: {"value": round(v, EVALUATION_DIGITS), "step": progress.evaluation_step, "epoch": progress.epoch}
               for m, v in progress.evaluation.items()}
    report: dict[str, Any] = {"latest": entries, "best": entries}
    if progress.objective is not None:
        report["objective"] = {"metric": progress.objective[0], "goal": progress.objective[1]}
    return report


def evaluation_status(
    old: Evaluation | None, pods: Iterable[PodObservation], declared: Objective | None,
    live: Mapping[str, Any] | None = None,
) -> Evaluation | None:
    """The status' evaluation: the old one, updated by what the trainers left in their termination
    messages (and, while training, worker 0's latest evaluation). Latest values move only forward
    in steps; best values only get better; the baseline (the starting model on this job's data) is
    kept as reported; the objective is the spec's, else the one the trainer reported, else loss
    (minimize)."""
    reports = [p.evaluation for p in pods if p.evaluation is not None] + ([live] if live else [])
    if not reports:
        return old
    latest = dict(old.latest) if old else {}
    best = dict(old.best) if old else {}
    reported = next((o for o in (parse_objective(r.get("objective")) for r in reports) if o is not None), None)
    kept = Objective(metric=old.objective.metric, goal=old.objective.goal) if old and old.objective else None
    objective = declared or reported or kept or Objective()
    baseline = dict(old.baseline) if old else {}
    for report in reports:
        for part, target in (("latest", latest), ("best", best), ("baseline", baseline)):
            entries = report.get(part)
            if not isinstance(entries, Mapping):
                continue
            for metric, entry in entries.items():
                value = _metric_value(entry)
                if value is None or not isinstance(metric, str) or not _METRIC_NAME.match(metric):
                    continue
                if metric not in target and len(target) >= MAX_METRICS:
                    continue
                current = target.get(metric)
                if current is None:
                    target[metric] = value
                elif part in ("latest", "baseline"):
                    if value.step >= current.step:
                        target[metric] = value
                elif better(value.value, current.value, objective, metric):
                    target[metric] = value
    mine = latest.get(objective.metric)
    best_value = best.get(objective.metric)
    summary = f"{objective.metric} {mine.value:.4g}" if mine else ""
    return Evaluation(
        latest=latest,
        best=best,
        baseline=baseline,
        objective=ObjectiveValue(
            metric=objective.metric, goal=objective.goal, value=mine.value if mine else None,
            best=best_value.value if best_value else None, summary=summary[:63],
        ),
    )


def worker_counts(job: TrainingJob, workers: dict[int, PodObservation]) -> dict[str, Any]:
    """The status' pod counts (camelCase-free field names of TrainingJobStatus)."""
    desired = job.spec.replicas
    in_range = [p for i, p in workers.items() if i < desired]
    ready = sum(1 for p in in_range if p.ready and p.phase == "Running" and not p.deleting)
    succeeded = sum(1 for p in in_range if p.phase == "Succeeded")
    return {
        "desired": desired,
        "active": sum(1 for p in in_range if not p.finished and not p.deleting),
        "ready": ready,
        "succeeded": succeeded,
        "failed": sum(1 for p in in_range if p.phase == "Failed"),
        # A worker that exited 0 has done its part: the column does not drop as a job ends.
        "workers": f"{ready + succeeded}/{desired}",
        "selector": labels.selector_string(labels.worker_selector(job)),
    }


def first_created(pods: Iterable[PodObservation], now: datetime) -> datetime:
    """When the job started: its oldest live pod's creation, which an earlier pass may have made
    without writing status (that write can wait), else now."""
    created = [p.created_at for p in pods if p.created_at is not None and not p.deleting]
    return min([*created, now])


def next_phase(
    job: TrainingJob, counts: dict[str, Any], restarted: bool, rendezvous_ready: bool
) -> tuple[str, str, str]:
    """Phase, reason and message for a job that is neither terminal nor suspended."""
    previous = job.status.phase
    ready, desired = counts["ready"], counts["desired"]
    # Workers that already exited 0 are done, not missing: the others are finishing their last steps.
    progressing = ready + counts["succeeded"]
    if progressing >= desired and (rendezvous_ready or counts["succeeded"]):
        # The workers that finished count as running here, so the condition does not change (and
        # cost a write) while the others finish their last steps.
        return c.PHASE_RUNNING, c.REASON_ALL_RUNNING, f"{progressing}/{desired} workers running"
    was_running = previous in (c.PHASE_RUNNING, c.PHASE_RESTARTING)
    if was_running and (restarted or previous == c.PHASE_RESTARTING):
        return c.PHASE_RESTARTING, c.REASON_WAITING, f"{ready}/{desired} workers running; replacing the rest"
    if previous == c.PHASE_RUNNING:
        # Nothing failed: workers finishing their last step or joining after a scale-up. A job that
        # trained does not go back to Pending.
        return c.PHASE_RUNNING, c.REASON_WAITING, f"{ready}/{desired} workers running; waiting for the rest"
    return c.PHASE_PENDING, c.REASON_WAITING, f"{ready}/{desired} workers running"


def compute_status(
    job: TrainingJob,
    pods: list[PodObservation],
    decision: Decision,
    now: datetime,
    progress: ProgressSample | None = None,
    unavailable: Unavailable | None = None,
) -> TrainingJobStatus:
    """The job's whole status after this pass. `pods` are the job's own pods (see `own_pods`)."""
    status = _compute_status(job, pods, decision, now, progress, unavailable)
    if status.phase == c.PHASE_SUCCEEDED and job.status.phase != c.PHASE_SUCCEEDED:
        status = status.model_copy(update={"progress": final_progress(status.progress, pods, now)})
    moved = status.progress is not job.status.progress
    goodput = goodput_status(job, status.phase, pods, progress, moved, now)
    if goodput is not job.status.goodput:
        status = status.model_copy(update={"goodput": goodput})
    checkpoint = newest_checkpoint(job, progress, pods)
    if checkpoint is not status.checkpoint:
        status = status.model_copy(update={"checkpoint": checkpoint})
    status = _tracking(job, status, latest_report(progress, pods), now)
    status = _admission(status, decision.admission, now)
    status = _initialized_from(status, decision.pinned, now)
    status = _too_large(status, decision.too_large, now)
    return _pods_readable(_spec_valid_again(_refusals(status, decision, now), now), pods, now)


def _tracking(job: TrainingJob, status: TrainingJobStatus, report: TrackingReport | None, now: datetime
              ) -> TrainingJobStatus:
    """status.tracking and the Tracked condition, from worker 0's latest report."""
    tracking = tracking_status(job, report)
    conditions = tracked_condition(list(status.conditions), job, report, now)
    if tracking is status.tracking and conditions == status.conditions:
        return status
    return status.model_copy(update={"tracking": tracking, "conditions": conditions})


def _admission(status: TrainingJobStatus, admission: tuple[ConditionStatus, str, str] | None, now: datetime
               ) -> TrainingJobStatus:
    """Kueue's word: the Admitted condition of a job queued through Kueue."""
    if admission is None:
        return status
    state, reason, message = admission
    conditions = upsert_condition(list(status.conditions), c.COND_ADMITTED, state, reason, message, now)
    return status.model_copy(update={"conditions": conditions})


def _initialized_from(status: TrainingJobStatus, pinned: InitializedFrom | None, now: datetime
                      ) -> TrainingJobStatus:
    """The model the job starts from, pinned; a job that waited for it says it no longer does."""
    if pinned is None:
        return status
    conditions = status.conditions
    waited = get_condition(status, c.COND_INITIALIZED)
    if waited is not None and waited.status != "True":
        where = pinned.uri or f"on claim {pinned.claim_name} at {pinned.path}"
        message = f"{pinned.job or 'the model'} {where}"
        conditions = upsert_condition(list(conditions), c.COND_INITIALIZED, "True", c.REASON_INIT_READY, message, now)
    if pinned == status.initialized_from and conditions is status.conditions:
        return status
    return status.model_copy(update={"initialized_from": pinned, "conditions": conditions})


def _too_large(status: TrainingJobStatus, problem: str | None, now: datetime) -> TrainingJobStatus:
    """PodsScheduled says which resource no node (or all of them together) has enough of."""
    if problem is None:
        return status
    conditions = upsert_condition(list(status.conditions), c.COND_SCHEDULED, "False", c.REASON_TOO_LARGE, problem,
                                  now)
    return status.model_copy(update={"conditions": conditions})


def _spec_valid_again(status: TrainingJobStatus, now: datetime) -> TrainingJobStatus:
    conditions = valid_again(list(status.conditions), now)
    return status if conditions is None else status.model_copy(update={"conditions": conditions})


# Pods named in a PodsReadable message; the rest are counted.
NAMED_UNREADABLE_PODS: Final = 3


def unreadable_message(pods: Iterable[PodObservation]) -> str | None:
    """PodsReadable's message: which pods could not be read and why; None when every pod could."""
    unreadable = sorted((p for p in pods if p.unreadable), key=lambda p: p.name)
    if not unreadable:
        return None
    named = "; ".join(f"pod {p.name}: {p.unreadable}" for p in unreadable[:NAMED_UNREADABLE_PODS])
    more = len(unreadable) - NAMED_UNREADABLE_PODS
    return f"{named}{f'; and {more} more' if more > 0 else ''} (kept as Unknown)"


def _pods_readable(status: TrainingJobStatus, pods: Iterable[PodObservation], now: datetime) -> TrainingJobStatus:
    """PodsReadable: False naming the pods the watch could not read; True again once none is left."""
    message = unreadable_message(pods)
    before = get_condition(status, c.COND_PODS_READABLE)
    if message is not None:
        conditions = upsert_condition(list(status.conditions), c.COND_PODS_READABLE, "False",
                                      c.REASON_POD_UNREADABLE, message, now)
    elif before is not None and before.status != "True":
        conditions = upsert_condition(list(status.conditions), c.COND_PODS_READABLE, "True",
                                      c.REASON_PODS_READABLE, "every pod of the job can be read", now)
    else:
        return status
    return status.model_copy(update={"conditions": conditions})


def _refusals(status: TrainingJobStatus, decision: Decision, now: datetime) -> TrainingJobStatus:
    """Created and ChildrenUpdated: False with the API server's words while it refuses a child's create
    or change; True again once it accepts them."""
    conditions = status.conditions
    for kind, refused in ((CREATED, decision.refused), (UPDATED, decision.update_refused)):
        changed, _ = refusal_condition(list(conditions), kind, refused, now)
        conditions = conditions if changed is None else changed
    return status if conditions is status.conditions else status.model_copy(update={"conditions": conditions})


def init_blocked_status(job: TrainingJob, waiting: str | None, unusable: str | None, now: datetime
                        ) -> TrainingJobStatus:
    """A job whose starting model is not there: it waits (Pending, saying for what), or fails when the
    model can never come."""
    old = job.status
    if unusable is not None:
        if old.phase in c.TERMINAL_PHASES:
            return old
        conditions = upsert_condition(list(old.conditions), c.COND_INITIALIZED, "False", c.REASON_INIT_UNUSABLE,
                                      unusable, now)
        conditions = with_phase(conditions, c.PHASE_FAILED, c.REASON_INIT_UNUSABLE, unusable, now)
        return old.model_copy(update={"phase": c.PHASE_FAILED, "conditions": conditions,
                                      "observed_generation": job.metadata.generation,
                                      "completion_time": old.completion_time or now})
    conditions = upsert_condition(list(old.conditions), c.COND_INITIALIZED, "False", c.REASON_INIT_WAITING,
                                  waiting or "", now)
    return old.model_copy(update={"phase": c.PHASE_PENDING, "conditions": conditions,
                                  "observed_generation": job.metadata.generation})


def _compute_status(
    job: TrainingJob,
    pods: list[PodObservation],
    decision: Decision,
    now: datetime,
    progress: ProgressSample | None,
    unavailable: Unavailable | None,
) -> TrainingJobStatus:
    old = job.status
    workers = current_workers(pods)
    counts = worker_counts(job, workers)
    base = _observed(job, pods, decision, counts, now, progress, unavailable)
    if old.phase in c.TERMINAL_PHASES:
        return base
    if decision.finish is not None:
        finish = decision.finish
        conditions = with_phase(list(base.conditions), finish.phase, finish.reason, finish.message, now)
        return base.model_copy(
            update={"phase": finish.phase, "conditions": conditions, "completion_time": base.completion_time or now}
        )
    if decision.suspend:
        conditions = with_phase(list(base.conditions), c.PHASE_SUSPENDED, c.REASON_SUSPENDED, SUSPENDED_MESSAGE, now)
        return base.model_copy(update={"phase": c.PHASE_SUSPENDED, "conditions": conditions, "start_time": None})
    return _going(job, pods, decision, base, counts, now)


def _observed(job: TrainingJob, pods: list[PodObservation], decision: Decision, counts: dict[str, Any],
              now: datetime, progress: ProgressSample | None, unavailable: Unavailable | None) -> TrainingJobStatus:
    """What this pass observed, whatever the phase: counts, failures counted once, progress, evaluation,
    restarts."""
    old = job.status
    observed = {p.uid for p in pods}
    # Exactly-once counting: a uid stays counted while its pod exists, whichever restart counted it.
    counted = [u for u in old.counted_failures if u in observed]
    counted += [u for r in decision.restarts for u in r.counted if u not in counted]
    base = old.model_copy(
        update={
            **counts,
            "observed_generation": job.metadata.generation,
            "counted_failures": counted,
            # A finished job keeps its final progress: the poller's last sample may be older.
            "progress": old.progress if old.phase in c.TERMINAL_PHASES else progress_status(old.progress, progress),
            "evaluation": evaluation_status(old.evaluation, pods, job.spec.objective,
                                            live_report(progress) if old.phase not in c.TERMINAL_PHASES else None),
            "restarts": old.restarts + len(decision.restarts),
            "conditions": progress_condition(list(old.conditions), unavailable, now)
            if old.phase not in c.TERMINAL_PHASES else old.conditions,
        }
    )
    if decision.restarts:
        first = decision.restarts[0]
        record = RestartRecord(reason=first.reason, message=first.message, time=now)
        base = base.model_copy(update={"last_restart": record})
    return base


def _going(job: TrainingJob, pods: list[PodObservation], decision: Decision, base: TrainingJobStatus,
           counts: dict[str, Any], now: datetime) -> TrainingJobStatus:
    """A job neither finished nor suspended: its phase from its workers, a start, a restart's reason."""
    first_start = base.start_time is None and decision.starting
    start_time = first_created(pods, now) if first_start else base.start_time
    rdzv = rendezvous_pod(pods)
    rendezvous_ready = rdzv is not None and rdzv.ready and not rdzv.deleting
    phase, reason, message = next_phase(job, counts, bool(decision.replacing), rendezvous_ready)
    if decision.restarts:
        # Pods being stopped for a restart may still look ready: the job restarts all the same, and
        # the Restarting condition says why until the group is whole again, not just "waiting".
        phase, reason, message = c.PHASE_RESTARTING, decision.restarts[0].reason, decision.restarts[0].message
    elif phase == c.PHASE_RESTARTING:
        previous = get_condition(job.status, c.COND_RESTARTING)
        if previous is not None and previous.status == "True":
            reason, message = previous.reason, previous.message
    conditions = list(base.conditions)
    if first_start:
        # No Event for this: the Created condition records it, and an Event per job is one more write.
        conditions = upsert_condition(
            conditions, c.COND_CREATED, "True", c.REASON_CREATED, f"created {counts['desired']} worker pods",
            start_time or now,
        )
    conditions = with_phase(conditions, phase, reason, message, now)
    conditions = scheduling_condition(conditions, pods, now)
    return base.model_copy(update={"phase": phase, "conditions": conditions, "start_time": start_time})


# A pod no scheduler has looked at for this long names a scheduler that is not running.
UNSEEN_SECONDS: Final = 30.0


def _unseen(pods: Iterable[PodObservation], now: datetime) -> list[tuple[PodObservation, float]]:
    """Pending pods that name a scheduler of their own (a gang scheduler) which has not placed them or
    said why, with how long they have waited. The default scheduler is trusted to be there."""
    out = []
    for pod in pods:
        if (pod.phase == "Pending" and not pod.deleting and not pod.seen_by_scheduler and pod.created_at
                and pod.scheduler != "default-scheduler"):
            out.append((pod, (now - pod.created_at).total_seconds()))
    return out


def scheduling_wake(pods: Iterable[PodObservation], now: datetime) -> float | None:
    """When to look again at pods no scheduler has answered yet (no event comes if none ever does)."""
    waits = [UNSEEN_SECONDS - age for _, age in _unseen(pods, now) if age < UNSEEN_SECONDS]
    return max(min(waits), 0.5) if waits else None


def scheduling_condition(conditions: list[Condition], pods: Iterable[PodObservation], now: datetime
                         ) -> list[Condition]:
    """PodsScheduled False with the scheduler's words while a pod cannot be placed (a claim that does
    not bind, no node with room), or when no scheduler answers for a pod (the one it names is not
    running); True again once it can. Never set for a job that schedules at once."""
    pods = list(pods)
    ignored = next(((p, age) for p, age in _unseen(pods, now) if age >= UNSEEN_SECONDS), None)
    if ignored is not None:
        pod, age = ignored
        return upsert_condition(conditions, c.COND_SCHEDULED, "False", c.REASON_NO_SCHEDULER,
                                f"{pod.name}: no scheduler has placed it or said why in {age:.0f}s: is the scheduler "
                                f"{pod.scheduler!r} running? (spec.template.schedulerName, or the operator's "
                                "--gang-scheduling, names it)", now)
    stuck = next((p for p in pods if p.unschedulable and not p.deleting and p.phase == "Pending"), None)
    if stuck is not None:
        hint = (" Check the claim: kubectl get pvc (does it exist, does its StorageClass provision?)"
                if "persistentvolumeclaim" in stuck.unschedulable.lower() else "")
        return upsert_condition(conditions, c.COND_SCHEDULED, "False", c.REASON_UNSCHEDULABLE,
                                f"{stuck.name}: {stuck.unschedulable}{hint}", now)
    if any(x.type == c.COND_SCHEDULED and x.status == "False" for x in conditions):
        return upsert_condition(conditions, c.COND_SCHEDULED, "True", c.REASON_SCHEDULED, "every pod is placed", now)
    return conditions


def invalid_spec_status(old: TrainingJobStatus, generation: int, message: str, now: datetime) -> TrainingJobStatus:
    """A spec the operator refuses: Failed with InvalidSpec and the message; nothing else changes. A job
    that already started keeps its phase and its pods: SpecValid False says why nothing is reconciled
    (a stored object another operator version wrote must not end a running job)."""
    if old.start_time is not None and old.phase not in c.TERMINAL_PHASES:
        return old.model_copy(update={"conditions": spec_invalid(list(old.conditions), message, now)})
    conditions = with_phase(list(old.conditions), c.PHASE_FAILED, c.REASON_INVALID_SPEC, message, now)
    return old.model_copy(
        update={
            "phase": c.PHASE_FAILED,
            "conditions": conditions,
            "observed_generation": generation,
            "completion_time": old.completion_time or now,
        }
    )
