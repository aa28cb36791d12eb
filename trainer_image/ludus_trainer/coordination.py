"""What the ranks of a run agree on: the checkpoint to resume from, and whether any was asked to stop.

Checkpoint state holds the model, the optimizer, the step and what the harness keeps; on every start
the ranks agree on the newest checkpoint any of them can read and take it from that rank, so resuming
works with shared storage and without it, and after an elastic resize.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from ludus_trainer.checkpoint import CheckpointManager
from ludus_trainer.dist import DistContext

if TYPE_CHECKING:
    from ludus_trainer.objectstore import ObjectCheckpoints

logger = logging.getLogger("ludus_trainer.coordination")


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


def agree_on_object_checkpoint(ctx: DistContext, store: ObjectCheckpoints) -> dict[str, Any] | None:
    """Every rank reads the newest committed checkpoint rank 0 lists (the same one on all ranks); one that
    any rank cannot read is skipped, on all of them, for the one before it."""
    box: list[Any] = [store.steps() if ctx.env.rank == 0 else None]
    if dist.is_initialized():
        dist.broadcast_object_list(box, src=0)
    for step in box[0] or []:
        try:
            state: dict[str, Any] | None = store.load_whole(step)
        except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means "try the previous one"
            logger.warning("cannot read checkpoint step %d: %s", step, err)
            state = None
        if not dist.is_initialized():
            if state is not None:
                return state
            continue
        failed = torch.tensor([0.0 if state is not None else 1.0], device=ctx.device)
        dist.all_reduce(failed, op=dist.ReduceOp.MAX)
        if not failed.item():
            return state
    return None


def any_rank_asked_to_stop(ctx: DistContext) -> bool:
    if not dist.is_initialized():
        return StopSignal.requested
    flag = torch.tensor([1.0 if StopSignal.requested else 0.0], device=ctx.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())
