"""The built-in training loop, a helper on the run's `Session` (`ludus_trainer.api.train`).

A workload (digits, gpt, or a user's own class) brings its data, `train_step` and `evaluate`; the
loop brings a sampler that resumes mid-epoch, checkpoints on an interval and on SIGTERM, the
baseline of a model the run started from, and the calls a script makes itself: its checkpoints
hold the model, the optimizer, the step, the epoch, the samples of the epoch already consumed
(world-size independent) and the RNG states.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ludus_trainer.coordination import StopSignal, any_rank_asked_to_stop
from ludus_trainer.dist import DistContext
from ludus_trainer.evaluation import Objective
from ludus_trainer.metrics import TrainerMetrics
from ludus_trainer.sampler import ResumableDistributedSampler
from ludus_trainer.storage import open_checkpoints

if TYPE_CHECKING:
    from ludus_trainer.session import Session

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


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


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


def run(session: Session, workload: Workload, config: LoopConfig) -> dict[str, Any]:
    """The built-in loop on a run's session (`ludus_trainer.api.train`): the same calls a script makes."""
    ctx = session.ctx
    StopSignal.install()
    session.use_objective_default(workload.objective)
    manager = open_checkpoints(config.checkpoint_dir, keep=config.keep)
    step, epoch, consumed = 0, 0, 0
    # The last evaluation travels in the checkpoint: a group restarted after the final save
    # (an agent leaving during shutdown) resumes past the last epoch and must still report it.
    results: dict[str, float] = {}
    state = session.resume(manager)
    if state is not None:
        with session.phase("restore"):
            workload.load_state_dict(state["workload"])
        step, epoch, consumed = int(state["step"]), int(state["epoch"]), int(state["consumed"])
        results = dict(state.get("results") or {})
        _restore_rng(state["rng"])
        logger.info("resumed from step %d (epoch %d, %d samples in) with world size %d",
                    step, epoch, consumed, ctx.world_size)
    else:
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        logger.info("starting fresh with world size %d", ctx.world_size)
        if session.lineage:  # started from a model: how good it is on this run's data, before training
            with session.phase("evaluation"):
                session.baseline(workload.evaluate())
    record_event(ctx, config, "start", step=step, world_size=ctx.world_size)
    start_step = step
    sampler = ResumableDistributedSampler(workload.train_size(), ctx.env.rank, ctx.world_size, seed=config.seed)
    global_batch = config.batch_size * ctx.world_size
    steps_per_epoch = workload.train_size() // global_batch
    total_steps = config.max_steps or (step + steps_per_epoch * (config.epochs - epoch) - consumed // global_batch)
    session.step, session.epoch = step, epoch
    session.plan(start_step, total_steps, _previous_run_step(config.checkpoint_dir))
    session.clock.mark("data")

    def save(last: bool = False) -> None:
        session.save_checkpoint(step, {"workload": workload.state_dict(), "epoch": epoch, "consumed": consumed,
                                       "rng": _rng_state(), "world_size": ctx.world_size, "results": results},
                                manager, wait=last)
        record_event(ctx, config, "checkpoint", step=step)

    session.begin_training()
    window_start, window_steps = time.perf_counter(), 0
    done = False
    while epoch < config.epochs and not done:
        sampler.set_epoch(epoch, consumed)
        order = list(sampler)
        for start in range(0, len(order) - config.batch_size + 1, config.batch_size):
            loss_tensor = workload.train_step(order[start:start + config.batch_size])
            step += 1
            if step == start_step + 1:
                session.clock.mark("first_step")
                if ctx.is_main:
                    print(f"LUDUS_STARTUP {json.dumps(session.clock.marks)}", flush=True)
            consumed += global_batch
            window_steps += 1
            if step % config.log_every == 0 or step == total_steps:
                elapsed = time.perf_counter() - window_start
                rate = window_steps * global_batch / elapsed if elapsed > 0 else None
                tokens = rate * _tokens_per_sample(workload) if rate and _tokens_per_sample(workload) else None
                # float(loss): the only host sync, on logged steps
                session.report(step=step, loss=float(loss_tensor), epoch=epoch, total_steps=total_steps,
                               samples_per_second=rate, tokens_per_second=tokens, log=True)
                _gpu_metrics(ctx, session.metrics, tokens, workload, config)
                window_start, window_steps = time.perf_counter(), 0
            if step % config.checkpoint_interval == 0:
                save()
            if step % config.stop_check_every == 0 and any_rank_asked_to_stop(ctx):
                logger.info("SIGTERM: checkpointing at step %d and exiting", step)
                save(last=True)
                raise SystemExit(143)
            if config.max_steps and step >= config.max_steps:
                done = True
                break
            if config.step_delay:
                time.sleep(config.step_delay)
        if not done:
            epoch, consumed = epoch + 1, 0
        session.step, session.epoch = step, epoch
        with session.phase("evaluation"):
            results = workload.evaluate()
        session.evaluated(results, step, epoch)
    if not results:  # resumed from a final checkpoint written before results were kept in it
        results = workload.evaluate()
        session.evaluated(results, step, epoch)
    save(last=True)
    final = {"step": step, "epoch": epoch, "world_size": ctx.world_size, **results}
    record_event(ctx, config, "result", **final)
    model = getattr(workload, "model", None)
    if isinstance(model, torch.nn.Module):
        session.export_model(model, {"evaluation": results, "workload": workload.name})
    session.publish_final()
    if ctx.is_main:
        (config.checkpoint_dir / "result.json").write_text(json.dumps(final))
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
