"""What the ranks of a run agree on: the checkpoint to resume from, and whether any was asked to stop.

Checkpoint state holds the model, the optimizer, the step and what the harness keeps; on every start
the ranks agree on the newest checkpoint any of them can read and take it from that rank, so resuming
works with shared storage and without it, and after an elastic resize.
"""

from __future__ import annotations

import signal
from typing import Any

import torch
import torch.distributed as dist

from ludus_trainer.checkpoint import CheckpointManager
from ludus_trainer.dist import DistContext


class StopSignal:
    """SIGTERM (pod deletion, torchrun restarting the group) asks for a checkpoint and a clean exit."""

    requested = False

    @classmethod
    def install(cls) -> None:
        signal.signal(signal.SIGTERM, cls._handle)

    @classmethod
    def _handle(cls, *_: Any) -> None:
        cls.requested = True


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


def any_rank_asked_to_stop(ctx: DistContext) -> bool:
    if not dist.is_initialized():
        return StopSignal.requested
    flag = torch.tensor([1.0 if StopSignal.requested else 0.0], device=ctx.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())
