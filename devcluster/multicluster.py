"""A second, separate control plane beside the built-in cluster, joined to it with Kueue's MultiKueue:
the built-in cluster is the manager (users apply TrainingJobs there), the second one a worker (the jobs
run there, on its own kwok nodes, under its own Kueue and its own Ludus operator).

Set up as Kueue's MultiKueue docs say for real clusters: the worker's kubeconfig in a Secret in the
manager's kueue-system namespace, a MultiKueueCluster naming it, a MultiKueueConfig listing the
clusters, an AdmissionCheck of MultiKueue's controller, and a ClusterQueue that requires that check;
the worker has a ClusterQueue and a LocalQueue of the same name, and the TrainingJob CRD.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from devcluster.cluster import KUEUE_NAMESPACE, Cluster
from devcluster.kubectl import Kubectl, wait_for

KUEUE_API = "kueue.x-k8s.io/v1beta2"
MULTIKUEUE_CONTROLLER = "kueue.x-k8s.io/multikueue"
WORKER_NAME = "worker-1"


def worker_of(manager: Cluster) -> Cluster:
    """The worker cluster's files live under the manager's, so stopping the manager stops it too."""
    return Cluster(manager.root / "worker")


def flat_kubeconfig(cluster: Cluster) -> str:
    """The cluster's kubeconfig with its certificates inline: MultiKueue refuses file paths."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    base = cluster.kubeconfig.parent
    for entry in config["clusters"]:
        path = entry["cluster"].pop("certificate-authority", None)
        if path:
            entry["cluster"]["certificate-authority-data"] = _b64(base / path)
    for entry in config["users"]:
        for key in ("client-certificate", "client-key"):
            path = entry["user"].pop(key, None)
            if path:
                entry["user"][f"{key}-data"] = _b64(base / path)
    return yaml.safe_dump(config)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def connect(manager: Kubectl, name: str, kubeconfig: str) -> None:
    """Tell the manager's MultiKueue about a worker cluster (what an admin does for a real one); a
    kubeconfig for an address nobody serves makes a MultiKueueCluster that never becomes Active."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": KUEUE_NAMESPACE},
              "stringData": {"kubeconfig": kubeconfig}}
    cluster = {"apiVersion": KUEUE_API, "kind": "MultiKueueCluster", "metadata": {"name": name},
               "spec": {"clusterSource": {"kubeConfig": {"locationType": "Secret", "location": name}}}}
    manager.apply(secret, cluster)


def multikueue_queue_objects(name: str, namespace: str, clusters: list[str], cpu: str, memory: str,
                             local_queue: str) -> list[dict[str, Any]]:
    """The manager's side: a MultiKueueConfig over `clusters`, its AdmissionCheck, and a ClusterQueue
    (serving `namespace`) that requires it, with a LocalQueue. The same ClusterQueue and LocalQueue,
    without the check, are the worker's side (`worker_queue_objects`)."""
    return [
        {"apiVersion": KUEUE_API, "kind": "MultiKueueConfig", "metadata": {"name": name},
         "spec": {"clusters": clusters}},
        {"apiVersion": KUEUE_API, "kind": "AdmissionCheck", "metadata": {"name": name},
         "spec": {"controllerName": MULTIKUEUE_CONTROLLER,
                  "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": name}}},
        *worker_queue_objects(name, namespace, cpu, memory, local_queue, admission_check=name),
    ]


def worker_queue_objects(name: str, namespace: str, cpu: str, memory: str, local_queue: str,
                         admission_check: str | None = None) -> list[dict[str, Any]]:
    """A ResourceFlavor, a ClusterQueue with the quota given (only `namespace`), and a LocalQueue."""
    spec: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [{"name": name, "resources": [
            {"name": "cpu", "nominalQuota": cpu}, {"name": "memory", "nominalQuota": memory}]}]}],
    }
    if admission_check:
        spec["admissionChecksStrategy"] = {"admissionChecks": [{"name": admission_check}]}
    return [
        {"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": {"name": name}},
        {"apiVersion": KUEUE_API, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec},
        {"apiVersion": KUEUE_API, "kind": "LocalQueue", "metadata": {"name": local_queue, "namespace": namespace},
         "spec": {"clusterQueue": name}},
    ]


def condition_true(body: dict[str, Any], type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in (body.get("status") or {}).get("conditions", []))


@contextmanager
def multikueue_queue(manager: Kubectl, worker: Kubectl, name: str, namespace: str, clusters: list[str],
                     cpu: str = "64", memory: str = "256Gi", local_queue: str = "team",
                     active: bool = True) -> Iterator[str]:
    """Queues on both sides for one namespace; yields the ClusterQueue's name (the same on both)."""
    worker.apply(*worker_queue_objects(name, namespace, cpu, memory, local_queue))
    manager.apply(*multikueue_queue_objects(name, namespace, clusters, cpu, memory, local_queue))
    if active:
        wait_for(lambda: condition_true(manager.json("clusterqueue", name), "Active"), timeout=90,
                 what=f"the manager's ClusterQueue {name} active (its MultiKueue check and clusters)")
    try:
        yield name
    finally:
        for k, check in ((manager, True), (worker, False)):
            k.run("delete", "localqueue", "-n", namespace, local_queue, "--wait=false", check=False)
            k.run("delete", "clusterqueue", name, "resourceflavor", name, "--wait=false", check=False)
            if check:
                k.run("delete", "admissioncheck", name, "multikueueconfig", name, "--wait=false", check=False)
