"""MultiKueue for real: two separate control planes on this host (the built-in cluster as the manager, a
second one as the worker, each with its own etcd, API server, kwok nodes, Kueue and Ludus operator),
joined as Kueue's docs say. A TrainingJob applied to the manager runs on the worker, and what it does
there reaches the manager's copy."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from devcluster.kubectl import Kubectl, wait_for
from devcluster.multicluster import (
    WORKER_NAME,
    condition_true,
    connect,
    flat_kubeconfig,
    multikueue_queue,
    worker_of,
)
from devcluster.operator_process import CRD, OperatorProcess
from devcluster.paths import binary
from tests.factories import make_job
from tests.fixtures import TestCluster


@pytest.fixture(scope="module")
def worker_cluster(cluster: TestCluster) -> Iterator[Kubectl]:
    """The worker control plane, started beside the built-in one and connected to its MultiKueue."""
    if cluster.built_in is None:
        pytest.skip("MultiKueue needs the built-in cluster: the worker control plane is started beside it")
    worker = worker_of(cluster.built_in)
    started = not worker.is_up()
    worker.up()
    kubectl = Kubectl(str(binary("kubectl")), str(worker.kubeconfig))
    kubectl.run("apply", "-f", str(CRD))
    kubectl.run("wait", "--for=condition=Established", "crd/trainingjobs.ludus.dev", "--timeout=60s")
    connect(cluster.kubectl, WORKER_NAME, flat_kubeconfig(worker))
    wait_for(lambda: condition_true(cluster.kubectl.json("multikueuecluster", WORKER_NAME), "Active"), timeout=90,
             what="the worker's MultiKueueCluster Active")
    yield kubectl
    if started and not os.environ.get("LUDUS_KEEP_CLUSTER"):
        worker.down()


@pytest.fixture
def wk(worker_cluster: Kubectl, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    """kubectl in the test's namespace on the worker, where a Ludus operator watches it."""
    worker_cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    proc = OperatorProcess(worker_cluster.kubeconfig, namespace, tmp_path_factory.mktemp("worker-operator")).start()
    yield worker_cluster.in_namespace(namespace)
    proc.stop()
    worker_cluster.run("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def queue(cluster: TestCluster, worker_cluster: Kubectl, namespace: str) -> Iterator[str]:
    with multikueue_queue(cluster.kubectl, worker_cluster, f"mk-{namespace}", namespace, [WORKER_NAME]) as name:
        yield name


def _dispatched(name: str, replicas: int = 2) -> dict[str, Any]:
    manifest = make_job(name).workers(replicas).on_fake_nodes().manifest()
    manifest["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team"}
    manifest["spec"]["managedBy"] = "kueue.x-k8s.io/multikueue"
    return manifest


def _status(k: Kubectl, name: str) -> dict[str, Any]:
    body = k.get_or_none("tj", name)
    return (body or {}).get("status") or {}


def test_a_job_applied_to_the_manager_runs_on_the_worker_and_reports_back(
    k: Kubectl, wk: Kubectl, operator: OperatorProcess, queue: str
) -> None:
    k.apply(_dispatched("far"))
    wait_for(lambda: wk.get_or_none("tj", "far") is not None, timeout=90, what="the job created on the worker")
    copy = wk.json("tj", "far")
    assert "managedBy" not in copy["spec"]  # the worker's operator runs it
    assert copy["metadata"]["labels"]["kueue.x-k8s.io/prebuilt-workload-name"]
    wait_for(lambda: _status(wk, "far").get("workers") == "2/2", timeout=90, what="Running 2/2 on the worker")
    assert len(wk.items("pods", "ludus.dev/job-name=far,ludus.dev/role=worker")) == 2
    assert not k.items("pods", "ludus.dev/job-name=far")  # nothing runs on the manager
    wait_for(lambda: _status(k, "far").get("phase") == "Running" and _status(k, "far").get("workers") == "2/2",
             timeout=60, what="the manager's copy Running 2/2")

    # What the trainer reports on the worker (written there as the operator would) reaches the manager.
    latest = {"accuracy": {"value": 0.91, "step": 40, "epoch": 1}}
    wk.run("patch", "tj", "far", "--subresource=status", "--type=merge",
           "-p", json.dumps({"status": {"evaluation": {"latest": latest}}}))
    wait_for(lambda: (_status(k, "far").get("evaluation") or {}).get("latest", {}).get("accuracy", {}).get("value")
             == 0.91, timeout=60, what="the evaluation on the manager's copy")

    for index in range(2):
        wk.run("annotate", "pod", f"far-worker-{index}", "ludus.dev/kwok-exit-code=0", "--overwrite")
    wait_for(lambda: _status(k, "far").get("phase") == "Succeeded", timeout=90, what="Succeeded on the manager")
    workloads = k.items("workloads.kueue.x-k8s.io", "ludus.dev/job-name=far")
    assert len(workloads) == 1 and condition_true(workloads[0], "Finished"), workloads


def test_deleting_the_managers_job_deletes_the_workers(
    k: Kubectl, wk: Kubectl, operator: OperatorProcess, queue: str
) -> None:
    k.apply(_dispatched("gone"))
    wait_for(lambda: _status(wk, "gone").get("workers") == "2/2", timeout=90, what="Running on the worker")
    k.run("delete", "tj", "gone", "--wait=false")
    wait_for(lambda: wk.get_or_none("tj", "gone") is None, timeout=90, what="the worker's copy deleted")
    wait_for(lambda: not wk.items("pods", "ludus.dev/job-name=gone"), timeout=90, what="its pods gone")


def test_an_unreachable_worker_cluster_is_named_on_the_managers_job(
    cluster: TestCluster, k: Kubectl, wk: Kubectl, worker_cluster: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    """A MultiKueueCluster whose API server nobody serves never becomes Active: a job queued for it says so."""
    lost = f"lost-{namespace}"
    unreachable = _closed_port(flat_kubeconfig(worker_of(cluster.built_in)))
    connect(cluster.kubectl, lost, unreachable)
    try:
        with multikueue_queue(cluster.kubectl, worker_cluster, f"mk-{namespace}", namespace, [lost], active=False):
            k.apply(_dispatched("stuck"))
            wait_for(lambda: _admitted(k, "stuck").get("reason") == "WorkerClusterUnavailable", timeout=90,
                     what="the job naming the unreachable worker cluster")
            said = _admitted(k, "stuck")
            assert said["status"] == "False" and lost in said["message"], said
            assert _status(k, "stuck")["phase"] == "Suspended"
    finally:
        cluster.kubectl.run("delete", "multikueuecluster", lost, "--wait=false", check=False)
        cluster.kubectl.run("delete", "secret", "-n", "kueue-system", lost, "--wait=false", check=False)


def _closed_port(kubeconfig: str) -> str:
    """Point a kubeconfig at a port on this host that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    head, _, tail = kubeconfig.partition("server: https://127.0.0.1:")
    return f"{head}server: https://127.0.0.1:{port}{tail[tail.index(chr(10)):]}"


def _admitted(k: Kubectl, name: str) -> dict[str, Any]:
    return next((c for c in _status(k, name).get("conditions", []) if c["type"] == "Admitted"), {})
