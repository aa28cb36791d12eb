"""An exported model's file names, the SHA-256 that pins its weights, and the error for a model that
cannot be used (torch-free: the publisher reads them without importing torch)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final


class InitError(RuntimeError):
    """The model cannot be initialised from that file; the message says why and what to do."""


WEIGHTS: Final = "weights.pt"
METADATA: Final = "metadata.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
