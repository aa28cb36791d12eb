"""Evaluation from the trainer to status.evaluation: the record, the termination message, the merge."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ludus.api.models import Evaluation, MetricValue, Objective
from ludus.trainingjob.observe import observe_pod
from ludus.trainingjob.status import evaluation_status
from ludus_trainer.evaluation import MAX_MESSAGE_BYTES, EvaluationRecord
from ludus_trainer.evaluation import Objective as TrainerObjective
from tests.factories import pod


def _record() -> EvaluationRecord:
    record = EvaluationRecord(TrainerObjective("accuracy", "maximize"))
    record.update({"accuracy": 0.91, "eval_loss": 0.40}, step=100, epoch=1)
    record.update({"accuracy": 0.95, "eval_loss": 0.30}, step=200, epoch=2)
    record.update({"accuracy": 0.93, "eval_loss": 0.35, "f1": float("nan")}, step=300, epoch=3)
    return record


def test_the_record_keeps_latest_and_best_in_each_metrics_direction() -> None:
    record = _record()
    assert record.latest["accuracy"] == {"value": 0.93, "step": 300, "epoch": 3}
    assert record.best["accuracy"] == {"value": 0.95, "step": 200, "epoch": 2}  # maximized
    assert record.best["eval_loss"] == {"value": 0.30, "step": 200, "epoch": 2}  # a loss is minimized
    assert "f1" not in record.latest  # NaN is not a measurement


def test_the_message_fits_the_kubelets_limit_keeping_the_objective_first() -> None:
    record = EvaluationRecord(TrainerObjective("accuracy", "maximize"))
    record.update({f"metric_{i:03d}": float(i) for i in range(200)} | {"accuracy": 0.9}, step=1, epoch=0)
    message = record.message()
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
    data = json.loads(message)["ludusEvaluation"]
    assert data["latest"]["accuracy"]["value"] == 0.9 and data["best"]["accuracy"]["value"] == 0.9


def test_publish_writes_the_termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUDUS_TERMINATION_LOG", str(tmp_path / "termination-log"))
    _record().publish()
    assert json.loads((tmp_path / "termination-log").read_text())["ludusEvaluation"]["objective"] == {
        "metric": "accuracy", "goal": "maximize"}


def _terminated(message: str, key: str = "state") -> dict:
    return {
        "metadata": {"name": "digits-worker-0", "uid": "u0", "labels": {"ludus.dev/role": "worker"}},
        "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "trainer", key: {"terminated": {"exitCode": 0, "message": message}}}]},
    }


def test_the_operator_reads_the_trainers_message_from_the_pod_status() -> None:
    observed = observe_pod(_terminated(_record().message()))
    assert observed.evaluation is not None and observed.evaluation["best"]["accuracy"]["value"] == 0.95
    # A restarted container's previous message still counts.
    assert observe_pod(_terminated(_record().message(), "lastState")).evaluation is not None


@pytest.mark.parametrize(
    "message",
    ["", "Traceback (most recent call last):\n  boom", '{"ludusEvaluation": {"latest": ', "<html>oops</html>",
     '{"somethingElse": 1}', '{"ludusEvaluation": [1, 2]}', '{"ludusEvaluation":' + " " * 5000 + "{}}"],
    ids=["empty", "log lines", "truncated JSON", "HTML", "foreign JSON", "not an object", "too long"],
)
def test_anything_else_in_the_message_is_ignored(message: str) -> None:
    assert observe_pod(_terminated(message)).evaluation is None


def _with(evaluation: dict) -> object:
    return replace(pod("digits", 0, "Succeeded", exit_code=0), evaluation=evaluation)


def test_the_status_takes_the_reported_objective_and_summarises_it() -> None:
    merged = evaluation_status(None, [_with(_record().as_dict())], None)
    assert merged is not None and merged.objective is not None
    assert (merged.objective.metric, merged.objective.value, merged.objective.best) == ("accuracy", 0.93, 0.95)
    assert merged.objective.summary == "accuracy 0.93"
    assert merged.latest["eval_loss"] == MetricValue(value=0.35, step=300, epoch=3)


def test_the_spec_objective_wins_and_best_values_survive_a_restart_that_lost_them() -> None:
    old = Evaluation(best={"f1": MetricValue(value=0.97, step=50, epoch=0)},
                     latest={"f1": MetricValue(value=0.97, step=50, epoch=0)})
    report = {"objective": {"metric": "accuracy", "goal": "maximize"},
              "latest": {"f1": {"value": 0.90, "step": 400, "epoch": 4}},
              "best": {"f1": {"value": 0.90, "step": 400, "epoch": 4}}}
    merged = evaluation_status(old, [_with(report)], Objective(metric="f1", goal="maximize"))
    assert merged is not None and merged.objective is not None
    assert merged.objective.metric == "f1" and merged.objective.best == 0.97 and merged.objective.value == 0.90


def test_malformed_values_never_reach_the_status() -> None:
    report = {"latest": {"accuracy": {"value": "high", "step": 1}, "loss": {"value": True, "step": 1},
                         "ok": {"value": 1.5, "step": -3}, "bad name!": {"value": 1.0, "step": 1},
                         "fine": {"value": 2.0, "step": 7, "epoch": 1}}}
    merged = evaluation_status(None, [_with(report)], None)
    assert merged is not None and set(merged.latest) == {"fine"}
    assert merged.objective is not None and merged.objective.metric == "loss" and merged.objective.value is None


def test_no_report_keeps_what_the_status_had() -> None:
    old = Evaluation(latest={"accuracy": MetricValue(value=0.9)})
    assert evaluation_status(old, [pod("digits", 0)], None) is old


def test_the_baseline_travels_from_the_trainer_to_the_status_and_survives_a_later_report() -> None:
    """The starting model measured on this run's data: in the message, in status.evaluation.baseline, kept
    when a later container's report (a run resumed from a checkpoint without it) carries none."""
    record = _record()
    record.set_baseline({"accuracy": 0.81, "eval_loss": float("inf")})
    assert record.baseline == {"accuracy": {"value": 0.81, "step": 0, "epoch": 0}}  # not finite: not measured
    assert EvaluationRecord.from_dict(record.as_dict(), record.objective).baseline == record.baseline
    observed = observe_pod(_terminated(record.message()))
    merged = evaluation_status(None, [observed], None)
    assert merged is not None and merged.baseline == {"accuracy": MetricValue(value=0.81)}
    later = evaluation_status(merged, [_with(_record().as_dict())], None)
    assert later is not None and later.baseline == merged.baseline and later.latest["accuracy"].value == 0.93
    hostile = evaluation_status(None, [_with({"baseline": {"accuracy": {"value": "high"}, "x y": {"value": 1}}})],
                                None)
    assert hostile is not None and hostile.baseline == {}
