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
