"""Checkpoints in object storage (`s3://bucket/prefix`, or any URL fsspec knows), written with
torch.distributed.checkpoint: every rank writes its own shard, so a model no rank holds whole still
checkpoints.

Object stores have no rename, so a checkpoint cannot appear at once the way a file does
(`checkpoint.write_atomically`). Instead each checkpoint is a prefix `ckpt-<step>/` that counts only once
its `COMMITTED` object exists: rank 0 writes it last, after torch.distributed.checkpoint has gathered
every rank's result and written its own metadata. A save killed half-way leaves a prefix without the
marker, which is never loaded and is deleted by the next save.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import fsspec
import torch.distributed as dist
from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader, FsspecWriter
from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from ludus_trainer.s3 import ENDPOINT_ENV, storage_options

logger = logging.getLogger("ludus_trainer.objectstore")

__all__ = ["ENDPOINT_ENV", "ObjectCheckpoints", "decode", "encode", "storage_options"]

COMMITTED = "COMMITTED"
_NAME = re.compile(r"^ckpt-(\d{12})$")
_KEYS, _VALUES = "__ludus_keys__", "__ludus_values__"


def encode(obj: Any) -> Any:
    """torch.distributed.checkpoint flattens nested dicts into string paths and loses key types: an
    optimizer's state keyed by int parameter ids would come back keyed by strings (and the optimizer
    would keep them beside its own). A dict with other than string keys is saved as its keys and values."""
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: encode(v) for k, v in obj.items()}
        return {_KEYS: list(obj.keys()), _VALUES: {str(i): encode(v) for i, v in enumerate(obj.values())}}
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    return obj


def decode(obj: Any) -> Any:
    """What `encode` did, undone."""
    if isinstance(obj, dict):
        if set(obj) == {_KEYS, _VALUES}:
            values = obj[_VALUES]
            return {k: decode(values[str(i)]) for i, k in enumerate(obj[_KEYS])}
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def checkpoint_prefix(step: int) -> str:
    return f"ckpt-{step:012d}"


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@dataclass
class ObjectCheckpoints:
    """The checkpoints under one URI: save (every rank calls it), the committed steps, load the newest."""

    uri: str
    keep: int = 3
    collective = True  # every rank takes part in a save
    options: dict[str, Any] = field(default_factory=dict)
    last_duration: float | None = None
    last_marker: dict[str, Any] | None = None  # what this process last committed

    def __post_init__(self) -> None:
        self.uri = self.uri.rstrip("/")
        if not self.options:
            self.options = storage_options(self.uri)
        self.fs, self.root = fsspec.core.url_to_fs(self.uri, **self.options)

    def _url(self, *parts: str) -> str:
        return "/".join([self.uri, *parts])

    def _listed(self) -> list[int]:
        try:
            names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]
        except FileNotFoundError:
            return []
        return sorted((int(m.group(1)) for n in names if (m := _NAME.match(n))), reverse=True)

    def steps(self) -> list[int]:
        """Committed checkpoints, newest first (a prefix without its marker is not one)."""
        self.fs.invalidate_cache()
        return [s for s in self._listed() if self.fs.exists(f"{self.root}/{checkpoint_prefix(s)}/{COMMITTED}")]

    def committed(self, step: int) -> dict[str, Any]:
        """What the marker of a committed checkpoint says (step, size, when)."""
        with self.fs.open(f"{self.root}/{checkpoint_prefix(step)}/{COMMITTED}", "rb") as f:
            info: dict[str, Any] = json.loads(f.read())
        return info

    def describe(self, step: int) -> tuple[int, float]:
        """The committed checkpoint at `step`: its size in bytes (every shard) and when it was committed."""
        marker = self.last_marker if (self.last_marker or {}).get("step") == step else self.committed(step)
        assert marker is not None
        return int(marker.get("sizeBytes") or 0), float(marker.get("time") or 0.0)

    def save(self, step: int, state: dict[str, Any], score: float | None = None) -> dict[str, Any] | None:
        """Write `state` at `step` (every rank, with its own shard) and commit it; rank 0 returns what the
        marker says and applies retention, the other ranks return None."""
        started = time.monotonic()
        prefix = checkpoint_prefix(step)
        writer = FsspecWriter(self._url(prefix), single_file_per_rank=True, overwrite=True, **self.options)
        dcp_save(encode({"step": step, **state}), storage_writer=writer)
        if _rank() != 0:
            self.last_duration = time.monotonic() - started
            return None
        # dcp.save returned on rank 0: every rank's shard and the metadata are written.
        self.fs.invalidate_cache()
        size = sum(int(info.get("size") or 0) for info in self.fs.ls(f"{self.root}/{prefix}", detail=True))
        marker = {"step": step, "uri": self._url(prefix), "sizeBytes": size, "time": time.time(),
                  **({"score": score} if score is not None else {})}
        with self.fs.open(f"{self.root}/{prefix}/{COMMITTED}", "wb") as f:
            f.write(json.dumps(marker).encode())
        self.last_marker = marker
        self._prune(step)
        self.last_duration = time.monotonic() - started
        return marker

    def _prune(self, newest: int) -> None:
        """Keep the newest `keep` committed checkpoints and the best scored one; delete the rest, and any
        uncommitted prefix older than the newest commit (a save that was killed)."""
        committed = self.steps()
        kept = set(committed[: self.keep])
        scored = [(m["score"], s) for s in committed if (m := self.committed(s)).get("score") is not None]
        if scored:
            kept.add(max(scored)[1])
        for step in self._listed():
            if step in kept or step > newest:
                continue
            try:
                self.fs.rm(f"{self.root}/{checkpoint_prefix(step)}", recursive=True)
            except FileNotFoundError:  # listed, but already empty (a store may list a prefix for a while)
                pass

    def load_latest(self, state: dict[str, Any]) -> int | None:
        """Load the newest committed checkpoint into `state` in place (every rank its part); returns its
        step, or None when there is none. One that fails to load is skipped for the one before it."""
        for step in self.steps():
            reader = FsspecReader(self._url(checkpoint_prefix(step)), **self.options)
            target = encode(state)  # the same tensors: loaded in place
            try:
                dcp_load(target, storage_reader=reader)
            except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means "try the previous one"
                logger.warning("skipping unreadable checkpoint %s: %s", checkpoint_prefix(step), err)
                continue
            state.update(decode(target))
            return step
        return None

    def load_whole(self, step: int) -> dict[str, Any]:
        """The whole checkpoint at `step` as one state dict, read by this process alone (what a replicated
        model resumes from; a sharded one loads in place with `load_latest`)."""
        state: dict[str, Any] = {}
        reader = FsspecReader(self._url(checkpoint_prefix(step)), **self.options)
        _load_state_dict(state, storage_reader=reader, planner=_EmptyStateDictLoadPlanner(), no_dist=True)  # type: ignore[no-untyped-call]
        decoded: dict[str, Any] = decode(state)
        return decoded
