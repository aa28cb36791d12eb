"""Where a run's checkpoints go: files in a directory (a claim, or the pod's own disk), or objects under
the job's object storage URI (spec.checkpoint.uri).

The object store's modules (torch.distributed.checkpoint, fsspec, s3fs) are imported only by a run
that uses one: the harness's workers are forked from torchrun's agent, and every module a worker
imports is time before its first step and one more thing alive when it tears down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ludus_trainer.checkpoint import CheckpointManager
from ludus_trainer.s3 import ENV_CHECKPOINT_URI

if TYPE_CHECKING:
    from ludus_trainer.objectstore import ObjectCheckpoints


def open_checkpoints(directory: Path, keep: int = 3) -> CheckpointManager | ObjectCheckpoints:
    """The job's object storage URI when it has one, else `directory`."""
    uri = os.environ.get(ENV_CHECKPOINT_URI)
    if not uri:
        return CheckpointManager(directory, keep=keep)
    from ludus_trainer.objectstore import ObjectCheckpoints

    # Saved to the pod's own disk first (as fast as a local save), uploaded while training goes on.
    return ObjectCheckpoints(uri, keep=keep, staging=directory / ".staging")
