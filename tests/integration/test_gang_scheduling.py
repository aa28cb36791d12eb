"""Gang-scheduling hooks on the real API server, with PodGroup CRDs shaped like Volcano's and
scheduler-plugins' (their schedulers do not run here, so the pods stay unscheduled: the test checks
what Ludus creates, and that the API server accepts it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster

GROUPS = {"volcano": ("scheduling.volcano.sh", "v1beta1"), "coscheduling": ("scheduling.x-k8s.io", "v1alpha1")}


def _pod_group_crd(group: str, version: str) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"podgroups.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": "PodGroup", "plural": "podgroups", "singular": "podgroup"},
                 "versions": [{"name": version, "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "minMember": {"type": "integer", "minimum": 1}}}}}}}]},
    }


@pytest.fixture(scope="module")
def pod_group_crds(cluster: TestCluster) -> Iterator[None]:
    for group, version in GROUPS.values():
        cluster.kubectl.apply(_pod_group_crd(group, version))
        cluster.kubectl.run("wait", "--for=condition=Established", f"crd/podgroups.{group}", "--timeout=60s")
    yield


@pytest.mark.parametrize("gang", list(GROUPS), ids=list(GROUPS))
def test_the_operator_creates_a_pod_group_and_labels_the_workers(
    cluster: TestCluster, k: Kubectl, namespace: str, tmp_path: Path, pod_group_crds: None, gang: str
) -> None:
    group, version = GROUPS[gang]
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, ("--gang-scheduling", gang)).start()
    try:
        k.apply(make_job("gang").workers(3).elastic(2, 4).on_fake_nodes().manifest())
        pod_group = wait_for(lambda: k.get_or_none(f"podgroups.{group}", "gang"), what="the PodGroup")
        assert pod_group["spec"]["minMember"] == 2
        assert pod_group["metadata"]["ownerReferences"][0]["name"] == "gang"
        wait_for(lambda: len(k.items("pods", "ludus.dev/role=worker")) == 3, what="3 workers")
        for pod in k.items("pods", "ludus.dev/role=worker"):
            assert pod["spec"]["schedulerName"] != "default-scheduler"
            joined = pod["metadata"].get("labels", {}).get("scheduling.x-k8s.io/pod-group") or \
                pod["metadata"].get("annotations", {}).get("scheduling.k8s.io/group-name")
            assert joined == "gang"
    finally:
        operator.stop()
