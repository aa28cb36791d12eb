"""Pytest fixtures for tests on a cluster: the built-in one, or one named by KUBECONFIG.

LUDUS_TEST_EXISTING_CLUSTER=1 runs the suite against the cluster in KUBECONFIG
(kind, or a real one) instead of starting the built-in control plane; then
LUDUS_TEST_CONTEXT must name its context, so the suite never touches a
cluster by accident.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.cluster.cluster import Cluster, binary, free_port
from tests.kube import Kubectl, wait_for

REPO = Path(__file__).resolve().parent.parent
CRD = REPO / "manifests" / "crd" / "trainingjobs.ludus.dev.yaml"


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
        started = not built_in.is_up()
        built_in.up()
        test_cluster = TestCluster(Kubectl(str(binary("kubectl")), str(built_in.kubeconfig)), built_in)
    kubectl = test_cluster.kubectl
    kubectl.run("apply", "-f", str(CRD))
    kubectl.run("wait", "--for=condition=Established", "crd/trainingjobs.ludus.dev", "--timeout=60s")
    wait_for(lambda: kubectl.run("get", "trainingjobs", "-A", check=False).returncode == 0, what="CRD served")
    yield test_cluster
    if started and test_cluster.built_in is not None and not os.environ.get("LUDUS_KEEP_CLUSTER"):
        test_cluster.built_in.down()


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


class OperatorProcess:
    """`ludus operator` as its own process, as in production, so a test can kill and restart it."""

    def __init__(self, kubeconfig: str, namespace: str, log_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.kubeconfig, self.namespace, self.extra_args = kubeconfig, namespace, extra_args
        self.log_path = log_dir / f"operator-{namespace}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.health_port = 0

    def start(self) -> OperatorProcess:
        self.metrics_port, self.health_port = free_port(), free_port()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ludus", "operator", "--namespace", self.namespace,
             "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
             *self.extra_args],
            env={**os.environ, "KUBECONFIG": self.kubeconfig},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(self.healthy, timeout=60, what=f"operator /healthz (log: {self.log_path})")
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}; log: {self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def operator(cluster: TestCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator watching the test's namespace."""
    proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path_factory.mktemp("operator")).start()
    yield proc
    proc.stop()
