"""The Sweep loop: each pass asks `ludus.sweep.reconcile` and carries it out (the loop is `owner`'s)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.models import parse_stored
from ludus.api.sweep import Sweep, SweepStatus
from ludus.controller.owner import OwnerController, OwnerKey, invalid_message
from ludus.runtime import metrics
from ludus.sweep.reconcile import SweepPlan, reconcile_sweep
from ludus.sweep.status import invalid_status

SweepKey = OwnerKey


def _dump(status: SweepStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


class SweepController(OwnerController):
    kind = c.SWEEP_KIND
    plural = c.SWEEP_PLURAL
    handler = "sweep"

    async def sync(self, key: SweepKey) -> None:
        body = self.owner_body(key)
        if body is None:
            return
        now = self.now()
        try:
            sweep = parse_stored(Sweep, body)
        except ValidationError as err:
            await self._invalid(body, invalid_message(err), now)
            return
        plan = reconcile_sweep(sweep, self.child_jobs(key, sweep.metadata.uid), now)
        await self._execute(key, body, sweep, plan, now)

    async def _invalid(self, body: Mapping[str, Any], message: str, now: datetime) -> None:
        """A spec the schema let through but the model refuses: Failed, naming the field, once."""
        try:
            old = SweepStatus.model_validate(body.get("status") or {})
        except ValidationError:
            old = SweepStatus()
        if old.phase == c.PHASE_FAILED:
            return
        status = invalid_status(old, message, now)
        await self.write_status(body, _dump(status))
        await self.event(body, "Warning", c.REASON_INVALID_SPEC, message, now)

    async def _execute(self, key: SweepKey, body: Mapping[str, Any], sweep: Sweep, plan: SweepPlan,
                       now: datetime) -> None:
        assert self.client is not None
        namespace = key[0]
        for job, announce in zip(plan.create, plan.announce, strict=True):
            if await self.client.create(job):
                metrics.SWEEP_TRIALS_CREATED.labels(namespace=namespace).inc()
                await self.event(body, "Normal", c.SWEEP_REASON_TRIAL_CREATED, announce, now)
            self.created(key, job)
        for name in plan.stop:
            await self.patch_job(namespace, name, {
                "metadata": {"annotations": {c.ANNOTATION_STOPPED_EARLY: "true"}}, "spec": {"suspend": True}})
        for name in plan.suspend:
            await self.patch_job(namespace, name, {"spec": {"suspend": True}})
        for name in plan.resume:
            await self.patch_job(namespace, name, {"spec": {"suspend": False}})
        if _dump(plan.status) != _dump(sweep.status):
            await self.write_status(body, _dump(plan.status))
        metrics.observe_sweep(namespace, sweep.metadata.name, plan.status)
        for type_, reason, message in plan.events:
            await self.event(body, type_, reason, message, now)
