"""The small API a user's own training script uses to get Ludus's checkpoints, metrics and progress."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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
        evaluation=evaluation, rank=env.rank, clock=clock)
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
    _publish_phases()
    if metrics:
        trainer_metrics.evaluation(metrics, step)
        evaluation: EvaluationRecord = _state["evaluation"]
        evaluation.update(metrics, step, epoch)
        if _state["rank"] == 0:
            evaluation.publish()  # reaches status.evaluation through the termination message
    _state["progress"].record(step=step, total_steps=total_steps, epoch=epoch, loss=loss,
                              samples_per_second=samples_per_second, metrics=metrics)


def finish() -> None:
    _dist.shutdown()


def parameters() -> dict[str, Any]:
    """This Sweep trial's values by parameter name (numbers as numbers); {} outside a sweep."""
    from ludus_trainer.trial import parameters as trial_parameters

    return trial_parameters()
