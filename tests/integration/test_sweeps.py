"""Sweeps on the real API server, with the operator running: the test plays the trainers.

Trials are real TrainingJobs whose pods run on kwok's nodes; the test writes each trial's
evaluation into its status (as the operator does from a real trainer) and ends its pod with the
exit-code annotation the fake nodes honour.
"""

from __future__ import annotations

import json
import math
import signal
from typing import Any

import pytest
import yaml

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster
from tests.integration.test_sdk_cli import ludus

TERMINAL = {"Succeeded", "Failed"}


def sweep_manifest(name: str, **spec: Any) -> dict[str, Any]:
    template = make_job("template").workers(1).on_fake_nodes().manifest()["spec"]
    body: dict[str, Any] = {
        "template": {**template, "args": ["--lr", "${lr}"]},
        "parameters": [{"name": "lr", "type": "float", "min": 1e-4, "max": 1.0, "log": True},
                       {"name": "width", "type": "int", "min": 16, "max": 256, "step": 16}],
        "objective": {"metric": "accuracy", "goal": "maximize"},
        "algorithm": {"name": "tpe", "seed": 3},
        "maxTrials": 6, "parallelTrials": 2,
    }
    body.update(spec)
    return {"apiVersion": "ludus.dev/v1alpha1", "kind": "Sweep", "metadata": {"name": name}, "spec": body}


def accuracy(values: dict[str, str]) -> float:
    """The known function the trials 'learn': best at lr = 0.01, width = 128."""
    lr, width = float(values["lr"]), int(values["width"])
    return round(1 - ((math.log10(lr) + 2) ** 2) / 20 - ((width - 128) / 240) ** 2, 6)


def values_of(job: dict[str, Any]) -> dict[str, str]:
    return json.loads(job["metadata"]["annotations"]["ludus.dev/trial-parameters"])


def report(k: Kubectl, name: str, metrics: dict[str, float], step: int) -> None:
    latest = {m: {"value": v, "step": step, "epoch": 1} for m, v in metrics.items()}
    k.run("patch", "tj", name, "--subresource=status", "--type=merge",
          "-p", json.dumps({"status": {"evaluation": {"latest": latest}}}))


def finish(k: Kubectl, name: str, code: int = 0) -> None:
    k.run("annotate", "pod", f"{name}-worker-0", f"ludus.dev/kwok-exit-code={code}", "--overwrite", check=False)


def trials(k: Kubectl, sweep: str) -> list[dict[str, Any]]:
    return k.items("tj", f"ludus.dev/sweep={sweep}")


def unfinished(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [j for j in jobs if (j.get("status") or {}).get("phase") not in TERMINAL
            and (j["metadata"].get("annotations") or {}).get("ludus.dev/stopped-early") != "true"]


def sweep_status(k: Kubectl, name: str) -> dict[str, Any]:
    return k.json("sweep", name).get("status") or {}


def test_bad_sweeps_are_refused_by_the_api_server_naming_the_field(cluster: TestCluster, k: Kubectl,
                                                                   namespace: str) -> None:
    cases = [
        ({"parameters": [{"name": "lr", "type": "float", "min": 1.0, "max": 0.1}]}, "min must not be greater"),
        ({"parameters": [{"name": "lr", "type": "float", "min": 0, "max": 1, "log": True}]}, "min > 0"),
        ({"parameters": [{"name": "act", "type": "categorical", "values": []}]}, "non-empty values"),
        ({"algorithm": {"name": "hyperband"}}, "spec.algorithm.name"),
        ({"maxTrials": 2, "parallelTrials": 3}, "parallelTrials must not exceed maxTrials"),
        ({"template": {"image": "x", "replicas": 0}}, "spec.template.replicas"),
    ]
    for spec, message in cases:
        refused = k.apply(sweep_manifest("bad", **spec), check=False)
        assert refused.returncode != 0 and message in refused.stderr, (spec, refused.stderr)
    assert k.items("sweeps") == []


def test_a_sweep_of_30_trials_5_at_a_time_survives_an_operator_sigkill(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    k.apply(sweep_manifest("tune", maxTrials=30, parallelTrials=5))
    most_at_once, fed, before_kill = 0, set(), {}
    killed = False
    while True:
        jobs = trials(k, "tune")
        most_at_once = max(most_at_once, len(unfinished(jobs)))
        if not killed and len(jobs) >= 12:
            # Mid-sweep: the operator dies without a word, and a new one takes over.
            before_kill = {j["metadata"]["name"]: values_of(j) for j in jobs}
            operator.kill(signal.SIGKILL)
            operator.start()
            killed = True
        for job in jobs:
            name = job["metadata"]["name"]
            if name not in fed and (job.get("status") or {}).get("phase") == "Running":
                report(k, name, {"accuracy": accuracy(values_of(job)), "f1": 0.5}, step=100)
                finish(k, name)
                fed.add(name)
        if sweep_status(k, "tune").get("phase") in TERMINAL:
            break
        wait_for(lambda: True, timeout=1)
    status = sweep_status(k, "tune")
    jobs = trials(k, "tune")
    assert status["phase"] == "Succeeded", status.get("conditions")
    assert most_at_once <= 5
    # Nothing lost, nothing repeated: trials 0..29, each with the values it had before the kill.
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(f"tune-{n}" for n in range(30))
    assert [t["number"] for t in status["trials"]] == list(range(30))
    for name, values in before_kill.items():
        assert values_of(next(j for j in jobs if j["metadata"]["name"] == name)) == values
    assert status["succeeded"] == 30 and status["progress"] == "30/30"
    best = status["best"]
    assert best["value"] == max(accuracy(values_of(j)) for j in jobs)
    assert best["parameters"] == values_of(next(j for j in jobs if j["metadata"]["name"] == best["name"]))
    assert best["metrics"] == {"accuracy": best["value"], "f1": 0.5}
    printed = k.run("get", "sweep", "tune").stdout
    assert "Succeeded" in printed and "30/30" in printed and "accuracy" in printed
    reasons = {e["reason"] for e in k.items("events") if e["involvedObject"]["name"] == "tune"}
    assert {"TrialCreated", "NewBestTrial", "MaxTrialsReached"} <= reasons

    # The CLI: the trials as a table, best first; the best trial's values and metrics.
    table = ludus(cluster.kubeconfig, "sweep", "get", "tune", "-n", namespace)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "tune-" in line]
    assert len(rows) == 30 and rows[0].strip().startswith("* " + best["name"] + " "), table.stdout
    shown = ludus(cluster.kubeconfig, "sweep", "best", "tune", "-n", namespace).stdout
    assert best["name"] in shown and all(f"{k} " in shown and v in shown for k, v in best["parameters"].items())
    # Every read verb speaks -o json|yaml for programs.
    listed = json.loads(ludus(cluster.kubeconfig, "sweep", "list", "-n", namespace, "-o", "json").stdout)
    assert [(s["metadata"]["name"], s["status"]["phase"]) for s in listed["items"]] == [("tune", "Succeeded")]
    best_yaml = yaml.safe_load(ludus(cluster.kubeconfig, "sweep", "best", "tune", "-n", namespace, "-o", "yaml").stdout)
    assert best_yaml["name"] == best["name"] and best_yaml["parameters"] == best["parameters"]
    # Deleting the sweep deletes every trial (owner references; the garbage collector does it).
    assert ludus(cluster.kubeconfig, "sweep", "delete", "tune", "-n", namespace).returncode == 0
    wait_for(lambda: not trials(k, "tune"), timeout=120, what="every trial deleted")


def test_early_stopping_stops_the_trial_worse_than_the_median(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    """With the template tracking to MLflow, the stopped trial's run is tagged by a short record pod the
    sweep creates with the stop and deletes once it ended (its command is tests/trainer/test_tracking.py's)."""
    manifest = sweep_manifest("stop", maxTrials=5, parallelTrials=1, earlyStopping={"minTrials": 3})
    manifest["spec"]["template"]["tracking"] = {"uri": "http://mlflow.invalid:5000", "experiment": "stop"}
    k.apply(manifest)
    for number, early in enumerate([0.8, 0.8, 0.8, 0.1, 0.85]):
        name = f"stop-{number}"
        wait_for(lambda n=name: (k.get_or_none("tj", n) or {}).get("status", {}).get("phase") == "Running",
                 timeout=60, what=f"{name} Running")
        run_id = f"{number:032x}"
        k.run("patch", "tj", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
            "tracking": {"runId": run_id, "experimentId": "1", "url": "http://mlflow.invalid:5000/#/runs"},
            "evaluation": {"latest": {"accuracy": {"value": early, "step": 10, "epoch": 1}}}}}))
        # The sweep records the intermediate value before the next one is written.
        wait_for(lambda n=number: any(t["number"] == n and "10" in t.get("intermediate", {})
                                      for t in sweep_status(k, "stop").get("trials", [])),
                 timeout=30, what=f"{name}'s step 10 recorded")
        if number == 3:
            wait_for(lambda n=name: k.json("tj", n)["metadata"].get("annotations", {})
                     .get("ludus.dev/stopped-early") == "true", timeout=30, what=f"{name} stopped early")
            assert k.json("tj", name)["spec"]["suspend"] is True
            pod = wait_for(lambda: k.get_or_none("pod", "stop-stopped-3"), timeout=30, what="the record pod")
            command = pod["spec"]["containers"][0]["command"]
            assert command[3:6] == ["--stopped-early", "--tracking-run", run_id], command
            assert pod["metadata"]["ownerReferences"][0]["kind"] == "Sweep"
            k.run("annotate", "pod", "stop-stopped-3", "ludus.dev/kwok-exit-code=0", "--overwrite")
            wait_for(lambda: k.get_or_none("pod", "stop-stopped-3") is None, timeout=30,
                     what="the ended record pod deleted")
            continue
        report(k, name, {"accuracy": early + 0.1}, step=20)
        finish(k, name)
    wait_for(lambda: sweep_status(k, "stop").get("phase") == "Succeeded", timeout=60, what="sweep Succeeded")
    status = sweep_status(k, "stop")
    assert status["stopped"] == 1 and status["succeeded"] == 4
    stopped = next(t for t in status["trials"] if t["number"] == 3)
    assert stopped["stoppedEarly"] is True and stopped["phase"] == "Stopped"
    reasons = [e["reason"] for e in k.items("events") if e["involvedObject"]["name"] == "stop"]
    assert reasons.count("TrialStoppedEarly") == 1


def test_an_objective_no_trial_reports_fails_the_sweep_naming_what_they_did(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    k.apply(sweep_manifest("nobleu", maxTrials=4, parallelTrials=1, objective={"metric": "bleu", "goal": "maximize"}))
    wait_for(lambda: (k.get_or_none("tj", "nobleu-0") or {}).get("status", {}).get("phase") == "Running",
             timeout=60, what="the first trial Running")
    report(k, "nobleu-0", {"accuracy": 0.9, "f1": 0.8}, step=100)
    finish(k, "nobleu-0")
    wait_for(lambda: sweep_status(k, "nobleu").get("phase") == "Failed", timeout=60, what="sweep Failed")
    failed = next(x for x in sweep_status(k, "nobleu")["conditions"] if x["type"] == "Failed")
    assert failed["reason"] == "ObjectiveNotReported"
    assert "'bleu'" in failed["message"] and "accuracy, f1" in failed["message"]
    assert len(trials(k, "nobleu")) == 1  # no more trials after that


def test_suspending_a_sweep_suspends_its_running_trials_and_starts_none(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    k.apply(sweep_manifest("pause", maxTrials=4, parallelTrials=2))
    wait_for(lambda: len(trials(k, "pause")) == 2, timeout=60, what="2 trials")
    k.run("patch", "sweep", "pause", "--type=merge", "-p", '{"spec": {"suspend": true}}')
    wait_for(lambda: all(j["spec"].get("suspend") for j in trials(k, "pause")), timeout=60, what="trials suspended")
    wait_for(lambda: sweep_status(k, "pause").get("phase") == "Suspended", timeout=30, what="sweep Suspended")
    finish(k, "pause-0")  # a trial cannot finish while suspended: its pods are gone
    assert len(trials(k, "pause")) == 2
    k.run("patch", "sweep", "pause", "--type=merge", "-p", '{"spec": {"suspend": false}}')
    wait_for(lambda: not any(j["spec"].get("suspend") for j in trials(k, "pause")), timeout=60,
             what="trials resumed")
    assert sweep_status(k, "pause")["phase"] == "Running"


@pytest.mark.parametrize("algorithm", ["grid"])
def test_a_grid_without_steps_fails_naming_the_parameter(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess, algorithm: str
) -> None:
    k.apply(sweep_manifest("nogrid", algorithm={"name": algorithm}))
    wait_for(lambda: sweep_status(k, "nogrid").get("phase") == "Failed", timeout=60, what="sweep Failed")
    failed = next(x for x in sweep_status(k, "nogrid")["conditions"] if x["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec" and "parameters[lr].step" in failed["message"]
    assert trials(k, "nogrid") == []


def test_a_forged_trial_is_not_taken_and_a_trial_deleted_by_hand_lets_the_sweep_end(
    k: Kubectl, operator: OperatorProcess,
) -> None:
    """A TrainingJob labelled as trial 7 (not controlled by the sweep) that succeeds with the best score
    is not a trial; trial 1, deleted by hand while it runs, is recorded as Deleted and the sweep ends."""
    k.apply(sweep_manifest("own", maxTrials=2, parallelTrials=2))
    forged = make_job("own-7").workers(1).on_fake_nodes().manifest()
    forged["metadata"]["labels"] = {"ludus.dev/sweep": "own", "ludus.dev/trial": "7"}
    k.apply(forged)
    wait_for(lambda: (k.json("tj", "own-7").get("status") or {}).get("phase") == "Running", what="own-7 Running")
    report(k, "own-7", {"accuracy": 0.99}, step=100)
    finish(k, "own-7")
    wait_for(lambda: all((k.get_or_none("tj", n) or {}).get("status", {}).get("phase") == "Running"
                         for n in ("own-0", "own-1")), what="both trials Running")
    k.run("delete", "tj", "own-1", "--wait=false")
    report(k, "own-0", {"accuracy": 0.5}, step=100)
    finish(k, "own-0")
    wait_for(lambda: sweep_status(k, "own").get("phase") in TERMINAL, timeout=60, what="the sweep ended")
    status = sweep_status(k, "own")
    assert status["phase"] == "Succeeded", status.get("conditions")
    assert [(t["number"], t["phase"]) for t in status["trials"]] == [(0, "Succeeded"), (1, "Deleted")]
    assert status["best"]["name"] == "own-0" and status["deleted"] == 1 and status["succeeded"] == 1
    reasons = [e["reason"] for e in k.items("events") if e["involvedObject"]["name"] == "own"]
    assert reasons.count("TrialDeleted") == 1
