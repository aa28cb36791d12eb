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
from ludus.controller import Controller


def slim_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the job index keeps: no managedFields, no annotations Kopf may add."""
    meta = body.get("metadata") or {}
    kept = (
        "name", "namespace", "uid", "generation", "resourceVersion", "labels", "creationTimestamp", "deletionTimestamp",
    )
    return {
        "apiVersion": body.get("apiVersion", c.API_VERSION),
        "kind": body.get("kind", c.KIND),
        "metadata": {k: meta[k] for k in kept if k in meta}
        | {"annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(c.GROUP)}},
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
    key = (namespace or "", name)
    if type == "DELETED":
        controller.forget_job(key, uid)
        return
    controller.enqueue(key)
