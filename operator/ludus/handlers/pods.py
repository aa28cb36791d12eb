"""Pod watch: index our pods by job and queue the owning job's reconcile."""

from __future__ import annotations

import time
from typing import Any

import kopf

from ludus import metrics
from ludus.api import constants as c
from ludus.controller import Controller
from ludus.observe import PodObservation, observe_pod

_OURS = {c.LABEL_JOB_NAME: kopf.PRESENT, c.LABEL_MANAGED_BY: c.MANAGED_BY}


@kopf.index("", "v1", "pods", labels=_OURS, id="pods")
async def pods(
    namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], PodObservation]:
    return {(namespace, labels[c.LABEL_JOB_NAME]): observe_pod(body)}


@kopf.on.event("", "v1", "pods", labels=_OURS, id="pod-event")
async def pod_event(
    namespace: str,
    name: str,
    labels: kopf.Labels,
    memo: kopf.Memo,
    jobs: kopf.Index[tuple[str, str], dict[str, Any]],
    pods: kopf.Index[tuple[str, str], PodObservation],
    **_: Any,
) -> None:
    metrics.LAST_WATCH_EVENT.set(time.time())
    controller: Controller = memo.controller
    controller.bind_indexes(jobs, pods)
    key = (namespace, labels[c.LABEL_JOB_NAME])
    controller.observed_pod(key, name)
    controller.enqueue(key)
