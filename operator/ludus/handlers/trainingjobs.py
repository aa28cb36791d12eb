"""TrainingJob watch: keep the job index and queue a reconcile on every event.

`on.event` rather than on.create/on.update: those store progress and a copy
of the spec in annotations (extra PATCHes per job); a level-based reconcile
needs neither, and event handlers also fire for every object on (re)start.
"""

from __future__ import annotations

from typing import Any

import kopf

from ludus.api import constants as c
from ludus.controller import Controller, slim_job


@kopf.index(c.GROUP, c.VERSION, c.PLURAL, id="jobs")
async def jobs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace, name): slim_job(body)}


@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, id="trainingjob-event")
async def trainingjob_event(
    type: str,
    namespace: str,
    name: str,
    uid: str,
    memo: kopf.Memo,
    jobs: kopf.Index[tuple[str, str], dict[str, Any]],
    **_: Any,
) -> None:
    controller: Controller = memo.controller
    controller.bind_jobs(jobs)
    if type == "DELETED":
        controller.forget_job((namespace, name), uid)
        return
    controller.enqueue((namespace, name))
