"""status.checkpoint: the newest complete checkpoint, where the job would resume from (pure).

Worker 0's rank 0 reports the step, size and completion time of each checkpoint it completes and of the
one it resumed from; the location comes from the spec (the object-storage URI or the claim and its
directory), never from what a pod says.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ludus.api.models import CheckpointStatus, TrainingJob
from ludus.builders.pods import checkpoint_dir
from ludus.trainingjob.observe import PodObservation, current_workers
from ludus.trainingjob.progress import ProgressSample

Reported = tuple[int, int | None, float | None]  # step, bytes, when (seconds since the epoch)
_MAX_COUNT = 2**53


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value) if 0 <= value < _MAX_COUNT else None


def from_termination_message(pods: list[PodObservation]) -> Reported | None:
    """Worker 0's last word on its newest checkpoint (the final save often comes after the last poll)."""
    worker0 = current_workers(pods).get(0)
    raw = (worker0.evaluation or {}).get("checkpoint") if worker0 is not None else None
    if not isinstance(raw, dict) or (step := _count(raw.get("step"))) is None:
        return None
    at = raw.get("time")
    if isinstance(at, bool) or not isinstance(at, int | float) or not 0 < at < 2**40:
        return step, _count(raw.get("sizeBytes")), None
    return step, _count(raw.get("sizeBytes")), float(at)


def newest_checkpoint(job: TrainingJob, progress: ProgressSample | None,
                      pods: list[PodObservation] | None = None) -> CheckpointStatus | None:
    """What status.checkpoint holds after this pass: the trainer's latest report (its metrics, or worker 0's
    termination message when that names a later step), or what it held (a poll of a restarted pod that has
    not saved yet reports nothing). A job whose checkpoints stay in its pods (no claim, no URI) has none
    anyone could resume from elsewhere."""
    current = job.status.checkpoint
    ckpt = job.spec.checkpoint
    reports = [r for r in (progress.checkpoint if progress else None, from_termination_message(pods or []))
               if r is not None]
    if not reports or not (ckpt.uri or ckpt.claim_name):
        return current
    step, size, at = max(reports, key=lambda r: r[0])
    time = datetime.fromtimestamp(at, UTC).replace(microsecond=0) if at is not None else None
    if ckpt.uri:
        found = CheckpointStatus(step=step, uri=f"{ckpt.uri.rstrip('/')}/ckpt-{step:012d}", size_bytes=size,
                                 time=time)
    else:
        found = CheckpointStatus(step=step, claim_name=ckpt.claim_name, size_bytes=size, time=time,
                                 path=f"{checkpoint_dir(job).rstrip('/')}/ckpt-{step:012d}.pt")
    return current if found == current else found
