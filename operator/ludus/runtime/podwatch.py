"""The pods Ludus made, kept by the operator's own list+watch instead of a Kopf handler.

Pods are the busiest stream an operator of training jobs sees: each pod passes
through four or five updates (created, bound, started, ready), against one or
two for its job. Through Kopf every one of those cost a per-object worker,
two handler invocations (the index and the event handler) with their kwargs
and loggers, and the bookkeeping Kopf keeps for objects it may patch; Ludus
never patches a pod. Here an event is one decode, one `observe_pod` and a dict
update, and the owning job is queued. TrainingJobs themselves stay on Kopf.

Semantics are an informer's: list, then watch from the list's resourceVersion;
a watch that ends is resumed where it stopped; a 410 (history compacted) or any
error relists, and the relist's difference queues every job it touched, so a
pod deleted while the watch was down is still noticed.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ludus.api import constants as c
from ludus.runtime import metrics
from ludus.runtime.kube import ApiError, KubeClient, pod_path
from ludus.trainingjob.observe import PodObservation, observe_pod, unreadable_pod

logger = logging.getLogger("ludus.podwatch")

JobKey = tuple[str, str]  # (namespace, job name)

LABEL_SELECTOR: Final = f"{c.LABEL_JOB_NAME},{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
# Items per list page: no single response grows with the number of pods.
LIST_PAGE_SIZE: Final = 500
# The API server closes a watch after this long; we resume it from the last resourceVersion.
WATCH_TIMEOUT_SECONDS: Final = 300
# Pause before relisting after an error (the API server restarting, a network blip).
RELIST_DELAY_SECONDS: Final = 1.0
_GLOB: Final = frozenset("*?[")
# Unreadable pods remembered so that each is logged once (forgotten all at once past this many).
MAX_UNREADABLE_REMEMBERED: Final = 10_000


class PodIndex:
    """Pods by job, then by uid: what `ludus.trainingjob.reconcile.reconcile` reads for one job, in O(its pods)."""

    def __init__(self) -> None:
        self._by_job: dict[JobKey, dict[str, PodObservation]] = {}
        self._unreadable: set[str] = set()  # pods already reported as unreadable (logged once each)

    def __contains__(self, key: object) -> bool:
        return key in self._by_job

    def __len__(self) -> int:
        return sum(len(pods) for pods in self._by_job.values())

    def pods_of(self, key: JobKey) -> list[PodObservation]:
        return list(self._by_job.get(key, {}).values())

    def apply(self, event_type: str, body: Mapping[str, Any]) -> JobKey | None:
        """One watch event; returns the job it belongs to (None for a pod without our job label)."""
        meta = body.get("metadata") or {}
        job = (meta.get("labels") or {}).get(c.LABEL_JOB_NAME)
        if not job:
            return None
        key = (str(meta.get("namespace", "")), str(job))
        uid = str(meta.get("uid", ""))
        if event_type == "DELETED":
            pods = self._by_job.get(key)
            if pods is not None:
                pods.pop(uid, None)
                if not pods:
                    del self._by_job[key]
        else:
            self._by_job.setdefault(key, {})[uid] = self._observe(body, key, uid)
        return key

    def _observe(self, body: Mapping[str, Any], key: JobKey, uid: str) -> PodObservation:
        """`observe_pod`, with whatever a pod's status holds confined to that pod: a pod that cannot be
        read is kept as Unknown (counted, logged once, named on its job's status), never an exception that
        ends the watch for all."""
        try:
            return observe_pod(body)
        except Exception as err:  # noqa: BLE001 - hostile or malformed pod content must not stop the watch
            metrics.POD_PARSE_ERRORS.inc()
            if uid not in self._unreadable:
                if len(self._unreadable) >= MAX_UNREADABLE_REMEMBERED:
                    self._unreadable.clear()
                self._unreadable.add(uid)
                logger.warning("pod %s of job %s/%s cannot be read, kept as Unknown: %r", uid, *key, err)
            return unreadable_pod(body, err)

    def replace(self, in_scope: Callable[[str], bool], bodies: Iterable[Mapping[str, Any]]) -> set[JobKey]:
        """A fresh listing of every namespace `in_scope` accepts; returns the jobs whose pods differ."""
        fresh = PodIndex()
        for body in bodies:
            fresh.apply("ADDED", body)
        stale = {key for key in self._by_job if in_scope(key[0])}
        changed = {key for key in stale | set(fresh._by_job) if self._by_job.get(key) != fresh._by_job.get(key)}
        for key in stale:
            del self._by_job[key]
        self._by_job.update(fresh._by_job)
        return changed


def watch_scopes(namespaces: tuple[str, ...]) -> list[str | None]:
    """Namespaces to list and watch one by one; None is one cluster-wide watch (also for globs)."""
    if not namespaces or any(_GLOB & set(ns) for ns in namespaces):
        return [None]
    return list(dict.fromkeys(namespaces))


def namespace_filter(namespaces: tuple[str, ...]) -> Callable[[str], bool]:
    """Which namespaces' pods a cluster-wide watch keeps (Kopf's glob patterns included)."""
    if not namespaces:
        return lambda _: True
    return lambda ns: any(fnmatch.fnmatchcase(ns, pattern) for pattern in namespaces)


def _pods_path(namespace: str | None) -> str:
    return pod_path(namespace) if namespace else "/api/v1/pods"


class _Relist(Exception):
    """The watch cannot resume (410 Gone, an ERROR event): list again."""


class PodWatch:
    """Keeps a PodIndex current and tells the controller which job each event touched."""

    def __init__(
        self, index: PodIndex, namespaces: tuple[str, ...], on_change: Callable[[JobKey, str | None], None]
    ) -> None:
        self.index = index
        self.synced = asyncio.Event()  # set once every scope has been listed
        self._scopes = watch_scopes(namespaces)
        self._wanted = namespace_filter(namespaces)
        self._on_change = on_change
        self._listed: set[str | None] = set()

    async def run(self, client: KubeClient) -> None:
        await asyncio.gather(*(self._follow(client, scope) for scope in self._scopes))

    async def _follow(self, client: KubeClient, scope: str | None) -> None:
        path = _pods_path(scope)
        in_scope: Callable[[str], bool] = self._wanted if scope is None else (lambda ns: ns == scope)
        while True:
            try:
                version = await self._relist(client, path, in_scope, scope)
                while True:
                    version = await self._watch(client, path, version, in_scope)
            except _Relist as why:
                metrics.POD_WATCH_RELISTS.labels(reason="expired").inc()
                logger.info("pod watch %s: %s; relisting", path, why)
            except Exception as err:  # noqa: BLE001 - an API server restart, a network blip: the watch outlives it
                metrics.POD_WATCH_RELISTS.labels(reason="error").inc()
                logger.warning("pod watch %s failed, relisting in %.0fs: %r", path, RELIST_DELAY_SECONDS, err)
                await asyncio.sleep(RELIST_DELAY_SECONDS)

    async def _relist(self, client: KubeClient, path: str, in_scope: Callable[[str], bool], scope: str | None) -> str:
        items: list[Mapping[str, Any]] = []
        params = {"labelSelector": LABEL_SELECTOR, "limit": str(LIST_PAGE_SIZE)}
        while True:
            page = await client.request("GET", path, params=params)
            items.extend(item for item in page.get("items") or [] if in_scope(item["metadata"]["namespace"]))
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion", ""))
            if not meta.get("continue"):
                break
            params = {**params, "continue": meta["continue"]}
        for key in self.index.replace(in_scope, items):
            self._on_change(key, None)
        self._listed.add(scope)
        if len(self._listed) == len(self._scopes):
            self.synced.set()
        return version

    async def _watch(self, client: KubeClient, path: str, version: str, in_scope: Callable[[str], bool]) -> str:
        """Follow one watch until the server ends it; returns the resourceVersion to resume from."""
        params = {
            "labelSelector": LABEL_SELECTOR,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": version,
            "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
        }
        try:
            async for event in client.watch(path, params, read_timeout=WATCH_TIMEOUT_SECONDS + 30):
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise _Relist(f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK" or not in_scope(obj["metadata"]["namespace"]):
                    continue
                metrics.LAST_WATCH_EVENT.set(time.time())
                key = self.index.apply(str(kind), obj)
                if key is not None:
                    self._on_change(key, str(obj["metadata"].get("name", "")))
        except ApiError as err:
            if err.status == 410:
                raise _Relist("410 Gone") from err
            raise
        return version
