"""Checkpoints in object storage on real pods: what a job whose store cannot be used is told, and a save
whose upload is killed. (Resuming across two real nodes after a deleted worker is test_two_nodes'.)"""

from __future__ import annotations

import time
from typing import Any

from devcluster.agents import starts
from devcluster.jobs import kill_pod_processes, phase, real_job, unique, wait_phase, worker_logs
from devcluster.kubectl import Kubectl, wait_for
from devcluster.objectstore import ObjectStore
from devcluster.operator_process import OperatorProcess
from devcluster.paths import free_port
from tests.e2e.conftest import NODE_IP

INTERVAL = 20


def _failed_condition(k: Kubectl, name: str) -> dict[str, Any] | None:
    status = k.json("tj", name).get("status") or {}
    if status.get("phase") != "Failed":
        return None
    return next((c for c in status.get("conditions", []) if c["type"] == "Failed"), None)


def test_a_missing_bucket_wrong_keys_or_no_store_end_the_job_with_a_condition_naming_the_cause(
    k: Kubectl, operator: OperatorProcess, object_store: ObjectStore, s3_checkpoint: dict[str, Any],
    namespace: str, record_property: Any,
) -> None:
    """Each checked by the workers' init container before the trainer starts: the job is Failed with the
    cause as its reason (no worker restarted, no training time spent), and the Secret's key is nowhere."""
    k.apply(object_store.secret("wrong-keys", secret_key="not-the-secret-key"))
    cases = {
        "CheckpointBucketNotFound": {**s3_checkpoint, "uri": f"s3://no-such-bucket/{namespace}"},
        "CheckpointStoreAccessDenied": {**s3_checkpoint, "secretRef": {"name": "wrong-keys"}},
        "CheckpointStoreUnreachable": {**s3_checkpoint, "endpoint": f"http://{NODE_IP}:{free_port()}"},
    }
    names = {reason: unique("badstore") for reason in cases}
    applied = time.monotonic()
    for reason, checkpoint in cases.items():
        body = real_job(names[reason], workers=1, nproc=1)
        body["spec"]["checkpoint"].update(checkpoint)
        k.apply(body)
    for reason, name in names.items():
        condition = wait_for(lambda name=name: _failed_condition(k, name), timeout=120, what=f"{name} Failed")
        record_property(f"seconds_to_{reason}", round(time.monotonic() - applied, 1))
        assert condition["reason"] == reason, condition
        assert "not-the-secret-key" not in condition["message"]
        status = k.json("tj", name)["status"]
        assert status["restarts"] == 0 and "progress" not in status, status
    denied = k.json("tj", names["CheckpointStoreAccessDenied"])["status"]
    assert "AWS_SECRET_ACCESS_KEY" in next(c for c in denied["conditions"] if c["type"] == "Failed")["message"]


def _uncommitted(fs: Any, prefix: str) -> int | None:
    """A checkpoint being uploaded after one was committed: its shards in the store, no COMMITTED marker yet.

    One recursive listing, never `exists` then `ls`: the start-up probe, staging objects and retention come
    and go between two calls (an `ls` of a prefix emptied in between raised FileNotFoundError)."""
    fs.invalidate_cache()
    objects: dict[int, set[str]] = {}
    for path in fs.find(prefix):
        parts = path.removeprefix(prefix).strip("/").split("/")
        if len(parts) == 2 and parts[0].startswith("ckpt-"):
            objects.setdefault(int(parts[0].removeprefix("ckpt-")), set()).add(parts[1])
    committed = [step for step, names in objects.items() if "COMMITTED" in names]
    uploading = [step for step, names in objects.items()
                 if "COMMITTED" not in names and any(n.endswith(".distcp") for n in names)]
    later = [s for s in uploading if committed and s > max(committed)]
    return max(later) if later else None


def test_a_checkpoint_whose_upload_is_killed_is_never_loaded(
    k: Kubectl, operator: OperatorProcess, object_store: ObjectStore, s3_checkpoint: dict[str, Any],
    second_node: Any,
) -> None:
    """Two workers, one per node, with a model large enough that an upload takes a moment: once a checkpoint
    is committed, worker 0 (rank 0, which commits) is SIGKILLed while a later one's shards are in the store
    but its marker is not. The group resumes from the checkpoint before it; the killed one is never
    committed."""
    name = unique("killsave")
    prefix = f"{s3_checkpoint['uri']}/{name}"
    # 8.7 M parameters: a checkpoint of about 100 MiB takes a moment to upload; 6 epochs are 132 steps.
    body = real_job(name, nproc=1, interval=2 * INTERVAL,
                    args=["--epochs", "6", "--hidden", "4096", "--log-every", "5"])
    body["spec"]["checkpoint"].update({**s3_checkpoint, "uri": prefix})
    body["spec"]["template"]["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"ludus.dev/job-name": name, "ludus.dev/role": "worker"}}}]
    k.apply(body)
    fs, where = object_store.filesystem(), prefix.removeprefix("s3://")
    killed: int | None = None
    for _ in range(3):  # the kill may land just after the commit: then it is tried at a later checkpoint
        step = wait_for(lambda: _uncommitted(fs, where) or 0, timeout=300, interval=0.05,
                        what=f"{name} uploading a checkpoint")
        assert kill_pod_processes(f"{name}-worker-0") > 0
        time.sleep(1)
        if not fs.exists(f"{where}/ckpt-{step:012d}/COMMITTED"):
            killed = step
            break
        wait_for(lambda: phase(k, name) == "Running" and _uncommitted(fs, where) is None, timeout=300,
                 what=f"{name} training again")
    assert killed is not None, "every kill landed after its checkpoint's commit"
    wait_phase(k, name, "Succeeded", timeout=600)
    resumed = [s for s in starts(worker_logs(k, name)) if s[0] > 0]
    # Resumed from an earlier committed checkpoint, never from the killed one.
    assert resumed and all(s[0] != killed for s in resumed) and min(s[0] for s in resumed) < killed, (killed, resumed)
    assert not fs.exists(f"{where}/ckpt-{killed:012d}/COMMITTED")
    assert k.json("tj", name)["status"]["restarts"] >= 1
