"""The small API a user's own training script uses to get Ludus's checkpoints, metrics and progress."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any

from torch import nn

from ludus_trainer import dist as _dist
from ludus_trainer.checkpoint import CheckpointManager
from ludus_trainer.dist import DistContext
from ludus_trainer.env import ENV_CHECKPOINT_DIR, ENV_METRICS_PORT, InitSettings, RunEnv
from ludus_trainer.evaluation import EvaluationRecord, objective_from_env
from ludus_trainer.goodput import PHASES, PhaseClock, startup_origin
from ludus_trainer.loop import LoopConfig, StopSignal, Workload, agree_on_checkpoint, any_rank_asked_to_stop
from ludus_trainer.loop import run as _run_loop
from ludus_trainer.metrics import TrainerMetrics
from ludus_trainer.model_io import InitReport, load_into
from ludus_trainer.model_io import export_model as _export
from ludus_trainer.progress import ProgressReporter

_state: dict[str, Any] = {}
# Rank 0 rewrites its termination message (what the operator reads once the pod ends) at most this often
# while training; `finish()` and the interpreter's exit write the last one whatever the time.
PUBLISH_INTERVAL_SECONDS = 1.0


def init() -> DistContext:
    """Join torchrun's process group and start the metrics endpoint (local rank 0).

    From here on, time the script does not mark with `phase(...)` counts as training. A second call (a
    library that also calls it) returns the same context instead of joining the group twice."""
    if "ctx" in _state:
        ctx: DistContext = _state["ctx"]
        return ctx
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
    if "clock" in _state and not _state.get("loop_publishes"):
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


def resume(manager: CheckpointManager | None = None) -> dict[str, Any] | None:
    """The newest checkpoint any rank can read, loaded from that rank on every rank (None: start fresh), so
    all ranks resume from the same step. Collective: every rank calls it."""
    with phase("restore"):
        return agree_on_checkpoint(_state["ctx"], manager or checkpoints())


def stop_requested() -> bool:
    """Whether the pod was asked to stop on any rank (SIGTERM: a suspend, a scale-down, an eviction, a
    drain): save a checkpoint and return. Collective: every rank calls it at the same step. From the first
    call on, SIGTERM only sets this flag; a script that never asks is ended by SIGTERM at once, as before."""
    if not _state.get("polls_stop"):
        StopSignal.install()
        _state["polls_stop"] = True
    return any_rank_asked_to_stop(_state["ctx"])


def init_model(model: nn.Module) -> InitReport | None:
    """Apply spec.init to `model` (strict, frozen prefixes) on every rank; None without spec.init. What was
    loaded reaches status.initializedFrom and the exported model's lineage."""
    settings = InitSettings.from_environ()
    if settings.source is None:
        return None
    report = load_into(model, settings.source, strict=settings.strict, freeze=settings.freeze)
    _state["lineage"] = [report.as_dict()]
    evaluation: EvaluationRecord = _state["evaluation"]
    evaluation.init = {k: report.as_dict().get(k) for k in ("source", "step", "sha256", "reinitialized")}
    _state["metrics"].initialized(report.source, report.step, report.sha256, report.reinitialized)
    if _state["rank"] == 0:
        print(f"LUDUS_INIT {json.dumps(report.as_dict())}", flush=True)
        _publish(final=True)
    return report


def export_model(model: nn.Module, metadata: dict[str, Any] | None = None) -> Path | None:
    """Rank 0 writes `model` where a ContinuousTraining promotes from and `init.fromJob` reads
    (`<checkpoint dir>/model`), with the job, the last step, the evaluation, the objective and the lineage;
    returns its directory (None on other ranks)."""
    if _state["rank"] != 0:
        return None
    evaluation: EvaluationRecord = _state["evaluation"]
    ctx: DistContext = _state["ctx"]
    exported = _export(checkpoint_dir(), model, {
        "job": ctx.env.job, "step": _state.get("step"), "world_size": ctx.world_size,
        "evaluation": {m: e["value"] for m, e in evaluation.latest.items()},
        "objective": {"metric": evaluation.objective.metric, "goal": evaluation.objective.goal},
        "initializedFrom": _state.get("lineage", []), "workload": "script", **(metadata or {})})
    print(f"LUDUS_MODEL {exported}", flush=True)
    return exported


def train(workload: Workload, *, epochs: int, batch_size: int, checkpoint_interval: int = 100, keep: int = 3,
          max_steps: int | None = None, log_every: int = 10, seed: int = 0) -> dict[str, Any]:
    """Your own Workload (its data, `train_step`, `evaluate`, state) in the loop the built-in workloads run:
    a sampler that resumes mid-epoch, checkpoints on an interval and on SIGTERM, the checkpoint every rank
    agrees on, progress, evaluation, goodput, and the export of `workload.model` at the end. Returns the
    final evaluation."""
    config = LoopConfig(epochs=epochs, batch_size=batch_size, checkpoint_dir=checkpoint_dir(),
                        checkpoint_interval=checkpoint_interval, keep=keep, max_steps=max_steps,
                        log_every=log_every, seed=seed, lineage=list(_state.get("lineage", [])))
    _state["loop_publishes"] = True  # the loop leaves its own evaluation and last step for the operator
    return _run_loop(_state["ctx"], workload, config, _state["metrics"], _state["clock"])


def parameters() -> dict[str, Any]:
    """This Sweep trial's values by parameter name (numbers as numbers); {} outside a sweep."""
    from ludus_trainer.trial import parameters as trial_parameters

    return trial_parameters()
