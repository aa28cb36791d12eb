"""Pytest fixtures for tests on a cluster: the built-in one, or one named by KUBECONFIG.

LUDUS_TEST_EXISTING_CLUSTER=1 runs the suite against the cluster in KUBECONFIG
(kind, or a real one) instead of starting the built-in control plane; then
LUDUS_TEST_CONTEXT must name its context, so the suite never touches a
cluster by accident.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devcluster import claim
from devcluster.cluster import Cluster
from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import CRD, CT_CRD, SWEEP_CRD, OperatorProcess
from devcluster.paths import binary


@dataclass
class TestCluster:
    __test__ = False  # a fixture value, not a test class
    kubectl: Kubectl
    built_in: Cluster | None

    @property
    def kubeconfig(self) -> str:
        return self.kubectl.kubeconfig


def _existing_cluster() -> TestCluster:
    kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    kubectl_bin = shutil.which("kubectl") or str(binary("kubectl"))
    kubectl = Kubectl(kubectl_bin, kubeconfig)
    context = kubectl.run("config", "current-context").stdout.strip()
    allowed = os.environ.get("LUDUS_TEST_CONTEXT")
    if context != allowed:
        pytest.exit(
            f"refusing to test against context {context!r}: set LUDUS_TEST_CONTEXT={context} to allow it", 2
        )
    return TestCluster(kubectl, None)


@pytest.fixture(scope="session")
def cluster() -> Iterator[TestCluster]:
    """A running cluster with the CRD installed; the built-in one is stopped afterwards if we started it."""
    if os.environ.get("LUDUS_TEST_EXISTING_CLUSTER") == "1":
        test_cluster = _existing_cluster()
        started = False
    else:
        built_in = Cluster.default()
        try:  # marks the cluster as the suite's: `make demo` and `make cluster-up` refuse it meanwhile
            claim.take(built_in.root, "make test")
        except claim.ClusterInUse as err:
            pytest.exit(f"refusing to test: {err}", 2)
        started = not built_in.is_up()
        built_in.up()
        test_cluster = TestCluster(Kubectl(str(binary("kubectl")), str(built_in.kubeconfig)), built_in)
    kubectl = test_cluster.kubectl
    _refuse_a_clusterwide_operator(kubectl)
    kubectl.run("apply", "-f", str(CRD), "-f", str(SWEEP_CRD), "-f", str(CT_CRD))
    kubectl.run("wait", "--for=condition=Established", "crd/trainingjobs.ludus.dev", "crd/sweeps.ludus.dev",
                "crd/continuoustrainings.ludus.dev", "--timeout=60s")
    wait_for(lambda: kubectl.run("get", "trainingjobs,sweeps,continuoustrainings", "-A", check=False).returncode == 0,
             what="CRDs served")
    yield test_cluster
    if test_cluster.built_in is not None:
        if started and not os.environ.get("LUDUS_KEEP_CLUSTER"):
            test_cluster.built_in.down()
        claim.release(test_cluster.built_in.root)


def _refuse_a_clusterwide_operator(kubectl: Kubectl) -> None:
    """Every test runs its own operator on its own namespace; one already watching every namespace
    (a `make demo` left running, a Helm install) would write the tests' jobs too."""
    deployments = kubectl.json("deployments", "-A", "-l", claim.OPERATOR_SELECTOR)["items"]
    found = claim.clusterwide_operators(deployments)
    if found:
        pytest.exit(f"refusing to test: a cluster-wide Ludus operator is installed ({', '.join(found)}); "
                    "remove it (make demo-down stops the demo's cluster) and run the tests again", 2)


@pytest.fixture
def namespace(cluster: TestCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    labels = getattr(request, "param", None) or {}
    cluster.kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    wait_for(
        lambda: cluster.kubectl.in_namespace(name).run("get", "serviceaccount", "default", check=False).returncode == 0,
        what="the namespace's default ServiceAccount",
    )
    yield name
    cluster.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def k(cluster: TestCluster, namespace: str) -> Kubectl:
    """kubectl in the test's namespace."""
    return cluster.kubectl.in_namespace(namespace)


@pytest.fixture
def operator(
    cluster: TestCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator watching the test's namespace."""
    proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path_factory.mktemp("operator")).start()
    yield proc
    proc.stop()
