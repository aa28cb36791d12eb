"""Rank 0's progress record: a small JSON file, replaced atomically, plus one log line.

The operator surfaces the record in the TrainingJob's status; people read the
log line (`kubectl logs`). ETA comes from the recent step rate.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class ProgressReporter:
    path: Path | None
    started: float = field(default_factory=time.monotonic)
    first_step: int | None = None

    def record(
        self,
        *,
        step: int,
        total_steps: int | None,
        epoch: int,
        loss: float,
        samples_per_second: float | None = None,
        metrics: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        if self.first_step is None:
            self.first_step = step
            self.started = time.monotonic()
        elapsed = time.monotonic() - self.started
        done_here = step - self.first_step
        eta = None
        if total_steps and done_here > 0 and elapsed > 0:
            eta = max(total_steps - step, 0) * elapsed / done_here
        record = {
            "step": step,
            "totalSteps": total_steps,
            "epoch": epoch,
            "loss": round(loss, 6),
            "samplesPerSecond": None if samples_per_second is None else round(samples_per_second, 2),
            "etaSeconds": None if eta is None else round(eta, 1),
            "metrics": {k: round(v, 6) for k, v in (metrics or {}).items()},
            "updatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.path is not None:
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.path)
        return record
