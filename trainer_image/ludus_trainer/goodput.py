"""Where the trainer's own time goes: start-up, rendezvous, restore, training, checkpoints, evaluation.

The operator knows how long a job waited for pods and how long a restart kept it
down; only the trainer knows its own phases. It keeps seconds per phase for this
process, exports them as `ludus_trainer_phase_seconds{phase}` (the operator reads
them with the step) and puts them in the termination message at the end.
Start-up is counted from the container's start on a pod's first run (so the
interpreter, torch's import and torchrun's own rendezvous are in it), from this
process's start after torchrun restarted it in place.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

PHASES: Final = ("startup", "rendezvous", "restore", "train", "checkpoint", "evaluation")


def process_started_at(pid: int | str = "self") -> float | None:
    """Wall-clock start of a process from /proc (Linux); None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            # Field 22 (starttime) counts clock ticks since boot; the name (field 2) may hold spaces.
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def startup_origin(restart_count: int) -> float:
    """When this run of the program began: the container's start on its first run, else this process's."""
    container = process_started_at(1) if restart_count == 0 else None
    own = process_started_at()
    return container or own or time.time()


@dataclass
class PhaseClock:
    """Seconds per phase for this process, plus named moments of its start for the start-up breakdown."""

    origin: float = field(default_factory=time.time)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    marks: dict[str, float] = field(default_factory=dict)
    _train_from: float | None = None
    _others_then: float = 0.0

    def mark(self, name: str) -> None:
        """Remember when a start-up stage ended (seconds since the origin)."""
        self.marks[name] = round(time.time() - self.origin, 3)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(seconds, 0.0)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def close_startup(self) -> None:
        """Start-up ends now: everything since the origin not already in another phase."""
        elapsed = time.time() - self.origin
        self.seconds["startup"] = max(0.0, elapsed - sum(v for k, v in self.seconds.items() if k != "startup"))

    def start_training(self) -> None:
        """The training loop begins: from now on, time not in another phase is training."""
        self._train_from = time.perf_counter()
        self._others_then = self._others()

    def train_until_now(self) -> None:
        if self._train_from is None:
            return
        elapsed = time.perf_counter() - self._train_from
        self.seconds["train"] = max(0.0, elapsed - (self._others() - self._others_then))

    def _others(self) -> float:
        return sum(v for k, v in self.seconds.items() if k not in ("startup", "train"))

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}
