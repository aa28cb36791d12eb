"""The ContinuousTraining loop: each pass reads what the plan needs, asks `ludus.continuous.reconcile`
and carries the plan out (the loop itself is `owner`'s)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining, ContinuousTrainingStatus
from ludus.api.models import TrainingJob, parse_stored, read_status
from ludus.continuous.reconcile import CTPlan, Observed, reconcile_continuous
from ludus.continuous.status import invalid_status
from ludus.controller.owner import OwnerController, OwnerKey, invalid_message
from ludus.runtime import metrics
from ludus.runtime.kube import ApiError, UnsafeName, config_map_path, pod_path
from ludus.trainingjob.child import controller_uid
from ludus.trainingjob.tracking import with_default_tracker

# While a model is being published the pass looks at its pod this often (there is no pod watch for it).
PUBLISH_POLL_SECONDS: Final = 1.0
# A data version in a ConfigMap is read this often (a GET by name; no watch over every ConfigMap).
DATA_POLL_SECONDS: Final = 10.0


def _dump(status: ContinuousTrainingStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


class ContinuousController(OwnerController):
    kind = c.CT_KIND
    plural = c.CT_PLURAL
    handler = "continuous"
    tracking_uri = ""  # the operator's default MLflow server (--tracking-uri), for the publish and record pods

    async def sync(self, key: OwnerKey) -> None:
        body = self.owner_body(key)
        if body is None:
            return
        now = self.now()
        try:
            ct = parse_stored(ContinuousTraining, body)
            template = with_default_tracker(ct.spec.template, self.tracking_uri)
            ct = ct.model_copy(update={"spec": ct.spec.model_copy(update={"template": template})})
        except ValidationError as err:
            await self._invalid(body, invalid_message(err), now)
            return
        observed = await self._observe(ct)
        # Publish pods while a publication is in flight; record pods (rejections tagged in MLflow) with tracking.
        listing = ct.status.publishing is not None or ct.spec.template.tracking is not None
        pods = await self._publish_pods(ct) if listing else []
        jobs = self.child_jobs(key, ct.metadata.uid)
        plan = reconcile_continuous(ct, jobs, pods, observed, now)
        await self._execute(key, body, ct, jobs, pods, plan, now)
        waits = [w for w in (plan.requeue_after,
                             PUBLISH_POLL_SECONDS if plan.status.publishing is not None or plan.recording else None,
                             DATA_POLL_SECONDS if ct.spec.data_version is not None else None) if w is not None]
        if waits:
            self.queue.add_after(key, min(waits))

    async def _observe(self, ct: ContinuousTraining) -> Observed:
        """The data version in the referenced ConfigMap key, or why it cannot be read."""
        source = ct.spec.data_version
        if source is None:
            return Observed()
        assert self.client is not None
        try:
            config_map = await self.client.request("GET", config_map_path(ct.metadata.namespace,
                                                                         source.config_map_name))
        except UnsafeName:
            return Observed(data_error=f"spec.dataVersion.configMapName {source.config_map_name!r} is not a "
                            "ConfigMap name")
        except ApiError as err:
            if err.status in (403, 404):
                why = "it does not exist" if err.status == 404 else "the operator may not read it (RBAC)"
                return Observed(data_error=f"ConfigMap {source.config_map_name} (spec.dataVersion.configMapName) "
                                f"cannot be read: {why}")
            raise
        value = (config_map.get("data") or {}).get(source.key)
        if value is None:
            return Observed(data_error=f"ConfigMap {source.config_map_name} has no key {source.key!r} "
                            "(spec.dataVersion.key): add it, or point the key at the one holding the data version")
        return Observed(data_version=str(value).strip()[:253])

    async def _publish_pods(self, ct: ContinuousTraining) -> list[Mapping[str, Any]]:
        assert self.client is not None
        selector = f"{c.LABEL_CT}={ct.metadata.name},{c.LABEL_PUBLISH}"
        listed = await self.client.request("GET", pod_path(ct.metadata.namespace), params={"labelSelector": selector})
        return [pod for pod in listed.get("items") or [] if controller_uid(pod) == ct.metadata.uid]

    async def _invalid(self, body: Mapping[str, Any], message: str, now: datetime) -> None:
        """A spec the schema let through but the model refuses (a cron, a time zone): Valid False naming the
        field (and Failed, for one that never ran) until the spec is fixed; no run starts or stops
        meanwhile, and the Event is said once."""
        old = read_status(body.get("status"), ContinuousTrainingStatus)
        status = invalid_status(old, message, int(body["metadata"].get("generation") or 0), now)
        if _dump(status) == _dump(old):
            return
        await self.write_status(body, _dump(status))
        await self.event(body, "Warning", c.REASON_INVALID_SPEC, message, now)

    async def _execute(self, key: OwnerKey, body: Mapping[str, Any], ct: ContinuousTraining,
                       jobs: Sequence[TrainingJob], pods: Sequence[Mapping[str, Any]], plan: CTPlan,
                       now: datetime) -> None:
        assert self.client is not None
        namespace = key[0]
        for manifest in plan.create:
            await self.client.create(manifest)
            if manifest["kind"] == c.KIND:
                self.created(key, manifest)
        if _dump(plan.status) != _dump(ct.status):
            await self.write_status(body, _dump(plan.status))
        uids = {j.metadata.name: j.metadata.uid for j in jobs}
        for name in plan.delete_runs:
            self.uncreate(key, name)
            if uids.get(name):
                await self.client.delete_job(namespace, name, uids[name])
        pod_uids = {str(p["metadata"]["name"]): str(p["metadata"].get("uid", "")) for p in pods}
        for name in plan.delete_pods:
            await self.client.delete_pod(namespace, name, pod_uids.get(name, ""))
        for trigger in plan.started:
            metrics.CT_RUNS_STARTED.labels(namespace=namespace, trigger=trigger).inc()
        for result, reason in plan.decisions:
            metrics.CT_DECISIONS.labels(namespace=namespace, result=result, reason=reason).inc()
        metrics.observe_continuous(namespace, ct.metadata.name, plan.status)
        for type_, reason, message in plan.events:
            await self.event(body, type_, reason, message, now)
