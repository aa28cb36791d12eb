"""Exported models in object storage: `<checkpoint.uri>/model/{weights.pt,metadata.json}`.

S3 has no rename, so the export is ordered instead: the weights first, the metadata (which carries the
weights' SHA-256) last. A reader that finds the metadata finds complete weights and verifies them
(`model_io.load_into`); a reader racing a re-export sees a checksum that does not match and says so,
never a silent mix. The object store's modules are imported only when a URI is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ludus_trainer.digest import METADATA, WEIGHTS, InitError
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


def read_pointer(uri: str) -> dict[str, Any] | None:
    """A champion pointer (`champion.json`: run, model URI, SHA-256); None where there is none yet."""
    fs, root = _filesystem(uri)
    try:
        data = json.loads(fs.cat_file(root))
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise InitError(f"{uri} is not a champion pointer (not JSON): {err}") from err
    return data if isinstance(data, dict) else None


def write_pointer(uri: str, record: dict[str, Any]) -> None:
    """One PUT: a reader gets the old pointer or this one, never part of either."""
    fs, root = _filesystem(uri)
    fs.pipe_file(root, json.dumps(record, sort_keys=True).encode())


def fetch_model(uri: str, target: Path) -> Path:
    """Download the model at `uri` into `target` for `load_into`; InitError when there is none (yet). A
    `.json` URI is a champion pointer: the model it names is fetched, and must carry the SHA-256 it records."""
    if uri.endswith(".json"):
        pointer = read_pointer(uri)
        if pointer is None or not str(pointer.get("model") or "").startswith("s3://"):
            raise InitError(f"no champion at {uri} yet (no pointer, or one that names no model)")
        local = fetch_model(str(pointer["model"]), target)
        recorded = json.loads((local / METADATA).read_text()).get("sha256")
        if pointer.get("sha256") and recorded != pointer["sha256"]:
            raise InitError(f"{uri} names a model with SHA-256 {str(pointer['sha256'])[:12]}, but "
                            f"{pointer['model']} now holds {str(recorded)[:12]}: replaced since it was published")
        return local
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
