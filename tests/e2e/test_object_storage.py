"""Checkpoints in object storage on real pods: what a job whose store cannot be used is told. (Resuming
across two real nodes from the store is test_two_nodes'.)"""

from __future__ import annotations

import time
from typing import Any

from devcluster.jobs import real_job, unique
from devcluster.kubectl import Kubectl, wait_for
from devcluster.objectstore import ObjectStore
from devcluster.operator_process import OperatorProcess
from devcluster.paths import free_port
from tests.e2e.conftest import NODE_IP


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
