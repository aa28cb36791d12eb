"""A user's own script (tests/e2e/user_script.py, not a built-in workload) gets what `digits` gets, on
real pods: resume after worker 0 is deleted, a SIGTERM checkpoint on suspend, an exported model that
a second job starts from (with a baseline), a Sweep over it shipped with `ludus sweep apply --script`,
and docs/sdk.md's transformers and Lightning scripts run with `ludus run`.
The ContinuousTraining over the same script is in test_continuous.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from devcluster.jobs import progress_step, unique, wait_phase, wait_step, worker_logs
from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.doc_examples import write_example
from tests.e2e.test_cli import LUDUS
from tests.e2e.user_script import script_configmap_manifest, script_spec, write_script
from tests.fixtures import TestCluster
from tests.integration.test_sdk_cli import ludus

_CKPT = re.compile(r"ckpt-(\d+)\.pt$")


def _checkpoints(volume: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in volume.iterdir() if (m := _CKPT.match(p.name)))


def _job(name: str, configmap: str, script: Path, args: list[str], claim: str, **spec: object) -> dict:
    """A job of two workers running the script, checkpointing in its own directory of the claim."""
    body = {"apiVersion": "ludus.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
            "spec": script_spec(configmap, script, args, nproc=1, claim=claim, **spec)}
    body["spec"]["checkpoint"]["subPath"] = name
    return body


def test_a_users_script_resumes_after_worker_0_is_deleted_and_after_a_suspend_then_seeds_a_second_job(
    k: Kubectl, operator: OperatorProcess, shared_volume: tuple[str, Path], tmp_path: Path
) -> None:
    claim, shared = shared_volume
    script = write_script(tmp_path)
    name, tuned = unique("own"), unique("tuned")
    volume = shared / name
    k.apply(script_configmap_manifest("learn-rule", script))
    k.apply(_job(name, "learn-rule", script, ["--steps", "150", "--delay", "0.15", "--every", "25"], claim=claim))

    # Worker 0 deleted mid-run: the group restarts and resumes from the checkpoint every rank agrees on.
    wait_step(volume, 40)
    k.run("delete", "pod", f"{name}-worker-0", "--wait=false")
    resumed = wait_for(lambda: re.findall(r"SCRIPT RESUMED step=(\d+) world=2", worker_logs(k, name)), timeout=240,
                       what="the script resumed after worker 0 was deleted")
    assert int(resumed[-1]) >= 25, resumed  # from a checkpoint, not from scratch

    # Suspended: SIGTERM, the script checkpoints the step it is at; resumed: it goes on from there.
    wait_step(volume, 90)
    k.run("patch", "tj", name, "--type=merge", "-p", '{"spec": {"suspend": true}}')
    wait_phase(k, name, "Suspended", timeout=120)
    wait_for(lambda: not k.items("pods", f"ludus.dev/job-name={name},ludus.dev/role=worker"), timeout=120,
             what="the workers gone")
    reached, saved = progress_step(volume), _checkpoints(volume)[-1]
    assert 0 <= reached - saved <= 1, (reached, saved)
    k.run("patch", "tj", name, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    wait_phase(k, name, "Succeeded", timeout=400)
    assert f"SCRIPT RESUMED step={saved} world=2" in worker_logs(k, name)
    status = k.json("tj", name)["status"]
    assert status["progress"]["step"] == 150 and status["evaluation"]["latest"]["accuracy"]["value"] > 0.9
    assert status["goodput"]["stepsRedone"] <= 2, status["goodput"]  # two SIGTERM checkpoints: a step each
    exported = json.loads((volume / "model" / "metadata.json").read_text())
    assert exported["step"] == 150 and exported["workload"] == "script"

    # Its exported model is a second job's init.fromJob: loaded, pinned in the status, measured first.
    k.apply(_job(tuned, "learn-rule", script, ["--steps", "20"], claim=claim, init={"fromJob": name}))
    wait_phase(k, tuned, "Succeeded", timeout=300)
    second = k.json("tj", tuned)["status"]
    assert second["initializedFrom"]["job"] == name and second["initializedFrom"]["sha256"] == exported["sha256"]
    baseline = second["evaluation"]["baseline"]["accuracy"]["value"]
    assert baseline == status["evaluation"]["latest"]["accuracy"]["value"]  # the same weights, the same data


def test_a_sweep_over_a_users_script_shipped_with_script_ends_with_the_best_trials_values(
    k: Kubectl, operator: OperatorProcess, real_node: object, tmp_path: Path
) -> None:
    script = write_script(tmp_path)
    sweep = {"apiVersion": "ludus.dev/v1alpha1", "kind": "Sweep", "metadata": {"name": "rule"},
             "spec": {"template": {**script_spec("placeholder", script, ["--steps", "30"], workers=1, nproc=1),
                                   "objective": {"metric": "accuracy", "goal": "maximize"}},
                      "parameters": [{"name": "lr", "type": "categorical", "values": ["0.0001", "0.5"]}],
                      "algorithm": {"name": "grid", "seed": 1}, "maxTrials": 2, "parallelTrials": 1}}
    manifest = tmp_path / "sweep.yaml"
    manifest.write_text(yaml.safe_dump(sweep))
    applied = ludus(k.kubeconfig, "sweep", "apply", "-f", str(manifest), "--script", str(script),
                    "-n", k.namespace or "")
    assert applied.returncode == 0, applied.stderr
    wait_for(lambda: (k.json("sweep", "rule").get("status") or {}).get("phase") in ("Succeeded", "Failed"),
             timeout=400, interval=2, what="the sweep to end")
    status = k.json("sweep", "rule")["status"]
    assert status["phase"] == "Succeeded" and status["succeeded"] == 2, status
    best = status["best"]
    assert best["parameters"] == {"lr": "0.5"} and best["value"] > 0.9, best
    assert "SCRIPT lr=0.5 corrupt=False" in worker_logs(k, best["name"])  # the trial ran with its value
    shown = ludus(k.kubeconfig, "sweep", "best", "rule", "-o", "json", "-n", k.namespace or "")
    assert shown.returncode == 0 and json.loads(shown.stdout)["parameters"] == {"lr": "0.5"}, shown.stdout


@pytest.mark.parametrize("heading", ["### Hugging Face `transformers.Trainer`", "### PyTorch Lightning"],
                         ids=["transformers", "lightning"])
def test_a_framework_script_from_the_docs_runs_with_ludus_run_on_two_pods(
    cluster: TestCluster, k: Kubectl, operator: OperatorProcess, real_node: object, tmp_path: Path, heading: str
) -> None:
    """docs/sdk.md's framework scripts as written: progress, evaluation and goodput in the status, and
    the model exported."""
    script = write_example(heading, tmp_path / "train.py")
    done = subprocess.run([LUDUS, "run", str(script), "--name", "framework", "-n", k.namespace or "", "--replicas",
                           "2", "--nproc", "1", "--cpu", "200m", "--memory", "2Gi"],
                          env={**os.environ, "KUBECONFIG": cluster.kubeconfig, "COLUMNS": "200"},
                          text=True, capture_output=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "LUDUS_MODEL " in done.stdout  # rank 0 exported the model (the workers' logs, followed)
    status = k.json("tj", "framework")["status"]
    assert status["progress"]["step"] == status["progress"]["totalSteps"] > 0, status["progress"]
    evaluation = status["evaluation"]
    assert evaluation["objective"]["metric"] == "eval_loss" and evaluation["latest"]["accuracy"]["value"] > 0.9
    assert status["goodput"]["productiveSeconds"] > 0 and status["goodput"]["badput"]["evaluation"]["seconds"] > 0
