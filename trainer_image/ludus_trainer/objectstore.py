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
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import torch.distributed as dist
from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader, FsspecWriter
from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
from torch.distributed.checkpoint.filesystem import FileSystemWriter
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from ludus_trainer.s3 import ENDPOINT_ENV, storage_options

logger = logging.getLogger("ludus_trainer.objectstore")

__all__ = ["ENDPOINT_ENV", "ObjectCheckpoints", "decode", "encode", "storage_options"]

COMMITTED = "COMMITTED"
_UPLOADED = ".uploaded-"  # each rank's marker that its part of a staged save is in the store
# How long rank 0 waits for the other ranks' uploads before leaving a checkpoint uncommitted.
COMMIT_WAIT_SECONDS = 600
UPLOAD_ATTEMPTS = 3
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
    # Where this rank writes a save before uploading it (the pod's own disk); None: straight to the store.
    staging: Path | None = None
    on_commit: Callable[[dict[str, Any]], None] | None = None  # rank 0, with the marker, once committed
    _upload: threading.Thread | None = field(default=None, repr=False)
    _committer: threading.Thread | None = field(default=None, repr=False)
    _generation: int = field(default=0, repr=False)  # staged saves begun by this process

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

    def save(self, step: int, state: dict[str, Any], score: float | None = None, wait: bool = False
             ) -> dict[str, Any] | None:
        """Write `state` at `step` (every rank, with its own shard) and commit it. With a staging directory
        the ranks write to local disk (as long as a local save takes) and upload in the background: rank 0
        commits once every rank's upload is done; `wait` (the last save, a SIGTERM's) returns only then.
        Without one, the shards go straight to the store. Rank 0 returns the marker once committed here."""
        started = time.monotonic()
        if self.staging is None:
            writer = FsspecWriter(self._url(checkpoint_prefix(step)), single_file_per_rank=True, overwrite=True,
                                  **self.options)
            dcp_save(encode({"step": step, **state}), storage_writer=writer)
            self.last_duration = time.monotonic() - started
            return self._commit(step, score, world=None) if _rank() == 0 else None
        self.flush(commit=False)  # this rank's previous upload first: one in flight, its disk reused
        rank = _rank()
        # Each rank its own directory: local ranks share the pod's disk, and each uploads what it wrote.
        local = self.staging / f"rank-{rank}" / checkpoint_prefix(step)
        shutil.rmtree(local, ignore_errors=True)
        dcp_save(encode({"step": step, **state}), storage_writer=FileSystemWriter(local, single_file_per_rank=True))
        self.last_duration = time.monotonic() - started
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self._generation += 1
        self._upload = threading.Thread(target=self._upload_then_commit,
                                        args=(step, local, world, score, self._generation),
                                        name=f"ludus-upload-{step}", daemon=True)
        self._upload.start()
        if wait:
            self.flush()
            return self.last_marker if (self.last_marker or {}).get("step") == step else None
        return None

    def flush(self, commit: bool = True) -> None:
        """Wait for this rank's upload in flight and, with `commit` (the last save, the end of a run), rank 0's
        commit of it. A save waits only for the upload: a commit that waits on a rank that died must not
        stall training."""
        if self._upload is not None:
            self._upload.join()
            self._upload = None
        if commit and self._committer is not None:
            self._committer.join()
            self._committer = None

    def _upload_then_commit(self, step: int, local: Path, world: int, score: float | None, generation: int) -> None:
        prefix, rank = checkpoint_prefix(step), _rank()
        try:
            for path in sorted(local.iterdir()):
                self._put(path, f"{self.root}/{prefix}/{path.name}")
            with self.fs.open(f"{self.root}/{prefix}/{_UPLOADED}{rank}", "wb") as f:
                f.write(b"")
        except Exception as err:  # noqa: BLE001 - an upload that fails leaves an uncommitted prefix, never loaded
            logger.warning("checkpoint %s not uploaded: %s", prefix, err)
            return
        finally:
            shutil.rmtree(local, ignore_errors=True)
        if rank == 0:
            self._committer = threading.Thread(target=self._commit_when_uploaded,
                                               args=(step, world, score, generation),
                                               name=f"ludus-commit-{step}", daemon=True)
            self._committer.start()

    def _commit_when_uploaded(self, step: int, world: int, score: float | None, generation: int) -> None:
        try:
            if self._all_uploaded(checkpoint_prefix(step), world, generation):
                self._commit(step, score, world)
        except Exception as err:  # noqa: BLE001 - an uncommitted checkpoint is never loaded; the next one may be
            logger.warning("checkpoint %s not committed: %s", checkpoint_prefix(step), err)

    def _put(self, path: Path, target: str) -> None:
        """One file up, tried again after a store's transient error (an S3 InternalError, a dropped
        connection): a blip should not cost a checkpoint. What still fails leaves the step uncommitted."""
        for attempt in range(UPLOAD_ATTEMPTS):
            try:
                self.fs.put_file(str(path), target)
                return
            except OSError as err:
                if attempt == UPLOAD_ATTEMPTS - 1 or isinstance(err, PermissionError | FileNotFoundError):
                    raise
                logger.warning("upload of %s failed (%s); trying again", target, err)
                time.sleep(2.0 * (attempt + 1))

    def _all_uploaded(self, prefix: str, world: int, generation: int | None = None) -> bool:
        """Rank 0 waits for every rank's upload marker; a rank that died leaves the checkpoint uncommitted, and
        a newer save supersedes the wait (the older one stays uncommitted, swept by a later commit)."""
        deadline = time.monotonic() + COMMIT_WAIT_SECONDS
        while time.monotonic() < deadline:
            self.fs.invalidate_cache()
            try:
                names = {str(p).rsplit("/", 1)[-1] for p in self.fs.ls(f"{self.root}/{prefix}", detail=False)}
            except FileNotFoundError:
                names = set()
            if all(f"{_UPLOADED}{r}" in names for r in range(world)):
                return True
            # Every rank finishes its upload of this step before the next save's collective write, so once a
            # newer save has begun, a marker still missing is a rank that failed: stop waiting for it.
            if generation is not None and generation != self._generation:
                logger.warning("checkpoint %s: a rank did not upload it before the next save; left uncommitted",
                               prefix)
                return False
            time.sleep(0.2)
        logger.warning("checkpoint %s: not every rank uploaded within %d s; left uncommitted", prefix,
                       COMMIT_WAIT_SECONDS)
        return False

    def _commit(self, step: int, score: float | None, world: int | None) -> dict[str, Any]:
        """Rank 0, once every shard and the metadata are in the store: the marker, then retention."""
        prefix = checkpoint_prefix(step)
        self.fs.invalidate_cache()
        size = sum(int(info.get("size") or 0) for info in self.fs.ls(f"{self.root}/{prefix}", detail=True))
        marker = {"step": step, "uri": self._url(prefix), "sizeBytes": size, "time": time.time(),
                  **({"score": score} if score is not None else {}), **({"worldSize": world} if world else {})}
        with self.fs.open(f"{self.root}/{prefix}/{COMMITTED}", "wb") as f:
            f.write(json.dumps(marker).encode())
        self.last_marker = marker
        self._prune(step)
        if self.on_commit is not None:
            self.on_commit(marker)
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
