"""The controller's write batching: changes that can wait are held while a job's pods are still moving."""

from __future__ import annotations

import time

from ludus.api import constants as c
from ludus.controller import STATUS_BATCH_SECONDS, STATUS_MAX_HOLD_SECONDS, Controller
from ludus.plan import Plan
from tests.factories import make_job

KEY = ("team-a", "digits")


def _pending() -> tuple[dict, object]:
    job = make_job().workers(4).status(phase="Pending", workers="0/4", active=0, ready=0, observedGeneration=1)
    return job.body(), job.build().status


def test_a_count_only_change_right_after_a_write_is_held_back() -> None:
    controller = Controller()
    body, old = _pending()
    controller._written_at[body["metadata"]["uid"]] = time.monotonic()
    plan = Plan(status=old.model_copy(update={"active": 4, "ready": 2, "workers": "2/4"}))
    left = controller._defer_status(KEY, body, old, plan)
    assert left is not None and 0 < left <= STATUS_BATCH_SECONDS
    assert plan.status == old  # nothing to write now; the pass comes back in `left` seconds


def test_the_window_opens_when_the_job_is_first_seen() -> None:
    controller = Controller()
    body, old = _pending()
    plan = Plan(status=old.model_copy(update={"active": 4}))
    assert controller._defer_status(KEY, body, old, plan) is not None and plan.status.active == 0


def test_a_phase_change_goes_out_at_once() -> None:
    controller = Controller()
    body, old = _pending()
    running = old.model_copy(update={"phase": c.PHASE_RUNNING, "ready": 4, "workers": "4/4"})
    plan = Plan(status=running)
    assert controller._defer_status(KEY, body, old, plan) is None and plan.status == running


def test_counts_go_out_once_the_window_has_passed() -> None:
    controller = Controller()
    body, old = _pending()
    controller._written_at[body["metadata"]["uid"]] = time.monotonic() - STATUS_BATCH_SECONDS
    plan = Plan(status=old.model_copy(update={"active": 4}))
    assert controller._defer_status(KEY, body, old, plan) is None and plan.status.active == 4


def test_a_zero_window_writes_everything_at_once() -> None:
    controller = Controller(status_batch_seconds=0)
    body, old = _pending()
    plan = Plan(status=old.model_copy(update={"active": 4}))
    assert controller._defer_status(KEY, body, old, plan) is None and plan.status.active == 4


def test_a_pod_event_restarts_the_quiet_period() -> None:
    controller = Controller()
    body, old = _pending()
    controller._written_at[body["metadata"]["uid"]] = time.monotonic() - STATUS_BATCH_SECONDS - 1
    controller._pod_changed(KEY, "digits-worker-3")  # a pod moved just now: the job is still settling
    plan = Plan(status=old.model_copy(update={"active": 4}))
    left = controller._defer_status(KEY, body, old, plan)
    assert left is not None and STATUS_BATCH_SECONDS - 1 < left <= STATUS_BATCH_SECONDS and plan.status.active == 0


def test_busy_pods_never_hold_a_change_past_the_cap() -> None:
    controller = Controller()
    body, old = _pending()
    controller._written_at[body["metadata"]["uid"]] = time.monotonic() - STATUS_MAX_HOLD_SECONDS
    controller._pod_changed(KEY, "digits-worker-3")
    plan = Plan(status=old.model_copy(update={"active": 4}))
    assert controller._defer_status(KEY, body, old, plan) is None and plan.status.active == 4


def test_the_cap_shortens_the_quiet_period_it_would_overrun() -> None:
    controller = Controller()
    body, old = _pending()
    controller._written_at[body["metadata"]["uid"]] = time.monotonic() - STATUS_MAX_HOLD_SECONDS + 1
    controller._pod_changed(KEY, "digits-worker-3")
    plan = Plan(status=old.model_copy(update={"active": 4}))
    left = controller._defer_status(KEY, body, old, plan)
    assert left is not None and 0 < left <= 1
