"""End-to-end tests: real pods on the built-in cluster's real node (kubelet, containerd).

They skip, with the reason, where this host cannot run a kubelet or build the images; the
kwok-only integration tests still run there.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.docker_env import docker_problem
from devcluster.kubectl import Kubectl
from devcluster.node import NODE_IP, NODE_LABEL, STATE, RealNode, host_problem
from devcluster.objectstore import ObjectStore
from devcluster.operator_process import OperatorProcess
from devcluster.tracking import TrackingServer
from tests.fixtures import TestCluster, cluster, k, namespace  # noqa: F401 - fixtures

# Short enough that a job of some seconds shows its progress moving.
PROGRESS_INTERVAL = "2"

IMAGES = ("ludus-trainer:latest",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.e2e)


def _problem() -> str | None:
    return host_problem() or docker_problem()


@pytest.fixture(scope="session")
def real_node(cluster: TestCluster) -> RealNode:  # noqa: F811
    problem = _problem()
    if problem:
        pytest.skip(f"no real node here: {problem}")
    if cluster.built_in is None:
        pytest.skip("e2e tests use the built-in cluster's real node")
    node = RealNode(cluster.built_in)
    node.up()
    for image in IMAGES:
        node.import_image(image)
    return node


@pytest.fixture(scope="session")
def second_node(real_node: RealNode) -> RealNode:
    """A second real node (its own kubelet, containerd, bridge and pod subnet), for the rest of the session."""
    node = RealNode(real_node.cluster, 1)
    node.up()
    for image in IMAGES:
        node.import_image(image)
    return node


@pytest.fixture
def operator(
    cluster: TestCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
) -> Iterator[OperatorProcess]:
    """The operator watching the test's namespace, reading progress every PROGRESS_INTERVAL seconds."""
    proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path_factory.mktemp("operator"),
                           ("--progress-interval", PROGRESS_INTERVAL)).start()
    yield proc
    proc.stop()


@pytest.fixture
def shared_volume(real_node: RealNode, k: Kubectl, namespace: str) -> Iterator[tuple[str, Path]]:  # noqa: F811
    """A ReadWriteMany PVC backed by a hostPath PV on the real node: the workers' shared checkpoints."""
    path = STATE / "pv" / namespace
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    pv_name = f"ckpt-{namespace}"
    k.apply(
        {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": "checkpoints"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": NODE_LABEL[0], "operator": "In", "values": [NODE_LABEL[1]]}]}]}},
            },
        },
        {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "checkpoints"},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv_name,
                     "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    yield "checkpoints", path
    k.run("delete", "pvc", "checkpoints", "--wait=false", check=False)
    k.run("delete", "pv", pv_name, "--wait=false", check=False)
    shutil.rmtree(path, ignore_errors=True)


BUCKET = "ludus-e2e"
S3_SECRET = "s3-checkpoints"


@pytest.fixture(scope="session")
def object_store(real_node: RealNode) -> ObjectStore:
    """The cluster's S3 server (SeaweedFS) with the tests' bucket; stopped with the cluster."""
    store = real_node.cluster.object_store()
    store.up()
    store.make_bucket(BUCKET)
    return store


@pytest.fixture
def s3_checkpoint(object_store: ObjectStore, k: Kubectl, namespace: str) -> dict[str, Any]:  # noqa: F811
    """spec.checkpoint for the test's namespace: its own prefix, the store's keys in a Secret, the endpoint
    where the pods reach the store (the first node's bridge)."""
    k.apply(object_store.secret(S3_SECRET))
    return {"uri": f"s3://{BUCKET}/{namespace}", "secretRef": {"name": S3_SECRET},
            "endpoint": object_store.endpoint(NODE_IP)}


@pytest.fixture(scope="session")
def tracking_server(real_node: RealNode) -> TrackingServer:
    """The cluster's MLflow tracking server; stopped with the cluster."""
    server = real_node.cluster.tracking_server()
    server.up()
    return server


@pytest.fixture
def tracking(tracking_server: TrackingServer, namespace: str) -> dict[str, Any]:  # noqa: F811
    """spec.tracking for the test's namespace: the server where the pods reach it (the first node's bridge),
    an experiment of the test's own."""
    return {"uri": tracking_server.url(NODE_IP), "experiment": f"e2e-{namespace}"}
