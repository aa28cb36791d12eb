"""The small API a user's own training script uses to get Ludus's checkpoints, metrics and progress."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any

from ludus_trainer import dist as _dist
from ludus_trainer.checkpoint import CheckpointManager
from ludus_trainer.dist import DistContext
from ludus_trainer.env import ENV_CHECKPOINT_DIR, ENV_METRICS_PORT, RunEnv
from ludus_trainer.evaluation import EvaluationRecord, objective_from_env
from ludus_trainer.goodput import PHASES, PhaseClock, startup_origin
from ludus_trainer.metrics import TrainerMetrics
from ludus_trainer.progress import ProgressReporter

_state: dict[str, Any] = {}
# Rank 0 rewrites its termination message (what the operator reads once the pod ends) at most this often
# while training; `finish()` and the interpreter's exit write the last one whatever the time.
PUBLISH_INTERVAL_SECONDS = 1.0


def init() -> DistContext:
    """Join torchrun's process group and start the metrics endpoint (local rank 0).

    From here on, time the script does not mark with `phase(...)` counts as training."""
    env = RunEnv.from_environ()
    clock = PhaseClock(origin=startup_origin(env.restart_count))
    with clock.phase("rendezvous"):
        ctx = _dist.init()
    clock.close_startup()
    clock.start_training()
    metrics = TrainerMetrics(job=env.job, rank=env.rank)
    if env.local_rank == 0:
        metrics.serve(int(os.environ.get(ENV_METRICS_PORT, 0)))
    metrics.started(env.world_size, env.restart_count)
    evaluation = EvaluationRecord(objective_from_env())
    metrics.objective(evaluation.objective.metric, evaluation.objective.goal)
    _state.update(ctx=ctx, metrics=metrics, progress=ProgressReporter(
        checkpoint_dir() / "progress.json" if env.rank == 0 else None),
        evaluation=evaluation, rank=env.rank, clock=clock, published_at=0.0)
    if env.rank == 0:
        # A script that never calls finish() still leaves its last step: at the interpreter's exit, and
        # at a forked worker's (ludus_trainer.launch), where multiprocessing runs its finalizers, not atexit.
        Finalize(None, _publish_final, exitpriority=10)
    return ctx


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Mark time that is not training (`checkpoint`, `restore`, `evaluation`), for status.goodput."""
    if name not in PHASES or name in ("startup", "train"):
        raise ValueError(f"phase must be one of checkpoint, restore, evaluation, rendezvous, not {name!r}")
    clock: PhaseClock = _state["clock"]
    with clock.phase(name):
        yield
    _publish_phases()


def _publish_phases() -> None:
    clock: PhaseClock = _state["clock"]
    clock.train_until_now()
    phases = clock.as_dict()
    _state["metrics"].phases(phases)
    evaluation: EvaluationRecord = _state["evaluation"]
    evaluation.goodput = {"startStep": _state.get("start_step", 0), "phases": phases,
                          "startedAt": round(clock.origin, 1)}
    if "step" in _state:  # the final progress, for a job that ends between two of the operator's polls
        evaluation.goodput.update(step=_state["step"], totalSteps=_state.get("total_steps"))


def _publish(final: bool = False) -> None:
    """Rank 0's termination message: the evaluation, the phases and the last step."""
    if _state.get("rank") != 0:
        return
    now = time.monotonic()
    if final or now - _state["published_at"] >= PUBLISH_INTERVAL_SECONDS:
        _state["evaluation"].publish()
        _state["published_at"] = now


def _publish_final() -> None:
    if "clock" in _state:
        _publish_phases()
        _publish(final=True)


def checkpoint_dir() -> Path:
    path = Path(os.environ.get(ENV_CHECKPOINT_DIR, "/tmp/ludus-ckpt"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints(keep: int = 3) -> CheckpointManager:
    return CheckpointManager(checkpoint_dir(), keep=keep)


def report(*, step: int, loss: float, epoch: int = 0, total_steps: int | None = None,
           samples_per_second: float | None = None, metrics: dict[str, float] | None = None) -> None:
    """Publish a step: Prometheus metrics on every rank, the progress record on rank 0."""
    trainer_metrics: TrainerMetrics = _state["metrics"]
    if "start_step" not in _state:
        _state["start_step"] = max(step - 1, 0)
        trainer_metrics.plan(_state["start_step"], total_steps, _state["clock"].origin)
    trainer_metrics.step(step, epoch, loss, samples_per_second, None)
    _state.update(step=step, total_steps=total_steps)
    _publish_phases()
    evaluation: EvaluationRecord = _state["evaluation"]
    evaluated = dict(metrics or {})
    if evaluation.objective.metric == "loss" and "loss" not in evaluated:
        evaluated["loss"] = loss  # the default objective (loss, minimized) is the loss the script reports
    if evaluated:
        trainer_metrics.evaluation(evaluated, step)
        evaluation.update(evaluated, step, epoch)
    _publish(final=bool(metrics))  # reaches status.evaluation through the termination message
    _state["progress"].record(step=step, total_steps=total_steps, epoch=epoch, loss=loss,
                              samples_per_second=samples_per_second, metrics=metrics)


def finish() -> None:
    """Leave the last step and evaluation for the operator, then the process group."""
    _publish_final()
    _dist.shutdown()


def parameters() -> dict[str, Any]:
    """This Sweep trial's values by parameter name (numbers as numbers); {} outside a sweep."""
    from ludus_trainer.trial import parameters as trial_parameters

    return trial_parameters()
