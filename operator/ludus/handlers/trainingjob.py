"""TrainingJob watch: keep the job index and queue a reconcile on every event.

`on.event` rather than on.create/on.update: those store progress and a copy
of the spec in annotations (extra PATCHes per job); a level-based reconcile
needs neither, and event handlers also fire for every object on (re)start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ludus.api import constants as c
from ludus.builders.workload import LABEL_JOB_UID
from ludus.controller import Controller


def slim_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the job index keeps: no managedFields, no annotations Kopf may add, of the owners only the
    controller (a Sweep or ContinuousTraining matches its children by it)."""
    meta = body.get("metadata") or {}
    kept = (
        "name", "namespace", "uid", "generation", "resourceVersion", "labels", "creationTimestamp", "deletionTimestamp",
    )
    controller = [{k: ref[k] for k in ("kind", "name", "uid", "controller") if k in ref}
                  for ref in meta.get("ownerReferences") or [] if ref.get("controller")][:1]
    return {
        "apiVersion": body.get("apiVersion", c.API_VERSION),
        "kind": body.get("kind", c.KIND),
        "metadata": {k: meta[k] for k in kept if k in meta}
        | {"annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(c.GROUP)}}
        | ({"ownerReferences": controller} if controller else {}),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def slim_owner(body: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """What the index of a resource owning jobs keeps (a Sweep, a ContinuousTraining): as `slim_job`."""
    return {**slim_job(body), "kind": kind}


@kopf.index(c.GROUP, c.VERSION, c.PLURAL, id="jobs")
async def jobs(
    *, namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): slim_job(body)}


@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, id="trainingjob-event")
async def trainingjob_event(
    *, type: str, namespace: str | None, name: str, uid: str, memo: Any, **kwargs: Any
) -> None:
    # Kopf passes each index by its id as a keyword argument: `jobs` here.
    controller: Controller = memo.controller
    controller.bind_jobs(kwargs["jobs"])
    controller.bind_workloads(kwargs["workloads"], kwargs["flavors"])
    key = (namespace or "", name)
    if type == "DELETED":
        controller.forget_job(key, uid)
        return
    controller.enqueue(key)


def slim_workload(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the Workload index keeps: the names, the queue, each pod set's count (not its template) and
    Kueue's status."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    counts = [{"name": p.get("name"), "count": p.get("count", 1)} for p in spec.get("podSets") or []
              if isinstance(p, Mapping)]
    return {
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "generation", "labels")
                     if k in meta},
        "spec": {"queueName": spec.get("queueName"), "podSets": counts},
        "status": dict(body.get("status") or {}),
    }


# Kueue's Workloads that Ludus made for queued jobs (none are watched where Kueue is not installed).
_OURS = {c.LABEL_JOB_NAME: kopf.PRESENT, LABEL_JOB_UID: kopf.PRESENT}


@kopf.index(c.KUEUE_GROUP, c.KUEUE_VERSION, "workloads", id="workloads", labels=_OURS)
async def workloads(
    *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", labels[c.LABEL_JOB_NAME]): slim_workload(body)}


@kopf.on.event(c.KUEUE_GROUP, c.KUEUE_VERSION, "workloads", id="workload-event", labels=_OURS)
async def workload_event(*, namespace: str | None, labels: Mapping[str, str], memo: Any, **kwargs: Any) -> None:
    """Kueue admitted, evicted or re-queued a job's Workload: the job's next pass acts on it."""
    controller: Controller = memo.controller
    controller.bind_workloads(kwargs["workloads"], kwargs["flavors"])
    controller.enqueue((namespace or "", labels[c.LABEL_JOB_NAME]))


def slim_flavor(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the ResourceFlavor index keeps: where the flavor's nodes are and what lets pods onto them."""
    spec = body.get("spec") or {}
    return {"metadata": {"name": (body.get("metadata") or {}).get("name")},
            "spec": {"nodeLabels": dict(spec.get("nodeLabels") or {}),
                     "tolerations": list(spec.get("tolerations") or [])}}


@kopf.index(c.KUEUE_GROUP, c.KUEUE_VERSION, "resourceflavors", id="flavors")
async def flavors(*, name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Kueue's ResourceFlavors (cluster-scoped), which an admission names: their node labels and tolerations
    go onto the pods of the pod sets admitted on them."""
    return {name: slim_flavor(body)}


@kopf.on.event(c.KUEUE_GROUP, c.KUEUE_VERSION, "resourceflavors", id="flavor-event")
async def flavor_event(*, memo: Any, **kwargs: Any) -> None:
    """A flavor appeared or changed: the queued jobs look again (one may wait for it to place its pods)."""
    controller: Controller = memo.controller
    controller.bind_workloads(kwargs["workloads"], kwargs["flavors"])
    for key in list(kwargs["workloads"]):
        controller.enqueue(key)
