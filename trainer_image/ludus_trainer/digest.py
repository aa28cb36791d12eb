"""An exported model's file names and the SHA-256 that pins its weights (torch-free: the publisher
reads them without importing torch)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

WEIGHTS: Final = "weights.pt"
METADATA: Final = "metadata.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
