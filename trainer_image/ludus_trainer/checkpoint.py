"""Atomic checkpoints: write, fsync, rename, fsync the directory; keep the last K.

A checkpoint file exists under its final name only once it is complete, so a
kill -9 mid-write leaves at worst a temporary file, which is ignored and swept.
Loading walks from the newest file down and skips any that fail to load, so a
file damaged after the fact costs one interval, not the run.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

logger = logging.getLogger("ludus_trainer.checkpoint")
_NAME = re.compile(r"^ckpt-(\d{12})\.pt$")


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write under a temporary name, fsync, rename, fsync the directory: `path` is whole or absent."""
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def checkpoint_name(step: int) -> str:
    return f"ckpt-{step:012d}.pt"


@dataclass
class CheckpointManager:
    directory: Path
    keep: int = 3
    collective = False  # rank 0 alone writes it
    last_saved_at: float | None = None
    last_duration: float | None = None

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def steps(self) -> list[int]:
        """Complete checkpoints, newest first."""
        found = []
        for entry in os.listdir(self.directory):
            match = _NAME.match(entry)
            if match:
                found.append(int(match.group(1)))
        return sorted(found, reverse=True)

    def save(self, step: int, state: dict[str, Any]) -> Path:
        started = time.monotonic()
        final = self.directory / checkpoint_name(step)
        write_atomically(final, lambda f: torch.save({"step": step, **state}, f))
        self._prune()
        self.last_saved_at = time.time()
        self.last_duration = time.monotonic() - started
        return final

    def describe(self, step: int) -> tuple[int, float]:
        """The checkpoint at `step`: its size in bytes and when it was completed."""
        info = (self.directory / checkpoint_name(step)).stat()
        return info.st_size, info.st_mtime

    def _prune(self) -> None:
        for step in self.steps()[self.keep:]:
            (self.directory / checkpoint_name(step)).unlink(missing_ok=True)
        for entry in os.listdir(self.directory):
            if entry.startswith(".tmp-ckpt-") and not entry.endswith(f".{os.getpid()}"):
                (self.directory / entry).unlink(missing_ok=True)

    def load_latest(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        for step in self.steps():
            path = self.directory / checkpoint_name(step)
            try:
                state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
                return state
            except Exception as err:  # noqa: BLE001 - any unreadable file means "try the previous one"
                logger.warning("skipping unreadable checkpoint %s: %s", path, err)
        return None
