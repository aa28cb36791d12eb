"""Sweep watch, and its trials': keep both indexes and queue a pass of the sweep on every event."""

from __future__ import annotations

from typing import Any

import kopf

from ludus.api import constants as c
from ludus.controller.sweep import SweepController
from ludus.handlers.trainingjob import slim_job, slim_owner


@kopf.index(c.GROUP, c.VERSION, c.SWEEP_PLURAL, id="sweeps")
async def sweeps(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], Any]:
    return {(namespace or "", name): slim_owner(body, c.SWEEP_KIND)}


@kopf.index(c.GROUP, c.VERSION, c.PLURAL, id="trials", labels={c.LABEL_SWEEP: kopf.PRESENT})
async def trials(*, namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
                 ) -> dict[tuple[str, str], Any]:
    return {(namespace or "", labels[c.LABEL_SWEEP]): slim_job(body)}


@kopf.on.event(c.GROUP, c.VERSION, c.SWEEP_PLURAL, id="sweep-event")
async def sweep_event(*, type: str, namespace: str | None, name: str, uid: str, memo: Any, **kwargs: Any) -> None:
    controller: SweepController = memo.sweep
    controller.bind(kwargs["sweeps"], kwargs["trials"])
    key = (namespace or "", name)
    if type == "DELETED":
        controller.forget(key, uid)
        return
    controller.enqueue(key)


@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, id="trial-event", labels={c.LABEL_SWEEP: kopf.PRESENT})
async def trial_event(*, namespace: str | None, labels: kopf.Labels, memo: Any, **kwargs: Any) -> None:
    controller: SweepController = memo.sweep
    controller.bind(kwargs["sweeps"], kwargs["trials"])
    controller.enqueue((namespace or "", labels[c.LABEL_SWEEP]))
