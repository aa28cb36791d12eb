"""What resources that own TrainingJobs (Sweep, ContinuousTraining) share: the worker loop of every
kind (`controller.worker`), and their view of themselves and their children.

Each pass is the subclass' `sync`. The resources and their TrainingJobs come from Kopf's indexes (no
list calls); this operator's own writes are laid over them until the watch catches up (jobs it created,
through `controller.expectations`, and the status it wrote, through `controller.written`), so a pass
never acts on a view older than what it did itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ludus.api.models import TrainingJob
from ludus.controller.expectations import Expectations
from ludus.controller.worker import Key, WorkerPool
from ludus.controller.written import WrittenStatus
from ludus.runtime.kube import ApiError, KubeClient, job_path
from ludus.trainingjob.child import Version, read_children

logger = logging.getLogger("ludus.owner")

OwnerKey = Key


class OwnerController:
    """Subclasses set `kind`, `plural` and `handler` and implement `sync(key)`."""

    kind: str = ""
    plural: str = ""
    handler: str = ""

    def __init__(self, now: Callable[[], datetime], active: asyncio.Event, *, workers: int = 2) -> None:
        self.now = now
        self.active = active
        self.pool = WorkerPool(self.handler, self.sync, active, workers)
        self.queue = self.pool.queue
        self.client: KubeClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._owners: Mapping[Any, Any] | None = None
        self._children: Mapping[Any, Any] | None = None
        self.written = WrittenStatus()
        self.expectations = Expectations()  # children created here that the index may not show yet
        self._read: dict[OwnerKey, dict[Version, TrainingJob]] = {}  # children parsed, by owner and version

    def bind(self, owners: Mapping[Any, Any], children: Mapping[Any, Any]) -> None:
        if self._owners is None:
            self._owners, self._children = owners, children

    def start(self, client: KubeClient) -> None:
        self.client = client
        self._tasks = self.pool.start()

    async def stop(self) -> None:
        self.pool.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def enqueue(self, key: OwnerKey) -> None:
        self.pool.add(key)

    def forget(self, key: OwnerKey, uid: str) -> None:
        self.expectations.forget(key)
        self._read.pop(key, None)
        self.written.forget(uid)

    @property
    def healthy(self) -> bool:
        return all(not t.done() for t in self._tasks)

    async def sync(self, key: OwnerKey) -> float | None:
        raise NotImplementedError

    def owner_body(self, key: OwnerKey) -> Mapping[str, Any] | None:
        """The resource as this operator knows it (its own status write laid over the index), or None
        when it is gone or going."""
        if self._owners is None or key not in self._owners:
            return None
        body = next(iter(self._owners[key]), None)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        return self.written.current(body)

    def child_jobs(self, key: OwnerKey, uid: str) -> list[TrainingJob]:
        """The resource's TrainingJobs, read once as models: the index, and those created here that it
        does not show yet; only those it controls (`uid`), whatever their labels say."""
        seen = list(self._children.get(key, ())) if self._children is not None and key in self._children else []
        pending = self.expectations.pending_bodies(key, (j["metadata"]["name"] for j in seen))
        return read_children([*seen, *pending], self._read.setdefault(key, {}), owner_uid=uid)

    def created(self, key: OwnerKey, job: dict[str, Any]) -> None:
        """Created now or before (409): either way it exists; count it until the index shows it."""
        self.expectations.created(key, job["metadata"]["name"], job)

    def uncreate(self, key: OwnerKey, name: str) -> None:
        """A child deleted here: stop counting it as created."""
        self.expectations.observed(key, name)

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        assert self.client is not None
        try:
            await self.client.request("PATCH", job_path(namespace, name), patch,
                                      content_type="application/merge-patch+json")
        except ApiError as err:
            if err.status != 404:
                raise

    async def write_status(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Make the status exactly `status`: a merge patch from the one the pass read (fields it no
        longer has are nulled), guarded by the resourceVersion the pass read."""
        assert self.client is not None
        meta = body["metadata"]
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")},
                 "status": merge_patch(body.get("status") or {}, status)}
        response = await self.client.request(
            "PATCH", job_path(meta["namespace"], meta["name"], "status", plural=self.plural), patch,
            content_type="application/merge-patch+json")
        self.written.remember(str(meta.get("uid", "")), response)

    async def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime) -> None:
        assert self.client is not None
        try:
            await self.client.post_event(body, type_, reason, message, now.isoformat().replace("+00:00", "Z"),
                                         kind=self.kind)
        except ApiError as err:  # an Event is best effort: the status already says it
            logger.warning("event %s on %s %s not recorded: %s", reason, self.kind, body["metadata"]["name"], err)


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: a key `new` lacks becomes null,
    maps are patched key by key, anything else (lists included) is replaced whole."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch


def invalid_message(err: Any) -> str:
    """A pydantic ValidationError as `field.path: message; ...`."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())

