"""Callbacks that connect a framework's own training loop to the run's `Session`.

`huggingface` (transformers.Trainer) and `lightning` (PyTorch Lightning): each turns the framework's
events (steps, evaluation, checkpoint save, the end) into the progress, evaluation, goodput phases,
checkpoint directory and export a script on `ludus_trainer.api` gets. Each module imports its
framework only when a script imports it: the built-in workloads never pay for either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ludus_trainer.evaluation import Objective
from ludus_trainer.session import Session

EVAL_LOSS = "eval_loss"
# What a framework's evaluation minimizes unless the job's spec names another objective.
DEFAULT_OBJECTIVE = Objective(EVAL_LOSS, "minimize")
# What a framework's metrics dict holds besides evaluation results: timings and counters.
_NOT_RESULTS = re.compile(r"(^|_)(runtime|time|samples_per_second|steps_per_second|epoch|step|total_flos)$")


def evaluation_results(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """A framework's evaluation metrics as Ludus names them: `prefix` dropped (`eval_accuracy` and
    `val_accuracy` are `accuracy`) and the loss is `eval_loss` (as digits names it); timings and
    counters left out, tensors made numbers, anything not finite left out."""
    results: dict[str, float] = {}
    for key, raw in metrics.items():
        if not isinstance(key, str) or _NOT_RESULTS.search(key):
            continue
        try:
            value = float(raw.item() if hasattr(raw, "item") else raw)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(value):
            continue
        name = key[len(prefix):] if prefix and key.startswith(prefix) else key
        results[EVAL_LOSS if name == "loss" else name] = value
    return results


def newest_common(candidates: list[int]) -> int | None:
    """The newest checkpoint step every rank can read: each rank offers its own newest (-1: none)."""
    newest = max(candidates, default=-1)
    if not dist.is_initialized():
        return newest if newest >= 0 else None
    offered: list[int] = [0] * dist.get_world_size()
    dist.all_gather_object(offered, newest)
    agreed = min(offered)
    return agreed if agreed >= 0 else None


def checkpoint_steps(directory: Path, pattern: re.Pattern[str]) -> list[int]:
    """The steps of the checkpoints in `directory` whose names `pattern` matches (its group 1: the step)."""
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := pattern.fullmatch(p.name)))


__all__ = ["Session", "checkpoint_steps", "evaluation_results", "newest_common"]
