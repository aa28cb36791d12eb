"""The Sweep loop: each pass asks `ludus.sweep.reconcile` and carries it out (the loop is `owner`'s)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.conditions import CREATED, UPDATED
from ludus.api.models import parse_stored, read_status
from ludus.api.sweep import Sweep, SweepStatus
from ludus.controller.apply import refusal, refused_child, refused_retry_delay
from ludus.controller.owner import OwnerController, OwnerKey, invalid_message
from ludus.runtime import metrics
from ludus.runtime.kube import ApiError, pod_path
from ludus.sweep.reconcile import SweepPlan, reconcile_sweep
from ludus.sweep.records import tracks
from ludus.sweep.status import invalid_status, refusal_status
from ludus.trainingjob.child import controller_uid
from ludus.trainingjob.tracking import with_default_tracker

SweepKey = OwnerKey
RECORD_POLL_SECONDS: Final = 2.0  # how soon a sweep looks again at a record pod that still runs


def _dump(status: SweepStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


class SweepController(OwnerController):
    kind = c.SWEEP_KIND
    plural = c.SWEEP_PLURAL
    handler = "sweep"

    tracking_uri = ""  # the operator's default MLflow server (--tracking-uri), for the record pods

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
            template = with_default_tracker(sweep.spec.template, self.tracking_uri)
            sweep = sweep.model_copy(update={"spec": sweep.spec.model_copy(update={"template": template})})
        except ValidationError as err:
            await self._invalid(body, invalid_message(err), now)
            return None
        # Record pods exist only once a trial was stopped early (and the template tracks).
        listing = tracks(sweep) and any(t.stopped_early for t in sweep.status.trials)
        pods = await self._record_pods(sweep) if listing else []
        plan = reconcile_sweep(sweep, self.child_jobs(key, sweep.metadata.uid), now, pods)
        refused = await self._execute(key, body, sweep, plan, now, pods)
        if not refused:
            self._refusals.pop(key, None)
            return RECORD_POLL_SECONDS if plan.recording or plan.record else None
        tries = self._refusals[key] = self._refusals.get(key, 0) + 1
        return refused_retry_delay(tries)

    async def _invalid(self, body: Mapping[str, Any], message: str, now: datetime) -> None:
        """A spec the schema let through but the model refuses: Failed naming the field, or, for a sweep
        that started, SpecValid False (its trials run on untouched); said once."""
        old = read_status(body.get("status"), SweepStatus)
        if old.phase == c.PHASE_FAILED:
            return
        status = invalid_status(old, message, now)
        if _dump(status) == _dump(old):
            return
        await self.write_status(body, _dump(status))
        await self.event(body, "Warning", c.REASON_INVALID_SPEC, message, now)

    async def _record_pods(self, sweep: Sweep) -> list[Mapping[str, Any]]:
        assert self.client is not None
        selector = f"{c.LABEL_SWEEP}={sweep.metadata.name},{c.LABEL_RECORD}"
        listed = await self.client.request("GET", pod_path(sweep.metadata.namespace),
                                           params={"labelSelector": selector})
        return [pod for pod in listed.get("items") or [] if controller_uid(pod) == sweep.metadata.uid]

    async def _create_records(self, body: Mapping[str, Any], plan: SweepPlan, now: datetime) -> None:
        """The stopped trials' record pods, before the stops; one refused (a quota, Pod Security) is said in a
        Warning and the stop goes on: the run stays RUNNING in MLflow, nothing else is lost."""
        assert self.client is not None
        for pod in plan.record:
            try:
                await self.client.create(pod)
            except ApiError as err:
                refused = refusal(err, pod)
                if refused is None:
                    raise
                await self.event(body, "Warning", c.SWEEP_REASON_TRACKER_NOT_UPDATED, refused, now)

    async def _execute(self, key: SweepKey, body: Mapping[str, Any], sweep: Sweep, plan: SweepPlan,
                       now: datetime, pods: Sequence[Mapping[str, Any]] = ()) -> bool:
        """Carry out the plan; returns whether the API server refused a trial's create or a change to a
        trial (the sweep says so in its Created or ChildrenUpdated condition, with one Event, and asks
        again later)."""
        refused = await self._create_trials(key, body, plan, now)
        if plan.create:
            plan.status, said = refusal_status(plan.status, CREATED, refused, now)
            if refused is not None and not said:
                plan.events.append(("Warning", c.REASON_CREATE_REFUSED, refused))
        await self._create_records(body, plan, now)
        update_refused = await self._change_trials(key[0], plan)
        uids = {str(p["metadata"]["name"]): str(p["metadata"].get("uid", "")) for p in pods}
        assert self.client is not None
        for name in plan.delete_pods:
            await self.client.delete_pod(key[0], name, uids.get(name, ""))
        # No change left refused (made, or no longer wanted): ChildrenUpdated goes True again.
        plan.status, said = refusal_status(plan.status, UPDATED, update_refused, now)
        if update_refused is not None and not said:
            plan.events.append(("Warning", c.REASON_UPDATE_REFUSED, update_refused))
        if _dump(plan.status) != _dump(sweep.status):
            await self.write_status(body, _dump(plan.status))
        metrics.observe_sweep(key[0], sweep.metadata.name, plan.status)
        for type_, reason, message in plan.events:
            await self.event(body, type_, reason, message, now)
        return refused is not None or update_refused is not None

    async def _create_trials(self, key: SweepKey, body: Mapping[str, Any], plan: SweepPlan, now: datetime
                             ) -> str | None:
        """Create the plan's trials in order, up to the first the API server refuses (returned)."""
        assert self.client is not None
        for job, announce in zip(plan.create, plan.announce, strict=True):
            try:
                created = await self.client.create(job)
            except ApiError as err:
                refused = refusal(err, job)
                if refused is None:
                    raise
                return refused
            if created:
                metrics.SWEEP_TRIALS_CREATED.labels(namespace=key[0]).inc()
                await self.event(body, "Normal", c.SWEEP_REASON_TRIAL_CREATED, announce, now)
            self.created(key, job)
        return None

    async def _change_trials(self, namespace: str, plan: SweepPlan) -> str | None:
        """Stop, suspend and resume trials as planned; returns the API server's first refusal (the others
        are still tried: one refused trial does not hold the rest)."""
        stopped = {"metadata": {"annotations": {c.ANNOTATION_STOPPED_EARLY: "true"}}, "spec": {"suspend": True}}
        changes = [(name, stopped) for name in plan.stop]
        changes += [(name, {"spec": {"suspend": True}}) for name in plan.suspend]
        changes += [(name, {"spec": {"suspend": False}}) for name in plan.resume]
        first = None
        for name, patch in changes:
            try:
                await self.patch_job(namespace, name, patch)
            except ApiError as err:
                refused = refused_child(err, c.KIND, name)
                if refused is None:
                    raise
                first = first or refused
        return first
