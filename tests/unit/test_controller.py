"""The controller's write batching: changes that can wait are held while a job's window is open."""

from __future__ import annotations

import time

from ludus.api import constants as c
from ludus.controller import STATUS_BATCH_SECONDS, Controller
from ludus.plan import Plan
from tests.factories import make_job


def _pending() -> tuple[dict, object]:
    job = make_job().workers(4).status(phase="Pending", workers="0/4", active=0, ready=0, observedGeneration=1)
    return job.body(), job.build().status


def test_a_count_only_change_right_after_a_write_is_held_back() -> None:
    controller = Controller()
    body, old = _pending()
    controller._written_at[body["metadata"]["uid"]] = time.monotonic()
    plan = Plan(status=old.model_copy(update={"active": 4, "ready": 2, "workers": "2/4"}))
    left = controller._defer_status(body, old, plan)
    assert left is not None and 0 < left <= STATUS_BATCH_SECONDS
    assert plan.status == old  # nothing to write now; the pass comes back in `left` seconds


def test_the_window_opens_when_the_job_is_first_seen() -> None:
    controller = Controller()
    body, old = _pending()
    plan = Plan(status=old.model_copy(update={"active": 4}))
    assert controller._defer_status(body, old, plan) is not None and plan.status.active == 0


def test_a_phase_change_goes_out_at_once() -> None:
    controller = Controller()
    body, old = _pending()
    running = old.model_copy(update={"phase": c.PHASE_RUNNING, "ready": 4, "workers": "4/4"})
    plan = Plan(status=running)
    assert controller._defer_status(body, old, plan) is None and plan.status == running


def test_counts_go_out_once_the_window_has_passed() -> None:
    controller = Controller()
    body, old = _pending()
    controller._written_at[body["metadata"]["uid"]] = time.monotonic() - STATUS_BATCH_SECONDS
    plan = Plan(status=old.model_copy(update={"active": 4}))
    assert controller._defer_status(body, old, plan) is None and plan.status.active == 4


def test_a_zero_window_writes_everything_at_once() -> None:
    controller = Controller(status_batch_seconds=0)
    body, old = _pending()
    plan = Plan(status=old.model_copy(update={"active": 4}))
    assert controller._defer_status(body, old, plan) is None and plan.status.active == 4
