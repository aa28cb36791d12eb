"""Write batching: changes that can wait are held while a job's pods are still moving (a fake clock)."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.controller.batching import STATUS_BATCH_SECONDS, STATUS_MAX_HOLD_SECONDS, StatusBatcher
from tests.factories import make_job

KEY = ("team-a", "digits")
UID = "uid-digits"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pending() -> dict:
    job = make_job().workers(4).status(phase="Pending", workers="0/4", active=0, ready=0, observedGeneration=1)
    return job.build().status.model_dump(by_alias=True, mode="json")


def _batcher(**kwargs: float) -> tuple[StatusBatcher, Clock]:
    clock = Clock()
    return StatusBatcher(clock=clock, **kwargs), clock


def test_a_count_only_change_right_after_a_write_is_held_back() -> None:
    batcher, _ = _batcher()
    batcher.written(UID)
    old = _pending()
    hold = batcher.decide(KEY, UID, old, {**old, "active": 4, "ready": 2, "workers": "2/4"})
    assert hold is not None and 0 < hold.seconds <= STATUS_BATCH_SECONDS  # the pass comes back then


def test_the_window_opens_when_the_job_is_first_seen() -> None:
    batcher, _ = _batcher()
    old = _pending()
    assert batcher.decide(KEY, UID, old, {**old, "active": 4}) is not None


def test_a_phase_change_goes_out_at_once() -> None:
    batcher, _ = _batcher()
    old = _pending()
    assert batcher.decide(KEY, UID, old, {**old, "phase": c.PHASE_RUNNING, "ready": 4, "workers": "4/4"}) is None


def test_counts_go_out_once_the_window_has_passed() -> None:
    batcher, clock = _batcher()
    batcher.written(UID)
    clock.now += STATUS_BATCH_SECONDS
    old = _pending()
    assert batcher.decide(KEY, UID, old, {**old, "active": 4}) is None


def test_a_zero_window_writes_everything_at_once() -> None:
    batcher, _ = _batcher(batch_seconds=0)
    old = _pending()
    assert batcher.decide(KEY, UID, old, {**old, "active": 4}) is None


def test_a_pod_event_restarts_the_quiet_period() -> None:
    batcher, clock = _batcher()
    batcher.written(UID)
    clock.now += STATUS_BATCH_SECONDS + 1
    batcher.pod_changed(KEY)  # a pod moved just now: the job is still settling
    old = _pending()
    hold = batcher.decide(KEY, UID, old, {**old, "active": 4})
    assert hold is not None and STATUS_BATCH_SECONDS - 1 < hold.seconds <= STATUS_BATCH_SECONDS


def test_busy_pods_never_hold_a_change_past_the_cap() -> None:
    batcher, clock = _batcher()
    batcher.written(UID)
    clock.now += STATUS_MAX_HOLD_SECONDS
    batcher.pod_changed(KEY)
    old = _pending()
    assert batcher.decide(KEY, UID, old, {**old, "active": 4}) is None


def test_the_cap_shortens_the_quiet_period_it_would_overrun() -> None:
    batcher, clock = _batcher()
    batcher.written(UID)
    clock.now += STATUS_MAX_HOLD_SECONDS - 1
    batcher.pod_changed(KEY)
    old = _pending()
    hold = batcher.decide(KEY, UID, old, {**old, "active": 4})
    assert hold is not None and 0 < hold.seconds <= 1


def test_a_forgotten_job_starts_a_fresh_window() -> None:
    batcher, clock = _batcher()
    batcher.written(UID)
    clock.now += STATUS_MAX_HOLD_SECONDS * 2
    batcher.forget(KEY, UID)
    old = _pending()
    assert batcher.decide(KEY, UID, old, {**old, "active": 4}) is not None


def _running() -> dict:
    job = make_job().workers(2).status(phase="Running", workers="2/2", active=2, ready=2, observedGeneration=1,
                                       progress={"step": 10})
    return job.build().status.model_dump(by_alias=True, mode="json")


def test_progress_alone_waits_for_the_progress_interval_since_the_last_write() -> None:
    batcher, clock = _batcher(progress_interval=30.0)
    batcher.written(UID)
    old = _running()
    moved = {**old, "progress": {**old["progress"], "step": 20}, "goodput": {"fraction": 0.5}}
    clock.now += 10
    hold = batcher.decide(KEY, UID, old, moved)
    assert hold is not None and hold.seconds == 20.0  # longer than the count window: progress has its own
    clock.now += 20
    assert batcher.decide(KEY, UID, old, moved) is None
    batcher.written(UID)
    clock.now += 29
    assert batcher.decide(KEY, UID, old, {**old, "progress": {**old["progress"], "step": 30}}) is not None


def test_progress_rides_along_with_any_other_change() -> None:
    batcher, clock = _batcher(progress_interval=30.0)
    batcher.written(UID)
    old = _running()
    clock.now += 1
    # A phase change goes out at once, and the write carries the step that moved with it.
    finished = {**old, "phase": c.PHASE_SUCCEEDED, "progress": {**old["progress"], "step": 20}}
    assert batcher.decide(KEY, UID, old, finished) is None
