"""The controller's write throttle: pod counts alone wait, everything else is written at once."""

from __future__ import annotations

import time

from ludus.api import constants as c
from ludus.controller import COUNTS_WRITE_INTERVAL_SECONDS, Controller
from ludus.plan import Plan
from tests.factories import make_job


def _pending() -> tuple[dict, object]:
    job = make_job().workers(4).status(phase="Pending", workers="0/4", active=0, ready=0)
    return job.body(), job.build().status


def test_a_count_only_change_right_after_a_write_is_held_back() -> None:
    controller = Controller()
    body, old = _pending()
    controller._written_at[body["metadata"]["uid"]] = time.monotonic()
    plan = Plan(status=old.model_copy(update={"active": 4, "ready": 2, "workers": "2/4"}))
    left = controller._defer_counts(body, old, plan)
    assert left is not None and 0 < left <= COUNTS_WRITE_INTERVAL_SECONDS
    assert plan.status == old  # nothing to write now; the pass comes back in `left` seconds


def test_a_phase_change_or_a_first_write_goes_out_at_once() -> None:
    controller = Controller()
    body, old = _pending()
    running = old.model_copy(update={"phase": c.PHASE_RUNNING, "ready": 4, "workers": "4/4"})
    assert controller._defer_counts(body, old, Plan(status=running)) is None  # never written before

    controller._written_at[body["metadata"]["uid"]] = time.monotonic()
    plan = Plan(status=running)
    assert controller._defer_counts(body, old, plan) is None and plan.status == running


def test_counts_go_out_once_the_interval_has_passed() -> None:
    controller = Controller()
    body, old = _pending()
    controller._written_at[body["metadata"]["uid"]] = time.monotonic() - COUNTS_WRITE_INTERVAL_SECONDS
    plan = Plan(status=old.model_copy(update={"active": 4}))
    assert controller._defer_counts(body, old, plan) is None and plan.status.active == 4
