"""The built-in cluster a test run uses is its own: `make cluster-up` and `make demo` refuse to take it
over, and the suite refuses a cluster where an operator already watches every namespace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devcluster import claim
from devcluster.kubectl import Kubectl
from devcluster.paths import REPO
from tests.fixtures import TestCluster, _refuse_a_clusterwide_operator


def _run(cluster: TestCluster, *argv: str) -> subprocess.CompletedProcess[str]:
    assert cluster.built_in is not None
    env = {**os.environ, "LUDUS_CLUSTER_DIR": str(cluster.built_in.root)}
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_cluster_up_and_the_demo_refuse_the_cluster_the_suite_holds(cluster: TestCluster) -> None:
    if cluster.built_in is None:
        pytest.skip("the suite runs on an existing cluster (LUDUS_TEST_EXISTING_CLUSTER=1): nothing to claim")
    held = claim.current_claim(cluster.built_in.root)
    assert held is not None and held.pid == os.getpid() and held.user == "make test"
    up = _run(cluster, "-m", "devcluster", "up")
    assert up.returncode == 3, up.stdout + up.stderr
    assert f"in use by make test (pid {os.getpid()}" in up.stderr
    demo = _run(cluster, "scripts/demo.py")
    assert demo.returncode in (2, 3), demo.stdout + demo.stderr  # 2: this host cannot run a real node
    if demo.returncode == 3:
        assert f"refusing to run the demo: the built-in cluster in {cluster.built_in.root} is in use by make test" \
            in demo.stdout
    assert claim.current_claim(cluster.built_in.root) == held  # still the suite's
    assert cluster.built_in.is_up()


def test_the_suite_refuses_a_cluster_with_an_operator_watching_every_namespace(k: Kubectl, namespace: str) -> None:
    labels = dict(label.split("=") for label in claim.OPERATOR_SELECTOR.split(","))
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ludus-operator", "namespace": namespace, "labels": labels},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "operator", "image": "ludus-operator:latest", "args": ["operator"]}]}}},
    }
    k.apply(deployment)
    refused = rf"cluster-wide Ludus operator is installed \({namespace}/ludus-operator\)"
    with pytest.raises(pytest.exit.Exception, match=refused):
        _refuse_a_clusterwide_operator(k)
    scoped = {**deployment, "metadata": {**deployment["metadata"], "name": "scoped"}}
    k.run("delete", "deployment", "ludus-operator")
    scoped["spec"]["template"]["spec"]["containers"][0]["args"] = ["operator", "--namespace", namespace]
    k.apply(scoped)
    _refuse_a_clusterwide_operator(k)  # an operator scoped to a namespace is what every test runs
