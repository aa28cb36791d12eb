"""The training harness every workload runs in: resume, checkpoints, metrics, progress, SIGTERM.

Checkpoint state holds the model, the optimizer, the step, the epoch, the
number of samples of the epoch already consumed (world-size independent) and
the RNG states. On every start the ranks agree on the newest checkpoint any
of them can read and take it from that rank, so resuming works with shared
storage and without it, and after an elastic resize.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from ludus_trainer.checkpoint import CheckpointManager
from ludus_trainer.dist import DistContext
from ludus_trainer.evaluation import EvaluationRecord, Objective, objective_from_env
from ludus_trainer.goodput import PhaseClock
from ludus_trainer.metrics import TrainerMetrics
from ludus_trainer.model_io import export_model
from ludus_trainer.progress import ProgressReporter
from ludus_trainer.sampler import ResumableDistributedSampler

logger = logging.getLogger("ludus_trainer")


class Workload(Protocol):
    """What the harness needs from a model and its data (a user's own class too: `ludus_trainer.api.train`).

    Optional, read when present: `tokens_per_sample` (tokens/s) and `flops_per_token()` (MFU on a GPU),
    for language models; `model` (an nn.Module), exported when the run ends."""

    name: str
    objective: Objective  # what "better" means when the job's spec names no objective

    def train_size(self) -> int: ...
    def train_step(self, indices: list[int]) -> torch.Tensor: ...
    def evaluate(self) -> dict[str, float]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _tokens_per_sample(workload: Workload) -> int:
    return int(getattr(workload, "tokens_per_sample", 0) or 0)


@dataclass
class LoopConfig:
    epochs: int
    batch_size: int
    checkpoint_dir: Path
    checkpoint_interval: int
    keep: int = 3
    max_steps: int | None = None
    step_delay: float = 0.0
    log_every: int = 10
    seed: int = 0
    stop_check_every: int = 10
    peak_flops: float | None = None
    # What the model was initialised from (transfer learning), recorded in the exported model's metadata.
    lineage: list[dict[str, Any]] = field(default_factory=list)


class StopSignal:
    """SIGTERM (pod deletion, torchrun restarting the group) asks for a checkpoint and a clean exit."""

    requested = False

    @classmethod
    def install(cls) -> None:
        signal.signal(signal.SIGTERM, cls._handle)

    @classmethod
    def _handle(cls, *_: Any) -> None:
        cls.requested = True


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


def agree_on_checkpoint(ctx: DistContext, manager: CheckpointManager) -> dict[str, Any] | None:
    """Load the newest checkpoint any rank can read, from that rank, on every rank."""
    local = manager.load_latest()
    step = -1 if local is None else int(local["step"])
    if not dist.is_initialized():
        return local
    steps: list[int] = [0] * ctx.world_size
    dist.all_gather_object(steps, step)
    best = max(steps)
    if best < 0:
        return None
    source = steps.index(best)
    box = [local if ctx.env.rank == source else None]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def _previous_run_step(checkpoint_dir: Path) -> int | None:
    """The furthest step an earlier run recorded (rank 0's progress.json beside the checkpoints): with
    the step this run resumes from, the steps it must redo. None without shared storage."""
    try:
        return int(json.loads((checkpoint_dir / "progress.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_event(ctx: DistContext, config: LoopConfig, kind: str, **fields: Any) -> None:
    """Rank 0 logs an event line and appends it to events.jsonl beside the checkpoints.

    The file outlives the pods when the checkpoint directory is a shared volume, so a restart's
    history (where the group resumed, at which world size) can be read after the fact.
    """
    if not ctx.is_main:
        return
    print(f"LUDUS_EVENT {kind} " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
    with open(config.checkpoint_dir / "events.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"event": kind, "time": time.time(), **fields}) + "\n")


def any_rank_asked_to_stop(ctx: DistContext) -> bool:
    if not dist.is_initialized():
        return StopSignal.requested
    flag = torch.tensor([1.0 if StopSignal.requested else 0.0], device=ctx.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def run(
    ctx: DistContext, workload: Workload, config: LoopConfig, metrics: TrainerMetrics, clock: PhaseClock | None = None
) -> dict[str, Any]:
    StopSignal.install()
    clock = clock or PhaseClock()
    manager = CheckpointManager(config.checkpoint_dir, keep=config.keep)
    progress = ProgressReporter(config.checkpoint_dir / "progress.json" if ctx.is_main else None)
    metrics.started(ctx.world_size, ctx.env.restart_count)

    step, epoch, consumed = 0, 0, 0
    # The last evaluation travels in the checkpoint: a group restarted after the final save
    # (an agent leaving during shutdown) resumes past the last epoch and must still report it.
    results: dict[str, float] = {}
    evaluation = EvaluationRecord(objective_from_env(workload.objective))
    metrics.objective(evaluation.objective.metric, evaluation.objective.goal)
    with clock.phase("restore"):
        state = agree_on_checkpoint(ctx, manager)
    if state is not None:
        with clock.phase("restore"):
            workload.load_state_dict(state["workload"])
        step, epoch, consumed = int(state["step"]), int(state["epoch"]), int(state["consumed"])
        results = dict(state.get("results") or {})
        evaluation = EvaluationRecord.from_dict(state.get("evaluation"), evaluation.objective)
        _restore_rng(state["rng"])
        logger.info("resumed from step %d (epoch %d, %d samples in) with world size %d",
                    step, epoch, consumed, ctx.world_size)
    else:
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        logger.info("starting fresh with world size %d", ctx.world_size)
    record_event(ctx, config, "start", step=step, world_size=ctx.world_size)
    start_step = step
    previous_step = _previous_run_step(config.checkpoint_dir)

    sampler = ResumableDistributedSampler(workload.train_size(), ctx.env.rank, ctx.world_size, seed=config.seed)
    global_batch = config.batch_size * ctx.world_size
    steps_per_epoch = workload.train_size() // global_batch
    total_steps = config.max_steps or (step + steps_per_epoch * (config.epochs - epoch) - consumed // global_batch)
    metrics.plan(start_step, total_steps, clock.origin, previous_step)
    evaluation.goodput = {"startStep": start_step, "phases": clock.as_dict(), "startedAt": round(clock.origin, 1)}
    if config.lineage:
        evaluation.init = {k: config.lineage[0].get(k) for k in ("source", "step", "sha256", "reinitialized")}

    def publish_phases() -> None:
        clock.train_until_now()
        phases = clock.as_dict()
        metrics.phases(phases)
        evaluation.goodput = {"startStep": start_step, "phases": phases, "step": step, "totalSteps": total_steps,
                              "startedAt": round(clock.origin, 1)}

    def save() -> None:
        if not ctx.is_main:
            return
        with clock.phase("checkpoint"):
            manager.save(step, {"workload": workload.state_dict(), "epoch": epoch, "consumed": consumed,
                                "rng": _rng_state(), "world_size": ctx.world_size, "results": results,
                                "evaluation": evaluation.as_dict()})
        metrics.checkpoint(manager.last_duration or 0.0)
        record_event(ctx, config, "checkpoint", step=step)

    clock.close_startup()
    clock.start_training()
    publish_phases()
    window_start, window_steps = time.perf_counter(), 0
    done = False
    while epoch < config.epochs and not done:
        sampler.set_epoch(epoch, consumed)
        order = list(sampler)
        for start in range(0, len(order) - config.batch_size + 1, config.batch_size):
            loss_tensor = workload.train_step(order[start:start + config.batch_size])
            step += 1
            if step == start_step + 1:
                clock.mark("first_step")
                if ctx.is_main:
                    print(f"LUDUS_STARTUP {json.dumps(clock.marks)}", flush=True)
            consumed += global_batch
            window_steps += 1
            if step % config.log_every == 0 or step == total_steps:
                loss = float(loss_tensor)  # the only host sync: on logged steps
                elapsed = time.perf_counter() - window_start
                rate = window_steps * global_batch / elapsed if elapsed > 0 else None
                tokens = rate * _tokens_per_sample(workload) if rate and _tokens_per_sample(workload) else None
                metrics.step(step, epoch, loss, rate, tokens)
                publish_phases()
                _gpu_metrics(ctx, metrics, tokens, workload, config)
                if ctx.is_main:
                    record = progress.record(step=step, total_steps=total_steps, epoch=epoch, loss=loss,
                                             samples_per_second=rate, metrics=results)
                    print(f"LUDUS_PROGRESS {json.dumps(record)}", flush=True)
                window_start, window_steps = time.perf_counter(), 0
            if step % config.checkpoint_interval == 0:
                save()
            if step % config.stop_check_every == 0 and any_rank_asked_to_stop(ctx):
                logger.info("SIGTERM: checkpointing at step %d and exiting", step)
                save()
                raise SystemExit(143)
            if config.max_steps and step >= config.max_steps:
                done = True
                break
            if config.step_delay:
                time.sleep(config.step_delay)
        if not done:
            epoch, consumed = epoch + 1, 0
        with clock.phase("evaluation"):
            results = workload.evaluate()
        metrics.evaluation(results, step)
        evaluation.update(results, step, epoch)
        publish_phases()
        if ctx.is_main:
            evaluation.publish()
            print(f"LUDUS_EVAL epoch={epoch} step={step} " + " ".join(f"{k}={v:.4f}" for k, v in results.items()),
                  flush=True)
    if not results:  # resumed from a final checkpoint written before results were kept in it
        results = workload.evaluate()
        metrics.evaluation(results, step)
        evaluation.update(results, step, epoch)
    save()
    publish_phases()
    final = {"step": step, "epoch": epoch, "world_size": ctx.world_size, **results}
    record_event(ctx, config, "result", **final)
    if ctx.is_main:
        model = getattr(workload, "model", None)
        if isinstance(model, torch.nn.Module):
            exported = export_model(config.checkpoint_dir, model, {
                "job": ctx.env.job, "step": step, "epoch": epoch, "evaluation": results,
                "objective": {"metric": evaluation.objective.metric, "goal": evaluation.objective.goal},
                "world_size": ctx.world_size, "workload": workload.name, "initializedFrom": config.lineage,
            })
            print(f"LUDUS_MODEL {exported}", flush=True)
        evaluation.publish()
        (config.checkpoint_dir / "result.json").write_text(json.dumps(final))
        progress.record(step=step, total_steps=total_steps, epoch=epoch, loss=0.0, metrics=results)
        print(f"LUDUS_RESULT {json.dumps(final)}", flush=True)
    return final


def _gpu_metrics(ctx: DistContext, metrics: TrainerMetrics, tokens_per_s: float | None, workload: Workload,
                 config: LoopConfig) -> None:
    if ctx.device.type != "cuda":
        return
    try:
        utilization: float | None = torch.cuda.utilization(ctx.device) / 100.0
    except Exception:  # noqa: BLE001 - NVML is optional
        utilization = None
    mfu = None
    flops_per_token = getattr(workload, "flops_per_token", None)
    if tokens_per_s and config.peak_flops and callable(flops_per_token):
        mfu = tokens_per_s * float(flops_per_token()) / (config.peak_flops * ctx.world_size)
    metrics.gpu(float(torch.cuda.memory_allocated(ctx.device)), utilization, mfu)
