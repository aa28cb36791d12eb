"""Goodput: how much of a job's wall time went into training progress that was kept.

The operator and the trainer each know part of the time. The operator knows
how long the job waited for its pods (queued) and how long each restart kept
it down (recovery). The trainer knows its own phases (start-up, rendezvous,
checkpoint restore and save, evaluation, training) per run, which the
operator reads with the step and, at the end, from the termination message.
A new run (another worker 0 pod, a torchrun restart in place, a resume)
folds the previous run's phases into `earlierPhases`, and the steps between
the furthest step reached and where the new run resumed count as redone:
their time (steps x seconds per step) is wasted progress, not productive.
What neither side accounts for is `other`, so the parts always sum to the
wall time. Categories follow Google's ml-goodput-measurement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.models import Badput, Goodput, TrainingJob
from ludus.trainingjob.observe import PodObservation, current_workers
from ludus.trainingjob.progress import ProgressSample

# Trainer phase -> badput category (train is productive, less the wasted progress).
_TRAINER_CATEGORIES: Final = {
    "startup": "startup",
    "rendezvous": "rendezvous",
    "restore": "checkpointRestore",
    "checkpoint": "checkpointSave",
    "evaluation": "evaluation",
}
CATEGORIES: Final = (
    "queued", "startup", "rendezvous", "recovery", "checkpointRestore", "checkpointSave", "evaluation",
    "wastedProgress", "other",
)


def _add(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    return {k: round(a.get(k, 0.0) + b.get(k, 0.0), 3) for k in a.keys() | b.keys()}


def final_report(pods: Iterable[PodObservation]) -> Mapping[str, Any] | None:
    """Worker 0's last phases from its termination message (`goodput` beside the evaluation)."""
    worker0 = current_workers(pods).get(0)
    report = (worker0.evaluation or {}).get("goodput") if worker0 is not None else None
    return report if isinstance(report, Mapping) else None


def _phases(raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(k): round(float(v), 3)
        for k, v in raw.items()
        if k in (*_TRAINER_CATEGORIES, "train") and isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
    }


def _wall(job: TrainingJob, now: datetime) -> float:
    created = job.metadata.creation_timestamp or job.status.start_time
    if created is None:
        return 0.0
    end = job.status.completion_time or now
    return max((end - created).total_seconds(), 0.0)


def account_transitions(
    old: Goodput, job: TrainingJob, old_phase: str, phase: str, now: datetime
) -> Goodput:
    """Queued time on the first Running; recovery time on Running again after a restart. Both end
    here for now, and earlier once the trainer's run says when it started (`account_run`): its
    start-up is the trainer's to count, not twice."""
    if phase != c.PHASE_RUNNING or old_phase == c.PHASE_RUNNING:
        return old
    update: dict[str, Any] = {}
    created = job.metadata.creation_timestamp
    if old.queued_seconds is None and created is not None:
        update["queued_seconds"] = round(max((now - created).total_seconds(), 0.0), 3)
    restart = job.status.last_restart
    if old.queued_seconds is not None and restart is not None and restart.time is not None:
        down = round(max((now - restart.time).total_seconds(), 0.0), 3)
        update["recovery_seconds"] = round(old.recovery_seconds + down, 3)
        update["pending_recovery_seconds"] = down
    return old.model_copy(update=update) if update else old


def _until_started(since: datetime | None, started_at: float | None, counted: float) -> float:
    """`counted` seconds from `since` to Running, cut back to when the trainer's run started."""
    if since is None or started_at is None:
        return counted
    return min(counted, max(started_at - since.timestamp(), 0.0))


def account_run(
    old: Goodput, job: TrainingJob, sample: ProgressSample | None, final: Mapping[str, Any] | None
) -> Goodput:
    """Fold in what the trainer reported: the current run's phases, a new run, steps redone."""
    update: dict[str, Any] = {}
    if sample is not None:
        if not old.run and old.queued_seconds is not None:
            queued = _until_started(job.metadata.creation_timestamp, sample.started_at, old.queued_seconds)
            update["queued_seconds"] = round(queued, 3)
        if old.run and sample.run != old.run:
            update["earlier_phases"] = _add(old.earlier_phases, old.run_phases)
            resumed = sample.start_step if sample.start_step is not None else 0
            # The trainer's own record of the furthest step beats the operator's polls (an interval apart).
            reached = max(old.high_water_step, sample.previous_step or 0)
            update["steps_redone"] = old.steps_redone + max(reached - resumed, 0)
            restart = job.status.last_restart
            pending = old.pending_recovery_seconds
            if pending and restart is not None:
                kept = _until_started(restart.time, sample.started_at, pending)
                update["recovery_seconds"] = round(old.recovery_seconds - pending + kept, 3)
                update["pending_recovery_seconds"] = 0.0
        update["run"] = sample.run
        update["run_phases"] = _phases(sample.phases) or (old.run_phases if sample.run == old.run else {})
        update["high_water_step"] = max(old.high_water_step, sample.step, sample.previous_step or 0)
    if final is not None:
        phases = _phases(final.get("phases"))
        if phases:
            update["run_phases"] = phases
    return old.model_copy(update=update) if update else old


def breakdown(goodput: Goodput, wall: float, seconds_per_step: float | None) -> Goodput:
    """The fractions: productive + every category = wall (other takes what nobody accounted for)."""
    phases = _add(goodput.earlier_phases, goodput.run_phases)
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    seconds["queued"] = goodput.queued_seconds or 0.0
    seconds["recovery"] = goodput.recovery_seconds
    for phase, category in _TRAINER_CATEGORIES.items():
        seconds[category] += phases.get(phase, 0.0)
    train = phases.get("train", 0.0)
    wasted = min(train, goodput.steps_redone * seconds_per_step) if seconds_per_step else 0.0
    seconds["wastedProgress"] = wasted
    productive = train - wasted
    accounted = productive + sum(seconds.values())
    total = max(wall, accounted)
    seconds["other"] = total - accounted
    if total <= 0:
        # A job created and finished within one second (timestamps have seconds): every category is still
        # there, at zero, so the status always has the same shape and the fleet's counters count the job.
        return goodput.model_copy(update={"wall_seconds": 0.0, "productive_seconds": 0.0, "fraction": 0.0,
                                          "badput": {k: Badput(seconds=0.0, fraction=0.0) for k in CATEGORIES}})
    return goodput.model_copy(
        update={
            "wall_seconds": round(total, 1),
            "productive_seconds": round(productive, 1),
            "fraction": round(productive / total, 4),
            "badput": {k: Badput(seconds=round(v, 1), fraction=round(v / total, 4)) for k, v in seconds.items()},
        }
    )


def seconds_per_step(goodput: Goodput, sample: ProgressSample | None) -> float | None:
    """From the operator's measured step rate, else from the current run's training time per step."""
    if sample is not None and sample.steps_per_second:
        return 1.0 / sample.steps_per_second
    if sample is not None and sample.start_step is not None and sample.step > sample.start_step:
        train = goodput.run_phases.get("train", 0.0)
        return train / (sample.step - sample.start_step) if train > 0 else None
    return None


def goodput_status(
    job: TrainingJob,
    phase: str,
    pods: list[PodObservation],
    sample: ProgressSample | None,
    progress_moved: bool,
    now: datetime,
) -> Goodput | None:
    """The status' goodput after this pass. It changes only with the progress, a phase change or the
    end of the job, so a quiet Running job costs no writes."""
    old = job.status.goodput
    old_phase = job.status.phase
    finished_now = phase in c.TERMINAL_PHASES and old_phase not in c.TERMINAL_PHASES
    if old_phase in c.TERMINAL_PHASES:
        return old
    if not (progress_moved or phase != old_phase or finished_now):
        return old
    goodput = account_transitions(old or Goodput(), job, old_phase, phase, now)
    goodput = account_run(goodput, job, sample if progress_moved else None,
                          final_report(pods) if finished_now else None)
    if goodput.queued_seconds is None and phase not in c.TERMINAL_PHASES:
        return goodput if old is not None else None  # nothing to say before the job first runs
    end = now if finished_now else None
    wall = _wall(job, end or now)
    return breakdown(goodput, wall, seconds_per_step(goodput, sample))
