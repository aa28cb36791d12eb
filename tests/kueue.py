"""A Kueue queue for one test: a ResourceFlavor, a ClusterQueue with the quota given (serving only the
test's namespace, preempting lower priorities within it), a LocalQueue, and two PriorityClasses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from devcluster.kubectl import Kubectl, wait_for

LOCAL_QUEUE = "team"


def conditions_true(body: dict[str, Any], type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in (body.get("status") or {}).get("conditions", []))


@contextmanager
def kueue_queue(kubectl: Kubectl, namespace: str, cpu: str, memory: str) -> Iterator[str]:
    """Yields the ClusterQueue's name; PriorityClasses `low-<ns>` (10) and `high-<ns>` (1000) exist meanwhile."""
    flavor, cq = f"flavor-{namespace}", f"cq-{namespace}"
    kubectl.apply(
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": flavor}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": cq}, "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [{"name": flavor, "resources": [
                {"name": "cpu", "nominalQuota": cpu}, {"name": "memory", "nominalQuota": memory}]}]}]}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
         "metadata": {"name": LOCAL_QUEUE, "namespace": namespace}, "spec": {"clusterQueue": cq}},
        *({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": f"{name}-{namespace}"},
           "value": value} for name, value in (("low", 10), ("high", 1000))),
    )
    wait_for(lambda: conditions_true(kubectl.json("clusterqueue", cq), "Active"), what="the ClusterQueue active")
    try:
        yield cq
    finally:
        kubectl.run("delete", "priorityclass", f"low-{namespace}", f"high-{namespace}", "--wait=false", check=False)
        kubectl.run("delete", "localqueue", "-n", namespace, LOCAL_QUEUE, "--wait=false", check=False)
        kubectl.run("delete", "clusterqueue", cq, "resourceflavor", flavor, "--wait=false", check=False)


@contextmanager
def two_flavor_queue(kubectl: Kubectl, namespace: str, cpu: str, memory: str) -> Iterator[tuple[str, str]]:
    """A ClusterQueue whose quota comes in two flavors, each standing for one kwok CPU node: flavor a for
    kwok-cpu-0, flavor b (with a toleration) for kwok-cpu-1, told apart by a label of this test's own.
    Yields the label key and the LocalQueue's name; the labels come off the nodes afterwards."""
    key, cq = f"ludus.dev/pool-{namespace}", f"cq-{namespace}"
    tolerations = [{"key": key, "operator": "Exists", "effect": "NoSchedule"}]
    flavors = {"a": {"nodeLabels": {key: "a"}}, "b": {"nodeLabels": {key: "b"}, "tolerations": tolerations}}
    kubectl.run("label", "node", "kwok-cpu-0", f"{key}=a", "--overwrite")
    kubectl.run("label", "node", "kwok-cpu-1", f"{key}=b", "--overwrite")
    kubectl.apply(
        *({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": f"{f}-{namespace}"},
           "spec": spec} for f, spec in flavors.items()),
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": cq}, "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [
                {"name": f"{f}-{namespace}", "resources": [{"name": "cpu", "nominalQuota": cpu},
                                                           {"name": "memory", "nominalQuota": memory}]}
                for f in flavors]}]}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
         "metadata": {"name": LOCAL_QUEUE, "namespace": namespace}, "spec": {"clusterQueue": cq}},
    )
    wait_for(lambda: conditions_true(kubectl.json("clusterqueue", cq), "Active"), what="the ClusterQueue active")
    try:
        yield key, LOCAL_QUEUE
    finally:
        kubectl.run("delete", "localqueue", "-n", namespace, LOCAL_QUEUE, "--wait=false", check=False)
        kubectl.run("delete", "clusterqueue", cq, "--wait=false", check=False)
        kubectl.run("delete", "resourceflavor", *(f"{f}-{namespace}" for f in flavors), "--wait=false", check=False)
        kubectl.run("label", "node", "kwok-cpu-0", "kwok-cpu-1", f"{key}-", check=False)
