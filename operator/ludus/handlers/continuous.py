"""ContinuousTraining watch, and its runs': keep both indexes and queue a pass on every event."""

from __future__ import annotations

from typing import Any

import kopf

from ludus.api import constants as c
from ludus.controller.continuous import ContinuousController
from ludus.handlers.trainingjob import slim_job, slim_owner


@kopf.index(c.GROUP, c.VERSION, c.CT_PLURAL, id="continuous")
async def continuous(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], Any]:
    return {(namespace or "", name): slim_owner(body, c.CT_KIND)}


@kopf.index(c.GROUP, c.VERSION, c.PLURAL, id="runs", labels={c.LABEL_CT: kopf.PRESENT})
async def runs(*, namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
               ) -> dict[tuple[str, str], Any]:
    return {(namespace or "", labels[c.LABEL_CT]): slim_job(body)}


@kopf.on.event(c.GROUP, c.VERSION, c.CT_PLURAL, id="continuous-event")
async def continuous_event(*, type: str, namespace: str | None, name: str, uid: str, memo: Any,
                           **kwargs: Any) -> None:
    controller: ContinuousController = memo.continuous
    controller.bind(kwargs["continuous"], kwargs["runs"])
    key = (namespace or "", name)
    if type == "DELETED":
        controller.forget(key, uid)
        return
    controller.enqueue(key)


@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, id="run-event", labels={c.LABEL_CT: kopf.PRESENT})
async def run_event(*, namespace: str | None, labels: kopf.Labels, memo: Any, **kwargs: Any) -> None:
    controller: ContinuousController = memo.continuous
    controller.bind(kwargs["continuous"], kwargs["runs"])
    controller.enqueue((namespace or "", labels[c.LABEL_CT]))
