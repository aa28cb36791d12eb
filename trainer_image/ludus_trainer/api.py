"""The small API a user's own training script uses to get Ludus's checkpoints, metrics and progress."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ludus_trainer import dist as _dist
from ludus_trainer.checkpoint import CheckpointManager
from ludus_trainer.dist import DistContext
from ludus_trainer.env import ENV_CHECKPOINT_DIR, ENV_METRICS_PORT, RunEnv
from ludus_trainer.evaluation import EvaluationRecord, objective_from_env
from ludus_trainer.metrics import TrainerMetrics
from ludus_trainer.progress import ProgressReporter

_state: dict[str, Any] = {}


def init() -> DistContext:
    """Join torchrun's process group and start the metrics endpoint (local rank 0)."""
    ctx = _dist.init()
    env = RunEnv.from_environ()
    metrics = TrainerMetrics(job=env.job, rank=env.rank)
    if env.local_rank == 0:
        metrics.serve(int(os.environ.get(ENV_METRICS_PORT, 0)))
    metrics.started(env.world_size, env.restart_count)
    _state.update(ctx=ctx, metrics=metrics, progress=ProgressReporter(
        checkpoint_dir() / "progress.json" if env.rank == 0 else None),
        evaluation=EvaluationRecord(objective_from_env()), rank=env.rank)
    return ctx


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
    trainer_metrics.step(step, epoch, loss, samples_per_second, None)
    if metrics:
        trainer_metrics.evaluation(metrics)
        evaluation: EvaluationRecord = _state["evaluation"]
        evaluation.update(metrics, step, epoch)
        if _state["rank"] == 0:
            evaluation.publish()  # reaches status.evaluation through the termination message
    _state["progress"].record(step=step, total_steps=total_steps, epoch=epoch, loss=loss,
                              samples_per_second=samples_per_second, metrics=metrics)


def finish() -> None:
    _dist.shutdown()
