"""A real digits Sweep on real pods: trials train under torchrun with the values the sweep chose."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devcluster.jobs import real_job, worker_logs
from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from devcluster.tracking import TrackingServer


def test_a_digits_sweep_finds_a_trial_above_97_percent_and_names_it(
    k: Kubectl, operator: OperatorProcess, real_node: object, tracking_server: TrackingServer,
    tracking: dict[str, Any],
) -> None:
    template = real_job("template", workers=1, nproc=1, args=["--epochs", "30", "--log-every", "100"])["spec"]
    template["resources"]["memory"] = "1500Mi"
    template["tracking"] = tracking
    k.apply({
        "apiVersion": "ludus.dev/v1alpha1", "kind": "Sweep", "metadata": {"name": "digits"},
        "spec": {
            "template": template,
            # The values reach the trainer as LUDUS_PARAM_* and LUDUS_TRIAL_PARAMETERS: the digits
            # workload reads lr and width from them (no ${} in the arguments needed).
            "parameters": [
                {"name": "lr", "type": "categorical", "values": ["0.001", "0.003", "0.01"]},
                {"name": "width", "type": "categorical", "values": ["64", "256"]},
            ],
            "algorithm": {"name": "grid", "seed": 1},
            "maxTrials": 6, "parallelTrials": 2,
        },
    })
    most_at_once = 0

    def done() -> bool:
        nonlocal most_at_once
        jobs = k.items("tj", "ludus.dev/sweep=digits")
        running = [j for j in jobs if (j.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        most_at_once = max(most_at_once, len(running))
        return (k.json("sweep", "digits").get("status") or {}).get("phase") in ("Succeeded", "Failed")

    wait_for(done, timeout=900, interval=2, what="the sweep to end")
    status = k.json("sweep", "digits")["status"]
    assert status["phase"] == "Succeeded" and status["succeeded"] == 6, status
    assert most_at_once <= 2
    # The objective came from the workload itself (accuracy, maximize): nothing was declared.
    assert status["objective"] == {"metric": "accuracy", "goal": "maximize"}
    best = status["best"]
    assert best["value"] >= 0.97 and best["metrics"]["f1"] >= 0.95, best
    trial = k.json("tj", best["name"])
    assert json.loads(trial["metadata"]["annotations"]["ludus.dev/trial-parameters"]) == best["parameters"]
    assert trial["status"]["evaluation"]["latest"]["accuracy"]["value"] == best["value"]
    # The trainer really ran with the values: its log names the learning rate and width it built.
    logs = worker_logs(k, best["name"])
    assert f"lr={best['parameters']['lr']}" in logs and f"hidden={best['parameters']['width']}" in logs, logs[-2000:]
    # Trial names and labels the CLI and kubectl follow.
    assert sorted(j["metadata"]["name"] for j in k.items("tj", "ludus.dev/sweep=digits")) == [
        f"digits-{n}" for n in range(6)]
    # In MLflow: one parent run for the sweep and its six trials as children, each with the values it ran
    # with; the best trial's run holds the value status.best names.
    runs = tracking_server.runs(tracking["experiment"])
    [parent] = [r for r in runs if r["tags"].get("ludus.uid") == f"Sweep:{k.namespace}/digits"]
    children = {r["tags"]["ludus.job"]: r for r in runs
                if r["tags"].get("mlflow.parentRunId") == parent["info"]["run_id"]}
    assert sorted(children) == [f"digits-{n}" for n in range(6)]
    for trial in status["trials"]:
        child = children[trial["name"]]
        assert child["info"]["run_id"] == trial["trackingRunId"]
        assert (child["params"]["lr"], child["params"]["width"]) == (trial["parameters"]["lr"],
                                                                     trial["parameters"]["width"])
    best_run = children[best["name"]]
    assert tracking_server.history(best_run["info"]["run_id"], "accuracy")[-1][1] == pytest.approx(best["value"],
                                                                                                  abs=1e-6)
