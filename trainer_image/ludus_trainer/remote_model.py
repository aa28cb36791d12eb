"""Exported models in object storage: `<checkpoint.uri>/model/{weights.pt,metadata.json}`.

S3 has no rename, so the export is ordered instead: the weights first, the metadata (which carries the
weights' SHA-256) last. A reader that finds the metadata finds complete weights and verifies them
(`model_io.load_into`); a reader racing a re-export sees a checksum that does not match and says so,
never a silent mix. The object store's modules are imported only when a URI is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ludus_trainer.digest import METADATA, WEIGHTS
from ludus_trainer.model_io import InitError
from ludus_trainer.s3 import storage_options


def _filesystem(uri: str) -> tuple[Any, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri.rstrip("/"), **storage_options(uri))
    return fs, str(root).rstrip("/")


def upload_model(local: Path, uri: str) -> str:
    """Upload an exported model directory to `uri` (weights, then metadata); returns the URI."""
    fs, root = _filesystem(uri)
    fs.put_file(str(local / WEIGHTS), f"{root}/{WEIGHTS}")
    fs.put_file(str(local / METADATA), f"{root}/{METADATA}")
    return uri.rstrip("/")


def fetch_model(uri: str, target: Path) -> Path:
    """Download the model at `uri` into `target` for `load_into`; InitError when there is none (yet)."""
    fs, root = _filesystem(uri)
    try:
        found = set(fs.ls(root, detail=False))
    except FileNotFoundError:
        found = set()
    names = {str(p).rstrip("/").rsplit("/", 1)[-1] for p in found}
    if WEIGHTS not in names or METADATA not in names:
        raise InitError(f"no model at {uri}: expected {WEIGHTS} and {METADATA} there (a finished job's export, "
                        "written by a job with checkpoint.uri); has the source job finished?")
    target.mkdir(parents=True, exist_ok=True)
    fs.get_file(f"{root}/{METADATA}", str(target / METADATA))
    fs.get_file(f"{root}/{WEIGHTS}", str(target / WEIGHTS))
    return target
