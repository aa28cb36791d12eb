"""Transfer learning and continuous training on real pods, on claims the local-path provisioner binds.

1. Pretrain digits on classes 0-6; fine-tune on all ten from it (`init.fromJob`, a new head) and
   train the same job from scratch: the fine-tune reaches 0.95 accuracy in fewer steps.
2. A ContinuousTraining over a user's own script (`ludus ct apply --script`) runs on a data version,
   publishes its model as champion (a real pod switches the link on the claim), runs again on a new
   data version warm-started from the champion and trained on inverted labels; that challenger is
   compared with its baseline (the champion's weights on its own data, measured before it trained)
   and rejected: the champion path still holds the first model, byte for byte.
3. The same in object storage: the champion is a pointer object, the warm start a URI.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.jobs import real_job, wait_phase, worker_logs
from devcluster.kubectl import Kubectl, wait_for
from devcluster.node import PROVISIONER, STORAGE_CLASS, RealNode
from devcluster.objectstore import ObjectStore
from devcluster.operator_process import OperatorProcess
from devcluster.tracking import TrackingServer
from tests.e2e.user_script import script_spec, write_script
from tests.integration.test_sdk_cli import ludus

_EVAL = re.compile(r"LUDUS_EVAL epoch=(\d+) step=(\d+) accuracy=([0-9.]+)")
ClaimFactory = Callable[[str], str]


@pytest.fixture
def provisioned_claims(real_node: RealNode, k: Kubectl) -> Iterator[ClaimFactory]:
    """Claims of the default StorageClass: bound by the provisioner when a pod first uses them."""
    made: list[str] = []

    def make(name: str) -> str:
        k.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        made.append(name)
        return name

    yield make
    for name in made:
        k.run("delete", "pvc", name, "--wait=false", check=False)


def host_dir(k: Kubectl, claim: str) -> Path:
    """Where the provisioner put the claim's volume on this host (the real node is this host)."""
    pvc = k.json("pvc", claim)
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["storageClassName"] == STORAGE_CLASS
    pv = k.json("pv", pvc["spec"]["volumeName"])
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    source = pv["spec"].get("hostPath") or pv["spec"].get("local")
    return Path(source["path"])


def steps_to(logs: str, accuracy: float) -> int | None:
    """The step of the first evaluation at or above `accuracy`."""
    return next((int(step) for _, step, value in _EVAL.findall(logs) if float(value) >= accuracy), None)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fine_tuning_from_a_pretrained_job_reaches_095_in_fewer_steps_than_from_scratch(
        k: Kubectl, operator: OperatorProcess, provisioned_claims: ClaimFactory) -> None:
    claim = provisioned_claims("models")
    pre = real_job("pretrain", workers=1, nproc=1, claim=claim,
                   args=["--classes", "0-6", "--epochs", "15", "--lr", "0.003", "--log-every", "1000"])
    pre["spec"]["checkpoint"]["subPath"] = "pretrain"
    k.apply(pre)
    # Both wait for the same budget: all ten digits, 30% of the data, 25 epochs, seed 1.
    budget = ["--fraction", "0.3", "--epochs", "25", "--lr", "0.003", "--batch-size", "16", "--seed", "1",
              "--log-every", "1000"]
    tuned = real_job("finetune", workers=1, nproc=1, claim=claim, args=budget)
    tuned["spec"]["checkpoint"]["subPath"] = "finetune"
    tuned["spec"]["init"] = {"fromJob": "pretrain", "strict": False}
    scratch = real_job("scratch", workers=1, nproc=1, claim=claim, args=budget)
    scratch["spec"]["checkpoint"]["subPath"] = "scratch"
    k.apply(tuned, scratch)
    wait_phase(k, "pretrain", "Succeeded", timeout=400)
    exported = json.loads((host_dir(k, claim) / "pretrain" / "model" / "metadata.json").read_text())
    for name in ("finetune", "scratch"):
        wait_phase(k, name, "Succeeded", timeout=500)
    tuned_steps = steps_to(worker_logs(k, "finetune"), 0.95)
    scratch_steps = steps_to(worker_logs(k, "scratch"), 0.95)
    print(f"\nsteps to 0.95 accuracy: fine-tuned from pretrain {tuned_steps}, from scratch {scratch_steps}")
    assert tuned_steps is not None and scratch_steps is not None, (tuned_steps, scratch_steps)
    assert tuned_steps < scratch_steps
    pinned = k.json("tj", "finetune")["status"]["initializedFrom"]
    assert pinned["job"] == "pretrain" and pinned["claimName"] == claim and pinned["path"] == "pretrain/model"
    assert pinned["sha256"] == exported["sha256"] and pinned["step"] == exported["step"]
    assert pinned["reinitialized"] == ["4.bias", "4.weight"]  # the 7-class head made way for 10 classes
    loaded = [e["message"] for e in k.items("events") if e["involvedObject"]["name"] == "finetune"
              and e["reason"] == "ModelLoaded"]
    assert len(loaded) == 1 and "re-initialised: 4.bias, 4.weight" in loaded[0] and "of pretrain" in loaded[0]


def _ct(name: str, claim: str | None, script: Path) -> dict[str, Any]:
    template = script_spec("placeholder", script, ["--steps", "40"], workers=1, nproc=1, claim=claim)
    return {"apiVersion": "ludus.dev/v1alpha1", "kind": "ContinuousTraining", "metadata": {"name": name},
            "spec": {"template": template, "successfulRunsHistoryLimit": 5,
                     "promotion": {"objective": {"metric": "accuracy", "goal": "maximize"}, "minImprovement": 0.0}}}


def _first_champion(k: Kubectl, body: dict[str, Any], script: Path, tmp_path: Path,
                    kill: OperatorProcess | None = None) -> dict[str, Any]:
    """Apply the resource with `ludus ct apply --script`, start a run on a data version, and wait for it to
    succeed and become the first champion: its status.champion. With `kill`, the operator is SIGKILLed once
    the promotion is decided (status.publishing written) and restarted after its publish pod ended."""
    name = body["metadata"]["name"]
    manifest = tmp_path / "ct.yaml"
    manifest.write_text(yaml.safe_dump(body))
    applied = ludus(k.kubeconfig, "ct", "apply", "-f", str(manifest), "--script", str(script), "-n", k.namespace or "")
    assert applied.returncode == 0, applied.stderr
    k.run("annotate", "ct", name, "ludus.dev/data-version=2026-12-01")
    if kill is not None:
        wait_for(lambda: ((k.json("ct", name).get("status") or {}).get("publishing") or {}).get("job") == f"{name}-0",
                 timeout=400, interval=0.1, what="the promotion decided")
        kill.kill()
        pod = wait_for(lambda: (k.get_or_none("pod", f"{name}-publish-0") or {}).get("status", {}).get("phase")
                       in ("Succeeded", "Failed") and k.json("pod", f"{name}-publish-0"), timeout=120,
                       what="the publish pod ended while the operator was down")
        assert pod["status"]["phase"] == "Succeeded", pod["status"]
        assert not (k.json("ct", name).get("status") or {}).get("champion")  # nobody applied it yet
        kill.start()
    wait_phase(k, f"{name}-0", "Succeeded", timeout=400)
    first: dict[str, Any] = wait_for(lambda: (k.json("ct", name).get("status") or {}).get("champion"), timeout=120,
                                     what="the first champion")
    return first


def _challenger(k: Kubectl, name: str) -> dict[str, Any]:
    """New data, and a run trained on inverted labels from the champion's weights: its TrainingJob as made."""
    k.run("patch", "ct", name, "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/template/args", "value": ["--steps", "40", "--corrupt"]}]))
    k.run("annotate", "ct", name, "ludus.dev/data-version=2026-12-02", "--overwrite")
    second: dict[str, Any] = wait_for(lambda: k.get_or_none("tj", f"{name}-1"), timeout=60, what="a second run")
    return second


def test_continuous_training_over_a_users_script_promotes_a_model_and_rejects_a_worse_run_against_its_baseline(
        k: Kubectl, operator: OperatorProcess, provisioned_claims: ClaimFactory, tmp_path: Path) -> None:
    """A user's own script (not a built-in workload), shipped with `ludus ct apply --script`."""
    claim = provisioned_claims("retrain")
    script = write_script(tmp_path)
    first = _first_champion(k, _ct("rule", claim, script), script, tmp_path)
    assert first["job"] == "rule-0" and first["reason"] == "FirstChampion" and len(first["sha256"]) == 64
    root = host_dir(k, claim) / "rule"
    link = root / "champion"
    assert link.is_symlink() and str(link.readlink()) == "runs/rule-0/model"
    before = sha256(link / "weights.pt")
    assert before == first["sha256"] == json.loads((link / "metadata.json").read_text())["sha256"]

    # New data, and a challenger trained on inverted labels from the champion's weights.
    second = _challenger(k, "rule")
    assert second["metadata"]["annotations"]["ludus.dev/trigger"] == "DataVersion"
    assert second["spec"]["init"]["path"] == "rule/runs/rule-0/model"
    wait_phase(k, "rule-1", "Succeeded", timeout=400)
    assert "SCRIPT lr=0.5 corrupt=True" in worker_logs(k, "rule-1")
    status = wait_for(lambda: (k.json("ct", "rule").get("status") or {}).get("rejections") == 1
                      and k.json("ct", "rule")["status"], timeout=120, what="the challenger judged")
    record = next(r for r in status["runs"] if r["name"] == "rule-1")
    print(f"\nchallenger rule-1: {record['reason']}: {record['message']}")
    # Compared on the same data: the champion's weights, measured by this run before it trained.
    assert record["warmStart"] == "rule-0" and record["baseline"] == {"accuracy": first["evaluation"]["accuracy"]}
    assert record["promoted"] is False and record["reason"] == "NotBetterEnough", record
    assert "its baseline" in record["message"] and record["evaluation"]["accuracy"] < record["baseline"]["accuracy"]
    assert k.json("tj", "rule-1")["status"]["initializedFrom"]["sha256"] == before  # warm-started from it
    assert status["champion"]["job"] == "rule-0"
    events = [e for e in k.items("events") if e["involvedObject"]["name"] == "rule"]
    assert any(e["reason"] == "ModelRejected" and "rule-1" in e["message"] for e in events)
    assert not k.items("pod", "ludus.dev/publish=rule-1")
    assert str(link.readlink()) == "runs/rule-0/model" and sha256(link / "weights.pt") == before
    shown = ludus(k.kubeconfig, "history", "rule", "-n", k.namespace or "default")
    print(shown.stdout)
    assert shown.returncode == 0 and "BASELINE" in shown.stdout and "NotBetterEnough" in shown.stdout
    assert "champion" in shown.stdout


def test_continuous_training_in_object_storage_publishes_a_pointer_and_a_worse_run_leaves_it(
        k: Kubectl, operator: OperatorProcess, s3_checkpoint: dict[str, Any], object_store: ObjectStore,
        tracking_server: TrackingServer, tracking: dict[str, Any], tmp_path: Path) -> None:
    """The template checkpoints to the S3 server: each run under its own prefix, the champion a pointer
    object (champion.json) the publish pod writes in one PUT after verifying the model's checksum, the
    next run warm-started from the champion's model by URI; a worse challenger leaves the pointer as it was.
    In MLflow both runs are versions of one registered model, the champion alias on the first, the second's
    version tagged with why it was rejected. The operator is SIGKILLed between the first promotion's decision
    and its publish pod's end (where the alias moves): the restarted operator applies it once."""
    script = write_script(tmp_path)
    body = _ct("rules3", None, script)
    body["spec"]["template"]["checkpoint"].update(s3_checkpoint)
    body["spec"]["template"]["tracking"] = tracking
    first = _first_champion(k, body, script, tmp_path, kill=operator)
    base = f"{s3_checkpoint['uri']}/rules3"
    assert first["job"] == "rules3-0" and first["modelPath"] == f"{base}/champion.json", first
    fs = object_store.filesystem()
    pointer = json.loads(fs.cat(f"{base}/champion.json".removeprefix("s3://")))
    assert pointer["model"] == first["sourcePath"] == f"{base}/runs/rules3-0/model"
    assert pointer["sha256"] == first["sha256"]
    assert json.loads(fs.cat(f"{pointer['model']}/metadata.json".removeprefix("s3://")))["sha256"] == first["sha256"]

    second = _challenger(k, "rules3")
    assert second["spec"]["init"]["uri"] == f"{base}/runs/rules3-0/model"
    assert second["spec"]["checkpoint"]["uri"] == f"{base}/runs/rules3-1"
    wait_phase(k, "rules3-1", "Succeeded", timeout=400)
    status = wait_for(lambda: (k.json("ct", "rules3").get("status") or {}).get("rejections") == 1
                      and k.json("ct", "rules3")["status"], timeout=120, what="the challenger judged")
    record = next(r for r in status["runs"] if r["name"] == "rules3-1")
    assert record["promoted"] is False and record["reason"] == "NotBetterEnough", record
    assert k.json("tj", "rules3-1")["status"]["initializedFrom"]["sha256"] == first["sha256"]
    assert status["champion"]["job"] == "rules3-0"
    assert json.loads(fs.cat(f"{base}/champion.json".removeprefix("s3://"))) == pointer

    runs = {r["name"]: r["trackingRunId"] for r in status["runs"]}
    model = f"{k.namespace}.rules3"

    def tagged() -> dict[str, dict[str, Any]] | None:
        versions = tracking_server.model_versions(model)
        rejected = versions.get(runs["rules3-1"], {})
        return versions if rejected.get("tags", {}).get("ludus.promoted") == "false" else None

    versions = wait_for(tagged, timeout=120, what="the rejected run's version tagged in MLflow")
    assert len(versions) == 2
    # The operator SIGKILLed between the decision and the alias move: one publication, one Promoted Event.
    promoted = [e for e in k.items("events") if e["involvedObject"]["name"] == "rules3" and e["reason"] == "Promoted"]
    assert sum(int(e.get("count") or 1) for e in promoted) == 1 and len(status["champions"]) == 1
    assert versions[runs["rules3-0"]]["aliases"] == ["champion"]
    assert versions[runs["rules3-0"]]["tags"]["ludus.reason"] == first["reason"]
    assert versions[runs["rules3-1"]]["tags"]["ludus.reason"] == "NotBetterEnough"
    assert versions[runs["rules3-1"]]["aliases"] == []
    wait_for(lambda: not k.items("pods", "ludus.dev/publish"), timeout=60, what="the record pod deleted")
