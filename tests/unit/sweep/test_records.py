"""A trial stopped early is recorded in MLflow by a short pod the pass plans with the stop (records.py)."""

from __future__ import annotations

import copy
import json
from typing import Any

from ludus.api import constants as c
from ludus.api.sweep import Sweep
from ludus.sweep.records import ended_records, record_pod_name, stopped_record_pod
from tests.factories import T0
from tests.unit.sweep.test_reconcile import finished, reconcile_sweep, sweep_body

RUN_ID = "0123456789abcdef0123456789abcdef"
TRACKING = {"uri": "http://mlflow.team-a:5000", "experiment": "search",
            "secretRef": {"name": "mlflow-creds"}}


def _stopping(tracking: dict[str, Any] | None, run_id: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A sweep with 3 finished trials and 2 running, the first of them worse than the median at step 10."""
    body = sweep_body(earlyStopping={"minTrials": 3}, maxTrials=10, parallelTrials=2)
    if tracking is not None:
        body["spec"]["template"]["tracking"] = tracking
    jobs: list[dict[str, Any]] = []
    for _ in range(3):
        plan = reconcile_sweep(Sweep.model_validate(body), jobs, T0)
        jobs += [finished(j, "Succeeded", {"accuracy": 0.9}, step=10) for j in plan.create[:1]]
        body["status"] = plan.status.model_dump(by_alias=True, mode="json", exclude_none=True)
    running = reconcile_sweep(Sweep.model_validate(body), jobs, T0).create
    worse = finished(running[0], "Running", {"accuracy": 0.1}, step=10)
    if run_id:
        worse["status"]["tracking"] = {"runId": run_id, "experimentId": "7", "url": "http://x/#/runs"}
    return body, [*jobs, worse, finished(running[1], "Running", {"accuracy": 0.95}, step=10)]


def test_a_trial_stopped_early_with_tracking_gets_a_record_pod_planned_with_the_stop() -> None:
    body, jobs = _stopping(TRACKING, RUN_ID)
    plan = reconcile_sweep(Sweep.model_validate(body), jobs, T0)
    [stopped] = plan.stop
    [pod] = plan.record
    number = int(stopped.rsplit("-", 1)[1])
    assert pod["metadata"]["name"] == record_pod_name("s", number) == f"s-stopped-{number}"
    assert pod["metadata"]["labels"][c.LABEL_SWEEP] == "s" and pod["metadata"]["labels"][c.LABEL_RECORD] == stopped
    assert pod["metadata"]["ownerReferences"][0]["kind"] == c.SWEEP_KIND
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-s"
    [container] = pod["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["python", "-m", "ludus_trainer.registry"]
    assert command[3:8] == ["--stopped-early", "--tracking-run", RUN_ID, "--reason", c.SWEEP_REASON_STOPPED_EARLY]
    assert command[-2] == "--message" and "worse than the median" in command[-1]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == TRACKING["uri"]
    assert env["MLFLOW_TRACKING_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-creds"
    assert pod["spec"]["automountServiceAccountToken"] is False and pod["spec"]["restartPolicy"] == "Never"
    assert container["image"] == "ludus-trainer:latest"


def test_no_record_pod_without_a_tracker_or_before_the_trial_named_its_run() -> None:
    for tracking, run_id in ((None, RUN_ID), (TRACKING, None), ({"experiment": "search"}, RUN_ID)):
        body, jobs = _stopping(tracking, run_id)
        plan = reconcile_sweep(Sweep.model_validate(body), jobs, T0)
        assert len(plan.stop) == 1 and plan.record == [], (tracking, run_id)


def _pod(phase: str, message: str = "", trial: str = "s-3") -> dict[str, Any]:
    body, jobs = _stopping(TRACKING, RUN_ID)
    sweep = Sweep.model_validate(body)
    stopped = jobs[3]["metadata"]["name"]
    trial_record = next(t for t in reconcile_sweep(sweep, jobs, T0).status.trials if t.name == stopped)
    pod = copy.deepcopy(stopped_record_pod(sweep, trial_record, "why"))
    assert pod is not None
    pod["metadata"]["labels"][c.LABEL_RECORD] = trial
    terminated = {"message": message} if phase != "Running" else None
    pod["status"] = {"phase": phase, "containerStatuses": [{"state": {"terminated": terminated} if terminated else {}}]}
    return pod


def test_ended_record_pods_are_deleted_and_a_failed_one_said_in_a_warning() -> None:
    sweep = Sweep.model_validate(sweep_body())
    ok = _pod("Succeeded", json.dumps({"stoppedRun": RUN_ID}))
    failed = _pod("Failed", '{"error": "RESOURCE_DOES_NOT_EXIST: run not found"}', trial="s-4")
    failed["metadata"]["name"] = "s-stopped-4"
    running = _pod("Running", trial="s-5")
    running["metadata"]["name"] = "s-stopped-5"
    delete, events, still = ended_records(sweep, [ok, failed, running])
    assert delete == [ok["metadata"]["name"], "s-stopped-4"] and still is True
    assert events == [("Warning", c.SWEEP_REASON_TRACKER_NOT_UPDATED, "trial s-4's run in MLflow was not tagged as "
                       "stopped early: RESOURCE_DOES_NOT_EXIST: run not found")]
    assert ended_records(sweep, [ok]) == ([ok["metadata"]["name"]], [], False)
    # What a pod says is hostile: a termination message of nested brackets is only text.
    hostile = _pod("Failed", '{"error": ' + "[" * 100_000, trial="s-6")
    [(_, _, message)] = ended_records(sweep, [hostile])[1]
    assert len(message) < 400


def test_the_pass_carries_the_ended_records_out_also_after_the_sweep_ended() -> None:
    body, jobs = _stopping(TRACKING, RUN_ID)
    body["status"] = {**body["status"], "phase": c.PHASE_SUCCEEDED}
    plan = reconcile_sweep(Sweep.model_validate(body), jobs, T0, [_pod("Succeeded", "{}")])
    assert plan.delete_pods and not plan.recording
