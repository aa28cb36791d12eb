"""What one tenant's pod reports cannot stop the operator for another tenant.

A tenant who may create pods in their own namespace can give one Ludus's labels and any termination
message. Before, a message of brackets nested thousands deep raised out of the pod watch's parser
(RecursionError), the watch relisted and failed again forever, and no job in any namespace got a
status. Here one namespace holds such pods and another namespace's job must still be reconciled.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from ludus.api import constants as c
from tests.factories import make_job
from tests.fixtures import TestCluster

NESTED = '{"ludusEvaluation":' + "[" * 2000 + "]" * 2000 + "}"
HOSTILE_MESSAGES = [NESTED, '{"ludusEvaluation":' + '{"a":' * 800 + "1" + "}" * 801, "\u0000" * 4000]


@pytest.fixture
def two_namespaces(cluster: TestCluster) -> Iterator[tuple[str, str, str]]:
    """Two tenants' namespaces under one glob: the operator follows them with one cluster-wide pod
    watch, as an operator watching every namespace does (what a hostile pod could stop for all)."""
    prefix = f"hp-{uuid.uuid4().hex[:6]}"
    names = (f"{prefix}-a", f"{prefix}-b")
    for name in names:
        cluster.kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for name in names:
        wait_for(lambda n=name: cluster.kubectl.in_namespace(n).run(  # type: ignore[misc]
            "get", "serviceaccount", "default", check=False).returncode == 0, what="the default ServiceAccount")
    yield f"{prefix}-*", *names
    for name in names:
        cluster.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def _hostile_pod(k: Kubectl, name: str, message: str) -> None:
    k.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {
        c.LABEL_JOB_NAME: "victim", c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_ROLE: c.ROLE_WORKER,
        c.LABEL_REPLICA_INDEX: "0"}},
        "spec": {"nodeSelector": {"ludus.dev/nowhere": "true"},
                 "containers": [{"name": c.CONTAINER_TRAINER, "image": "none"}]}})
    status = {"status": {"phase": "Failed", "containerStatuses": [{
        "name": c.CONTAINER_TRAINER, "image": "none", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": message}}}]}}
    k.run("patch", "pod", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))


def test_hostile_termination_messages_in_one_namespace_do_not_stop_jobs_in_another(
    cluster: TestCluster, two_namespaces: tuple[str, str, str], tmp_path: Path,
) -> None:
    pattern, hostile_ns, other_ns = two_namespaces
    k = cluster.kubectl.in_namespace(hostile_ns)
    operator = OperatorProcess(cluster.kubeconfig, pattern, tmp_path).start()
    try:
        for i, message in enumerate(HOSTILE_MESSAGES):
            _hostile_pod(k, f"victim-worker-{i}", message)
        other = cluster.kubectl.in_namespace(other_ns)
        other.apply(make_job("unharmed").on_fake_nodes().manifest())
        wait_for(lambda: (other.json("tj", "unharmed").get("status") or {}).get("workers") == "1/1",
                 timeout=60, what="the other namespace's job Running 1/1")
        # And after the hostile pods changed again (the watch is still following them).
        k.run("label", "pod", "victim-worker-0", "touched=yes")
        other.apply(make_job("later").on_fake_nodes().manifest())
        wait_for(lambda: (other.json("tj", "later").get("status") or {}).get("workers") == "1/1",
                 timeout=60, what="a job created after the hostile pods Running 1/1")
        assert operator.healthy()
        failed_relists = [line for line in operator.metrics().splitlines()
                          if line.startswith('ludus_pod_watch_relists_total{reason="error"}')]
        assert all(float(line.split()[-1]) == 0 for line in failed_relists), failed_relists
    finally:
        operator.stop()
