"""status.checkpoint: the newest complete checkpoint, where the job would resume from (pure).

Worker 0's rank 0 reports the step, size and completion time of each checkpoint it completes and of the
one it resumed from; the location comes from the spec (the object-storage URI or the claim and its
directory), never from what a pod says.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ludus.api.models import CheckpointStatus, TrainingJob
from ludus.builders.pods import checkpoint_dir
from ludus.trainingjob.progress import ProgressSample


def newest_checkpoint(job: TrainingJob, progress: ProgressSample | None) -> CheckpointStatus | None:
    """What status.checkpoint holds after this pass: the trainer's latest report, or what it held (a poll of a
    restarted pod that has not saved yet reports nothing). A job whose checkpoints stay in its pods (no claim,
    no URI) has none anyone could resume from elsewhere."""
    current = job.status.checkpoint
    ckpt = job.spec.checkpoint
    if progress is None or progress.checkpoint is None or not (ckpt.uri or ckpt.claim_name):
        return current
    step, size, at = progress.checkpoint
    time = datetime.fromtimestamp(at, UTC).replace(microsecond=0) if at is not None else None
    if ckpt.uri:
        found = CheckpointStatus(step=step, uri=f"{ckpt.uri.rstrip('/')}/ckpt-{step:012d}", size_bytes=size,
                                 time=time)
    else:
        found = CheckpointStatus(step=step, claim_name=ckpt.claim_name, size_bytes=size, time=time,
                                 path=f"{checkpoint_dir(job).rstrip('/')}/ckpt-{step:012d}.pt")
    return current if found == current else found
