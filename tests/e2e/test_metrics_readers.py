"""The NetworkPolicy's metrics readers, from inside the cluster, on both real nodes.

The operator runs as a pod (the kustomize Deployment's container, the image `make test-images` builds)
on the second node, a real Prometheus (Debian's binary, mounted into a pod) on the first, and the job's
two workers one on each node. The operator's own polls and Prometheus's scrapes pass the job's policy;
a pod in the tenant's namespace that copies Prometheus's label is refused on both nodes. Before,
kube-router policed the first node only and every reader was a host process, which node-local rules
always admit, so the readers' rule itself was never exercised.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.jobs import real_job, unique
from devcluster.kubectl import Kubectl, wait_for
from devcluster.node import RealNode
from devcluster.paths import REPO
from tests.e2e.test_lockdown import SLOW, _connect, _probe_pod
from tests.fixtures import TestCluster

OPERATOR_IMAGE = "ludus-operator:latest"
PROMETHEUS = Path("/usr/bin/prometheus")  # Debian's prometheus package (scripts/host-packages.sh)
PROMETHEUS_PORT = 9091
NODES = ("ludus-node-0", "ludus-node-1")


def _operator_pod(watched: str, own: str, monitoring: str) -> dict[str, Any]:
    """The shipped Deployment's pod (manifests/operator/deployment.yaml), watching `watched` only, with its
    metrics readers' namespaces renamed to this test's, on the second node."""
    deployment = yaml.safe_load((REPO / "manifests" / "operator" / "deployment.yaml").read_text())
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    args = [a.replace('"ludus-system"', json.dumps(own)).replace('"monitoring"', json.dumps(monitoring))
            for a in container["args"] if a != "--all-namespaces"]
    container.update(image=OPERATOR_IMAGE, imagePullPolicy="Never",
                     args=[*args, f"--namespace={watched}", "--progress-interval=2"])
    container.pop("livenessProbe", None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ludus-operator", "namespace": own,
                                                             "labels": template["metadata"]["labels"]},
            "spec": {**template["spec"], "nodeSelector": {"kubernetes.io/hostname": NODES[1]}}}


def _prometheus_pod(targets: list[str]) -> dict[str, Any]:
    """A real Prometheus scraping `targets` every second, as a pod on the first node."""
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
              "scrape_configs": [{"job_name": "trainers", "static_configs": [{"targets": targets}]}]}
    script = (f"printf '%s' '{json.dumps(config)}' > /tmp/prometheus.yml && exec /prometheus/prometheus "
              f"--config.file=/tmp/prometheus.yml --storage.tsdb.path=/tmp/data "
              f"--web.listen-address=:{PROMETHEUS_PORT}")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "prometheus", "labels": {"app.kubernetes.io/name": "prometheus"}},
            "spec": {"nodeName": NODES[0], "automountServiceAccountToken": False,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
                     "containers": [{"name": "prometheus", "image": "ludus-trainer:latest",
                                     "imagePullPolicy": "Never", "command": ["sh", "-c", script],
                                     "volumeMounts": [{"name": "binary", "mountPath": "/prometheus/prometheus",
                                                       "readOnly": True}]}],
                     "volumes": [{"name": "binary", "hostPath": {"path": str(PROMETHEUS), "type": "File"}}]}}


@pytest.fixture
def operator_namespaces(cluster: TestCluster, namespace: str) -> Iterator[tuple[Kubectl, Kubectl]]:
    """The operator's namespace (its ServiceAccount bound to the shipped ClusterRole) and a monitoring one."""
    suffix = uuid.uuid4().hex[:6]
    own, monitoring = f"ops-{suffix}", f"mon-{suffix}"
    role = yaml.safe_load((REPO / "manifests" / "rbac" / "cluster-role.yaml").read_text())
    role["metadata"]["name"] = f"ludus-operator-{own}"
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": role["metadata"]["name"]},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": role["metadata"]["name"]},
               "subjects": [{"kind": "ServiceAccount", "name": "ludus-operator", "namespace": own}]}
    for name in (own, monitoring):
        cluster.kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    cluster.kubectl.apply(role, binding, {"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": "ludus-operator", "namespace": own}})
    try:
        yield cluster.kubectl.in_namespace(own), cluster.kubectl.in_namespace(monitoring)
    finally:
        cluster.kubectl.run("delete", "clusterrolebinding,clusterrole", role["metadata"]["name"], check=False)
        for name in (own, monitoring):
            cluster.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def _query(ip: str, expression: str) -> list[dict[str, Any]]:
    url = f"http://{ip}:{PROMETHEUS_PORT}/api/v1/query?query={urllib.parse.quote(expression)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return list(json.load(response)["data"]["result"])


def test_the_operator_and_prometheus_read_the_trainers_from_pods_on_both_nodes_and_a_lookalike_cannot(
    k: Kubectl, namespace: str, real_node: RealNode, second_node: RealNode,
    operator_namespaces: tuple[Kubectl, Kubectl],
) -> None:
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} is missing: scripts/host-packages.sh installs Debian's prometheus")
    for node in (real_node, second_node):
        node.import_image(OPERATOR_IMAGE)
    own, monitoring = operator_namespaces
    own.apply(_operator_pod(namespace, own.namespace or "", monitoring.namespace or ""))
    wait_for(lambda: any(c.get("ready") for c in (own.json("pod", "ludus-operator").get("status") or {}).get(
        "containerStatuses") or []), timeout=120, what="the operator pod ready")

    name = unique("readers")
    body = real_job(name, args=SLOW)
    body["spec"]["template"]["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"ludus.dev/job-name": name, "ludus.dev/role": "worker"}}}]
    k.apply(body, *(_probe_pod(f"lookalike-{i}", {"app.kubernetes.io/name": "prometheus"}, node)
                    for i, node in enumerate(NODES)))
    wait_for(lambda: (k.json("tj", name).get("status") or {}).get("phase") == "Running", timeout=180,
             what="Running")
    workers = k.items("pods", f"ludus.dev/job-name={name},ludus.dev/role=worker")
    assert {w["spec"]["nodeName"] for w in workers} == set(NODES)
    targets = [f"{w['status']['podIP']}:9090" for w in workers]

    # The operator, a pod on the second node, reads worker 0's progress through the policy.
    wait_for(lambda: ((k.json("tj", name).get("status") or {}).get("progress") or {}).get("step", 0) > 0,
             timeout=120, what="progress read by the operator pod through the policy")
    # Prometheus, a pod in the monitoring namespace on the first node, scrapes both workers.
    monitoring.apply(_prometheus_pod(targets))
    prometheus_ip = wait_for(lambda: (monitoring.json("pod", "prometheus").get("status") or {}).get("podIP"),
                             timeout=60, what="Prometheus's pod IP")

    def scraped() -> dict[str, str]:
        try:
            return {r["metric"]["instance"]: r["value"][1] for r in _query(prometheus_ip, "up")}
        except OSError:
            return {}

    wait_for(lambda: scraped() == {t: "1" for t in targets}, timeout=90, interval=1,
             what=f"Prometheus scraping both workers ({scraped()})")
    steps = _query(prometheus_ip, "ludus_trainer_step")
    assert {r["metric"]["instance"] for r in steps} == set(targets), steps

    # A tenant's pod with Prometheus's label, on either node, reaches neither worker's metrics page.
    for i, node in enumerate(NODES):
        pod = f"lookalike-{i}"
        wait_for(lambda pod=pod: k.json("pod", pod)["status"].get("phase") == "Running", what=f"{pod} on {node}")
        refused = _connect(k, pod, targets)
        assert all(v != "open" for v in refused.values()), (pod, node, refused)
    k.run("delete", "tj", name, "--wait=false")
