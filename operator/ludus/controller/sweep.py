"""The Sweep loop: each pass asks `ludus.sweep.reconcile` and carries it out (the loop is `owner`'s)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.models import parse_stored
from ludus.api.sweep import Sweep, SweepStatus
from ludus.controller.apply import refusal, refused_retry_delay
from ludus.controller.owner import OwnerController, OwnerKey, invalid_message
from ludus.runtime import metrics
from ludus.runtime.kube import ApiError
from ludus.sweep.reconcile import SweepPlan, reconcile_sweep
from ludus.sweep.status import created_condition, invalid_status

SweepKey = OwnerKey


def _dump(status: SweepStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


class SweepController(OwnerController):
    kind = c.SWEEP_KIND
    plural = c.SWEEP_PLURAL
    handler = "sweep"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusals: dict[SweepKey, int] = {}  # refusals in a row, by sweep

    async def sync(self, key: SweepKey) -> float | None:
        body = self.owner_body(key)
        if body is None:
            return None
        now = self.now()
        try:
            sweep = parse_stored(Sweep, body)
        except ValidationError as err:
            await self._invalid(body, invalid_message(err), now)
            return None
        plan = reconcile_sweep(sweep, self.child_jobs(key, sweep.metadata.uid), now)
        refused = await self._execute(key, body, sweep, plan, now)
        if refused is None:
            self._refusals.pop(key, None)
            return None
        tries = self._refusals[key] = self._refusals.get(key, 0) + 1
        return refused_retry_delay(tries)

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
                       now: datetime) -> str | None:
        """Carry out the plan; returns the API server's refusal of a trial, if it refused one (the sweep
        says so in its Created condition, with one Event, and asks again later)."""
        assert self.client is not None
        namespace = key[0]
        refused = None
        for job, announce in zip(plan.create, plan.announce, strict=True):
            try:
                created = await self.client.create(job)
            except ApiError as err:
                refused = refusal(err, job)
                if refused is None:
                    raise
                break
            if created:
                metrics.SWEEP_TRIALS_CREATED.labels(namespace=namespace).inc()
                await self.event(body, "Normal", c.SWEEP_REASON_TRIAL_CREATED, announce, now)
            self.created(key, job)
        if plan.create:
            plan.status, said = created_condition(plan.status, refused, now)
            if refused is not None and not said:
                plan.events.append(("Warning", c.REASON_CREATE_REFUSED, refused))
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
        return refused
