"""Goodput in status: where a job's wall time went, accounted from the operator's and the trainer's sides."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from ludus.api import constants as c
from ludus.trainingjob.goodput import CATEGORIES
from ludus.trainingjob.progress import ProgressSample, Unavailable, advance
from ludus.trainingjob.reconcile import reconcile
from tests.factories import T0, make_job, pod, running, store


def _sample(step: int, at: int, *, start: int = 0, source: str = "w0-a", train: float = 0.0,
            startup: float = 0.0, previous: ProgressSample | None = None) -> ProgressSample:
    current = ProgressSample(step=step, total_steps=300, start_step=start, source=source,
                             phases={"startup": startup, "rendezvous": 1.0, "train": train, "checkpoint": 0.5})
    return advance(previous, current, T0 + timedelta(seconds=at))


def _sums_to_one(goodput) -> None:  # type: ignore[no-untyped-def]
    assert set(goodput.badput) == set(CATEGORIES)
    total = goodput.fraction + sum(b.fraction for b in goodput.badput.values())
    assert total == pytest.approx(1.0, abs=0.01)
    seconds = goodput.productive_seconds + sum(b.seconds for b in goodput.badput.values())
    assert seconds == pytest.approx(goodput.wall_seconds, abs=0.5)


def _pending_job():  # type: ignore[no-untyped-def]
    return make_job().workers(2).status(phase="Pending", startTime=T0.isoformat(), observedGeneration=1).build()


def test_queued_time_is_counted_when_the_job_first_runs_and_nothing_is_said_before() -> None:
    job = _pending_job()
    waiting = reconcile(job, [store("digits")], T0 + timedelta(seconds=3))
    assert waiting.status.goodput is None
    ran = reconcile(job, running("digits", 2), T0 + timedelta(seconds=7))
    assert ran.status.phase == c.PHASE_RUNNING and ran.status.goodput is not None
    assert ran.status.goodput.queued_seconds == 7.0
    assert ran.status.goodput.badput["queued"].fraction == 1.0
    _sums_to_one(ran.status.goodput)


def test_goodput_moves_with_the_progress_only() -> None:
    job = _pending_job()
    ran = reconcile(job, running("digits", 2), T0 + timedelta(seconds=7))
    job = job.model_copy(update={"status": ran.status})
    quiet = reconcile(job, running("digits", 2), T0 + timedelta(seconds=20))
    assert quiet.status.goodput == job.status.goodput  # a quiet job costs no write
    first = _sample(10, 15, train=2.0, startup=4.0)
    moved = reconcile(job, running("digits", 2), T0 + timedelta(seconds=20), progress=first)
    goodput = moved.status.goodput
    assert goodput is not None and goodput.wall_seconds == 20.0 and goodput.productive_seconds == 2.0
    assert goodput.badput["startup"].seconds == 4.0 and goodput.badput["checkpointSave"].seconds == 0.5
    assert goodput.badput["queued"].seconds == 7.0 and goodput.steps_redone == 0
    _sums_to_one(goodput)


def test_a_restart_counts_recovery_time_and_the_steps_redone() -> None:
    job = _pending_job()
    job = job.model_copy(update={"status": reconcile(job, running("digits", 2), T0 + timedelta(seconds=5)).status})
    before = _sample(100, 40, train=30.0, startup=4.0)
    status = reconcile(job, running("digits", 2), T0 + timedelta(seconds=40), progress=before).status
    job = job.model_copy(update={"status": status})
    # Worker 1 is deleted: the group restarts.
    pods = [store("digits"), pod("digits", 0), pod("digits", 1, deleting=True)]
    restarting = reconcile(job, pods, T0 + timedelta(seconds=42), progress=before).status
    assert restarting.phase == c.PHASE_RESTARTING
    job = job.model_copy(update={"status": restarting})
    # 8 s later the group runs again; the new worker 0 resumed from the checkpoint at step 60.
    new_pods = [store("digits"), pod("digits", 0, uid="w0-b"), pod("digits", 1, uid="w1-b")]
    again = reconcile(job, new_pods, T0 + timedelta(seconds=50), progress=before).status
    assert again.phase == c.PHASE_RUNNING and again.goodput is not None
    assert again.goodput.recovery_seconds == 8.0
    job = job.model_copy(update={"status": again})
    resumed = _sample(70, 60, start=60, source="w0-b", train=3.0, startup=5.0)
    status = reconcile(job, new_pods, T0 + timedelta(seconds=60), progress=resumed).status
    goodput = status.goodput
    assert goodput is not None and goodput.steps_redone == 40  # 100 reached, resumed at 60
    assert goodput.earlier_phases["train"] == 30.0 and goodput.run_phases["train"] == 3.0
    # 40 steps at the old run's 100 steps / 30 s... the rate is measured on the new run, which has one look:
    # the time per step then comes from the run's own training time (3 s for 10 steps).
    assert goodput.badput["wastedProgress"].seconds == pytest.approx(12.0, abs=0.1)
    assert goodput.badput["recovery"].seconds == 8.0 and goodput.badput["startup"].seconds == 9.0
    assert goodput.productive_seconds == pytest.approx(33.0 - 12.0, abs=0.1)
    _sums_to_one(goodput)


def test_the_end_takes_the_trainers_final_phases_from_the_termination_message() -> None:
    job = _pending_job()
    job = job.model_copy(update={"status": reconcile(job, running("digits", 2), T0 + timedelta(seconds=5)).status})
    at20 = T0 + timedelta(seconds=20)
    status = reconcile(job, running("digits", 2), at20, progress=_sample(10, 20, train=5.0)).status
    job = job.model_copy(update={"status": status})
    report = {"latest": {}, "best": {}, "goodput": {"startStep": 0, "step": 30, "totalSteps": 30, "phases": {
        "startup": 4.0, "rendezvous": 1.0, "restore": 0.0, "train": 20.0, "checkpoint": 1.0, "evaluation": 2.0}}}
    done = [store("digits")] + [replace(pod("digits", i, "Succeeded", exit_code=0), evaluation=report)
                                for i in range(2)]
    final = reconcile(job, done, T0 + timedelta(seconds=40)).status
    assert final.phase == c.PHASE_SUCCEEDED and final.goodput is not None
    assert final.goodput.wall_seconds == 40.0 and final.goodput.productive_seconds == 20.0
    # The last step comes from the termination message: the last poll saw step 10.
    assert final.progress is not None and (final.progress.step, final.progress.summary) == (30, "30/30")
    assert final.progress.percent == 100.0 and final.progress.eta == "0s"
    assert final.goodput.fraction == 0.5 and final.goodput.badput["evaluation"].seconds == 2.0
    _sums_to_one(final.goodput)
    finished = job.model_copy(update={"status": final})
    later = reconcile(finished, done, T0 + timedelta(seconds=400), progress=_sample(10, 20, train=5.0)).status
    assert later.goodput == final.goodput  # frozen
    # The poller's last sample (step 10) is older than the final step: it never overwrites it.
    assert later.progress == final.progress and later.progress is not None and later.progress.step == 30


def test_an_unreadable_endpoint_sets_a_condition_and_one_event_and_keeps_the_progress() -> None:
    job = _pending_job()
    job = job.model_copy(update={"status": reconcile(job, running("digits", 2), T0 + timedelta(seconds=5)).status})
    status = reconcile(job, running("digits", 2), T0 + timedelta(seconds=20), progress=_sample(10, 20)).status
    job = job.model_copy(update={"status": status})
    why = Unavailable("EndpointUnreachable", "http://10.0.0.5:9090/metrics: ClientConnectorError")
    lost = reconcile(job, running("digits", 2), T0 + timedelta(seconds=30), progress=_sample(10, 20), unavailable=why)
    cond = next(x for x in lost.status.conditions if x.type == c.COND_PROGRESS)
    assert cond.status == "False" and cond.reason == "EndpointUnreachable" and "keeping the last" in cond.message
    assert [e.reason for e in lost.events] == ["EndpointUnreachable"]
    assert lost.status.progress == job.status.progress
    job = job.model_copy(update={"status": lost.status})
    still = reconcile(job, running("digits", 2), T0 + timedelta(seconds=60), progress=_sample(10, 20), unavailable=why)
    assert still.events == [] and still.status.conditions == job.status.conditions  # once, not per poll
    back = reconcile(job, running("digits", 2), T0 + timedelta(seconds=70), progress=_sample(12, 70))
    cond = next(x for x in back.status.conditions if x.type == c.COND_PROGRESS)
    assert cond.status == "True" and [e.reason for e in back.events] == [c.REASON_PROGRESS_REPORTED]
    # A job whose progress was always readable never carries the condition at all.
    assert all(x.type != c.COND_PROGRESS for x in status.conditions)


def test_the_trainers_start_up_is_not_counted_twice_as_queued_or_recovery() -> None:
    """Running waits for every worker and the store; the trainer's start-up began before that. Once a
    run says when it started, queued and recovery end there."""
    job = _pending_job()
    job = job.model_copy(update={"status": reconcile(job, running("digits", 2), T0 + timedelta(seconds=7)).status})
    assert job.status.goodput is not None and job.status.goodput.queued_seconds == 7.0  # until it reports
    first = replace(_sample(10, 12, startup=4.0, train=1.0), started_at=(T0 + timedelta(seconds=2)).timestamp())
    status = reconcile(job, running("digits", 2), T0 + timedelta(seconds=12), progress=first).status
    assert status.goodput is not None and status.goodput.queued_seconds == 2.0
    job = job.model_copy(update={"status": status})
    pods = [store("digits"), pod("digits", 0), pod("digits", 1, deleting=True)]
    job = job.model_copy(update={"status": reconcile(job, pods, T0 + timedelta(seconds=20), progress=first).status})
    new_pods = [store("digits"), pod("digits", 0, uid="w0-b"), pod("digits", 1, uid="w1-b")]
    again = reconcile(job, new_pods, T0 + timedelta(seconds=30), progress=first).status
    assert again.goodput is not None and again.goodput.recovery_seconds == 10.0  # restart at 20, Running at 30
    job = job.model_copy(update={"status": again})
    second = replace(_sample(5, 34, source="w0-b", startup=5.0), started_at=(T0 + timedelta(seconds=24)).timestamp())
    status = reconcile(job, new_pods, T0 + timedelta(seconds=34), progress=second).status
    assert status.goodput is not None and status.goodput.recovery_seconds == 4.0  # to the new run's start
    assert status.goodput.pending_recovery_seconds == 0.0
    _sums_to_one(status.goodput)
    assert status.goodput.wall_seconds == 34.0  # nothing counted twice: the parts fit in the wall time


def test_steps_redone_use_the_trainers_own_record_of_the_furthest_step() -> None:
    """The operator polls an interval apart; the new run read the furthest step the last run recorded."""
    job = _pending_job()
    job = job.model_copy(update={"status": reconcile(job, running("digits", 2), T0 + timedelta(seconds=5)).status})
    polled = _sample(50, 20, train=10.0)
    job = job.model_copy(update={"status": reconcile(job, running("digits", 2), T0 + timedelta(seconds=20),
                                                     progress=polled).status})
    resumed = replace(_sample(45, 40, start=40, source="w0-b", train=1.0), previous_step=58)
    status = reconcile(job, running("digits", 2), T0 + timedelta(seconds=40), progress=resumed).status
    assert status.goodput is not None and status.goodput.steps_redone == 18  # 58 reached, 40 resumed
    assert status.goodput.high_water_step == 58


def test_a_job_that_runs_and_finishes_within_its_creation_second_still_reports_every_category() -> None:
    # Timestamps have seconds: a fast job's wall time is 0, and its status keeps the same shape.
    job = make_job().workers(1).status(phase="Pending", startTime=T0.isoformat(), observedGeneration=1).build()
    job = job.model_copy(update={"status": reconcile(job, running("digits", 1), T0).status})
    done = [store("digits"), pod("digits", 0, "Succeeded", exit_code=0)]
    final = reconcile(job, done, T0).status
    assert final.phase == c.PHASE_SUCCEEDED and final.goodput is not None
    assert final.goodput.wall_seconds == 0.0 and final.goodput.fraction == 0.0
    assert set(final.goodput.badput) == set(CATEGORIES)
    assert all(b.seconds == 0.0 and b.fraction == 0.0 for b in final.goodput.badput.values())
