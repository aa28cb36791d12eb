"""status.tracking and the Tracked condition: what worker 0 says of its MLflow run, checked, with a URL the
operator builds from the spec."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from prometheus_client import generate_latest

from ludus.api import constants as c
from ludus.api.models import TrainingJob
from ludus.sdk.render import describe
from ludus.trainingjob.progress import ProgressSample, parse_progress
from ludus.trainingjob.tracking import checked_report, latest_report, tracked_condition, tracking_status
from tests.factories import make_job, pod

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RUN = "0123456789abcdef0123456789abcdef"


def _tracked_job() -> TrainingJob:
    return make_job().spec(tracking={"uri": "http://mlflow.tracking:5000/", "experiment": "digits"}).build()


def _page(run_id: str, experiment_id: str, ok: bool, reason: str) -> ProgressSample:
    from ludus_trainer.metrics import TrainerMetrics

    metrics = TrainerMetrics(job="j", rank=0)
    metrics.step(7, 0, 0.5, None, None)
    metrics.tracking(run_id, experiment_id, ok, reason, 0 if ok else 12)
    sample = parse_progress(generate_latest(metrics.registry).decode())
    assert sample is not None
    return sample


def test_a_recorded_run_is_named_with_a_url_built_from_the_spec_and_describe_shows_it() -> None:
    job = _tracked_job()
    report = latest_report(_page(RUN, "4", True, "Recorded"), [])
    status = tracking_status(job, report)
    assert status is not None
    assert (status.run_id, status.experiment_id) == (RUN, "4")
    assert status.url == f"http://mlflow.tracking:5000/#/experiments/4/runs/{RUN}"
    conditions = tracked_condition([], job, report, NOW)
    assert [(x.type, x.status, x.reason) for x in conditions] == [(c.COND_TRACKED, "True", "Recorded")]
    done = job.model_copy(update={"status": job.status.model_copy(update={"tracking": status})})
    assert f"Tracking:    run {RUN} {status.url}" in describe(done, [])


def test_a_tracker_that_is_down_is_tracked_false_and_a_later_report_without_ids_keeps_the_run() -> None:
    job = _tracked_job()
    earlier = tracking_status(job, checked_report(RUN, "4", True, "Recorded"))
    job = job.model_copy(update={"status": job.status.model_copy(update={"tracking": earlier})})
    report = latest_report(_page("", "", False, "TrackerUnavailable"), [])
    assert report is not None and (report.ok, report.reason, report.run_id) == (False, "TrackerUnavailable", None)
    assert tracking_status(job, report) is earlier
    [condition] = tracked_condition([], job, report, NOW)
    assert (condition.status, condition.reason) == ("False", "TrackerUnavailable")
    assert "http://mlflow.tracking:5000 could not be reached" in condition.message


def test_what_a_pod_says_is_checked_before_it_reaches_the_status() -> None:
    """Hostile reports: IDs of the wrong shape, a made-up reason, a URL of the pod's own are never shown."""
    job = _tracked_job()
    bad = checked_report("../../evil", "4; drop", True, "Recorded")
    assert (bad.run_id, bad.experiment_id) == (None, None) and tracking_status(job, bad) is None
    odd = checked_report(RUN, "4", "yes", "<script>", pending=-3)
    assert (odd.ok, odd.reason, odd.pending) == (False, "TrackerUnavailable", 0)
    refused = checked_report(RUN, "4", False, "TrackerRefused")
    [condition] = tracked_condition([], job, refused, NOW)
    assert condition.reason == "TrackerRefused" and "refused the trainer's credentials" in condition.message
    long_page = _page(RUN * 3, "4", True, "Recorded")
    assert tracking_status(job, latest_report(long_page, [])) is None


def test_the_termination_message_of_a_finished_worker_0_wins_over_its_last_page() -> None:
    final = dataclasses.replace(pod("digits", 0, "Succeeded", exit_code=0),
                                evaluation={"tracking": {"runId": RUN, "experimentId": "9", "ok": False,
                                                         "reason": "TrackerUnavailable", "pending": 40}})
    report = latest_report(_page(RUN, "9", True, "Recorded"), [final])
    assert report is not None and (report.ok, report.pending) == (False, 40)
    running = dataclasses.replace(final, phase="Running")
    assert latest_report(_page(RUN, "9", True, "Recorded"), [running]).ok  # type: ignore[union-attr]


def test_a_job_without_spec_tracking_has_no_tracked_condition() -> None:
    job = make_job().build()
    report = checked_report(RUN, "4", True, "Recorded")
    assert tracking_status(job, report) is None and tracked_condition([], job, report, NOW) == []


def test_a_tracking_section_without_a_uri_takes_the_operators_default_or_says_there_is_none() -> None:
    from ludus.builders.pods import build_worker_pod
    from ludus.trainingjob.tracking import job_with_default_tracker

    job = make_job().spec(tracking={"experiment": "digits"}).build()
    defaulted = job_with_default_tracker(job, "http://mlflow.mlflow:5000")
    assert defaulted.spec.tracking is not None and defaulted.spec.tracking.uri == "http://mlflow.mlflow:5000"
    env = {e["name"]: e.get("value") for e in build_worker_pod(defaulted, 0)["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow:5000"
    own = make_job().spec(tracking={"uri": "http://own:5000"}).build()
    assert job_with_default_tracker(own, "http://mlflow.mlflow:5000") is own  # the spec's own server wins
    untouched = job_with_default_tracker(job, "")
    assert untouched is job
    assert "MLFLOW_TRACKING_URI" not in {e["name"] for e in build_worker_pod(job, 0)["spec"]["containers"][0]["env"]}
    [condition] = tracked_condition([], job, None, NOW)
    assert (condition.status, condition.reason) == ("False", "NoTrackingServer")
    assert "--tracking-uri" in condition.message


def test_the_operators_default_tracker_flag_is_checked_like_the_spec() -> None:
    import pytest

    from ludus.cli import _parser

    parser = _parser()
    args = parser.parse_args(["operator", "--tracking-uri", "http://mlflow.mlflow:5000/"])
    assert args.tracking_uri == "http://mlflow.mlflow:5000"
    with pytest.raises(SystemExit):
        parser.parse_args(["operator", "--tracking-uri", "http://user:secret@mlflow:5000"])
