"""Carrying out a plan against the API server, in the one order that loses nothing.

Status first (guarded by resourceVersion), then children, then Events: a crash
in between can only repeat work, never lose a restart count. A pass that only
creates has nothing to lose (the next pass recomputes its status from the
pods), so it writes status and children at once, one round trip less.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.models import TrainingJobStatus
from ludus.controller.expectations import Expectations
from ludus.runtime import metrics
from ludus.runtime.kube import ApiError, KubeClient, is_object_name
from ludus.trainingjob.reconcile import Plan

logger = logging.getLogger("ludus.controller")

JobKey = tuple[str, str]  # (namespace, name)


def status_dump(status: TrainingJobStatus) -> dict[str, Any]:
    """The status as written: camelCase JSON."""
    return status.model_dump(by_alias=True, mode="json")


# What the API server answers when it will not create a child as it is: forbidden (RBAC, quota, Pod
# Security admission), invalid (the spec or a webhook), bad request. Asking again at once changes nothing.
REFUSALS: Final = frozenset({400, 403, 422})


def refusal(err: BaseException, manifest: Mapping[str, Any]) -> str | None:
    """`err` as '<Kind> <name>: <the API server's words>', when it is a refusal."""
    return refused_child(err, str(manifest["kind"]), str(manifest["metadata"]["name"]))


def refused_child(err: BaseException, kind: str, name: str) -> str | None:
    """`err` as '<kind> <name>: <the API server's words>', when it is a refusal (of a create or a patch)."""
    if not isinstance(err, ApiError) or err.status not in REFUSALS:
        return None
    return f"{kind} {name}: {err.message}"[: c.MAX_EVENT_MESSAGE]


# A refused child is asked for again after this long, doubling with each refusal in a row up to the maximum.
REFUSED_RETRY_SECONDS: Final = 5.0
REFUSED_RETRY_MAX_SECONDS: Final = 300.0


def refused_retry_delay(tries: int) -> float:
    """Seconds until the next try after `tries` refusals in a row (never a hot loop)."""
    return float(min(REFUSED_RETRY_MAX_SECONDS, REFUSED_RETRY_SECONDS * 2 ** (tries - 1)))


# Seconds between tries to create a Workload once the API server said it serves none (Kueue absent).
KUEUE_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Executed:
    """How a plan went: a pod name still taken (retry shortly), a child the API server refused to create,
    a change to a child it refused."""

    taken: bool = False
    refused: str | None = None
    update_refused: str | None = None


class PlanExecutor:
    def __init__(self, client: KubeClient, expectations: Expectations) -> None:
        self.client = client
        self.expectations = expectations
        # When a Workload create last found no Workload API (None: it was served, or never tried).
        self.kueue_missing_at: float | None = None

    @property
    def kueue_served(self) -> bool:
        return self.kueue_missing_at is None

    async def execute(
        self,
        key: JobKey,
        body: Mapping[str, Any],
        status: dict[str, Any] | None,
        plan: Plan,
        now: datetime,
        on_written: Callable[[Mapping[str, Any]], None] = lambda _: None,
    ) -> Executed:
        """Carry out a plan, writing `status` (None: nothing to write; `on_written` gets the API
        server's response). A child the API server refuses is reported, not raised: the caller
        records it on the job and asks again later; other errors are raised for a retry."""
        meta = body["metadata"]

        async def write_status() -> None:
            assert status is not None
            response = await self.client.patch_job_status(key[0], key[1], meta["resourceVersion"], status)
            on_written(response)

        together = status is not None and not plan.delete and not plan.delete_job and not _restarts_moved(body, status)
        if status is not None and not together:
            await write_status()
        results: list[Any] = await asyncio.gather(
            *(self._create(key, manifest) for manifest in plan.create),
            *(self._delete(d.name, key[0], d.uid, d.reason) for d in plan.delete),
            *([write_status()] if together else []),
            return_exceptions=True,
        )
        uid = str(meta.get("uid", ""))
        workload_refused, update_refused = await self._queue(key, uid, plan)
        if plan.delete_job:
            await self.client.delete_job(key[0], key[1], uid)
        await self._record(key, body, plan, now)
        refused = [refusal(r, m) for r, m in zip(results, plan.create, strict=False)]
        errors = [r for i, r in enumerate(results)
                  if isinstance(r, BaseException) and not (i < len(refused) and refused[i])]
        if errors:
            raise errors[0]
        return Executed(taken=any(result is False for result in results[: len(plan.create)]),
                        refused=next((r for r in refused if r), workload_refused), update_refused=update_refused)

    async def _queue(self, key: JobKey, uid: str, plan: Plan) -> tuple[str | None, str | None]:
        """Kueue's part: the Workload first (a job is never started before it is asked for), then the
        job's suspension, then the Workload's status. Returns the API server's refusal of the Workload's
        create, or of a change (what follows a refusal waits for the next try); other errors are raised."""
        if plan.workload is not None:
            try:
                await self._create_workload(plan.workload)
            except ApiError as err:
                return _refused_or_raise(err, c.KUEUE_WORKLOAD_KIND, plan.workload["metadata"]["name"]), None
        try:
            if plan.queue_suspend is not None:
                await self.client.set_queue_suspension(key[0], key[1], uid, plan.queue_suspend)
        except ApiError as err:
            return None, _refused_or_raise(err, c.KIND, key[1])
        if plan.workload_change is not None:
            workload, pod_sets = plan.workload_change
            try:
                await self.client.change_workload(key[0], workload.name, workload.uid, workload.resource_version,
                                                  pod_sets)
            except ApiError as err:
                return None, _refused_or_raise(err, c.KUEUE_WORKLOAD_KIND, workload.name)
        if plan.workload_status is not None:
            workload, status = plan.workload_status
            try:
                await self.client.patch_workload_status(key[0], workload.name, workload.resource_version, status)
            except ApiError as err:
                return None, _refused_or_raise(err, c.KUEUE_WORKLOAD_KIND, workload.name)
        return None, None

    async def _create_workload(self, manifest: dict[str, Any]) -> None:
        now = time.monotonic()
        if self.kueue_missing_at is not None and now - self.kueue_missing_at < KUEUE_RETRY_SECONDS:
            return
        ref = manifest["spec"].get("priorityClassRef")
        if ref is not None and is_object_name(ref["name"]):
            value = await self.client.priority_value(ref["name"])
            if value is not None:
                manifest = {**manifest, "spec": {**manifest["spec"], "priority": value}}
        try:
            await self.client.create(manifest)
        except ApiError as err:
            if err.status != 404:
                raise
            self.kueue_missing_at = now
            return
        self.kueue_missing_at = None

    async def _record(self, key: JobKey, body: Mapping[str, Any], plan: Plan, now: datetime) -> None:
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        for event in plan.events:
            try:
                await self.client.post_event(body, event.type, event.reason, event.message, stamp)
            except ApiError as err:  # Events are best effort; the status already says it.
                logger.warning("could not record event %s on %s/%s: %s", event.reason, *key, err)

    async def _create(self, key: JobKey, manifest: dict[str, Any]) -> bool:
        """Create a child; False when a pod of that name already exists (ours, not yet seen, or a leftover).
        A PodGroup is applied instead: its minimum follows the job's size."""
        if manifest["kind"] == "PodGroup":
            await self.client.apply(manifest)
            return True
        created = await self.client.create(manifest)
        if manifest["kind"] != "Pod":
            return True
        if created:
            self.expectations.created(key, manifest["metadata"]["name"])
            metrics.PODS_CREATED.labels(role=manifest["metadata"]["labels"][c.LABEL_ROLE]).inc()
        return created

    async def _delete(self, name: str, namespace: str, uid: str, reason: str) -> None:
        if await self.client.delete_pod(namespace, name, uid):
            metrics.PODS_DELETED.labels(reason=reason).inc()


def _refused_or_raise(err: ApiError, kind: str, name: str) -> str:
    refused = refused_child(err, kind, name)
    if refused is None:
        raise err
    return refused


def _restarts_moved(body: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    return bool((body.get("status") or {}).get("restarts", 0) != status.get("restarts", 0))
