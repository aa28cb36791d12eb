"""The set-up the real-pod benchmarks share: the built-in cluster with its real node and the trainer image, a
namespace of the run's own, and the operator as its own process following it."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devcluster.cluster import Cluster
from devcluster.kubectl import Kubectl, wait_for
from devcluster.node import RealNode
from devcluster.operator_process import CRD, OperatorProcess
from devcluster.paths import binary


@dataclass(frozen=True)
class Bench:
    node: RealNode
    k: Kubectl  # in the run's namespace
    namespace: str


@contextmanager
def real_node_namespace(*operator_args: str) -> Iterator[Bench]:
    """Up to the operator running; the operator stopped and the namespace deleted after."""
    cluster = Cluster.default()
    cluster.up()
    node = RealNode(cluster)
    node.up()
    node.import_image("ludus-trainer:latest")
    kubectl = Kubectl(str(binary("kubectl")), str(cluster.kubeconfig))
    kubectl.run("apply", "-f", str(CRD))
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    k = kubectl.in_namespace(namespace)
    wait_for(lambda: k.run("get", "sa", "default", check=False).returncode == 0, what="default SA")
    operator = OperatorProcess(str(cluster.kubeconfig), namespace, Path(tempfile.mkdtemp()), operator_args).start()
    try:
        yield Bench(node, k, namespace)
    finally:
        operator.stop()
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)
