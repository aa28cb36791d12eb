"""Gang scheduling on the real API server: with scheduler-plugins' Coscheduling, which the built-in
cluster runs as a second scheduler (its PodGroup CRD from the same pinned module), two jobs that do
not both fit are placed one whole, then the other, never half each. Volcano's scheduler does not run
here: for it a PodGroup CRD shaped like Volcano's checks what Ludus creates."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster

GROUPS = {"volcano": ("scheduling.volcano.sh", "v1beta1"), "coscheduling": ("scheduling.x-k8s.io", "v1alpha1")}


STAND_INS = {"volcano": GROUPS["volcano"]}  # coscheduling's CRD is the real one, installed with the cluster


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
    for group, version in STAND_INS.values():
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
        assert pod_group["spec"]["minMember"] == 3  # the fewest workers that may train, and the store
        assert pod_group["metadata"]["ownerReferences"][0]["name"] == "gang"
        wait_for(lambda: len(k.items("pods", "ludus.dev/role=worker")) == 3, what="3 workers")
        for pod in k.items("pods", "ludus.dev/role=worker"):
            assert pod["spec"]["schedulerName"] != "default-scheduler"
            joined = pod["metadata"].get("labels", {}).get("scheduling.x-k8s.io/pod-group") or \
                pod["metadata"].get("annotations", {}).get("scheduling.k8s.io/group-name")
            assert joined == "gang"
    finally:
        operator.stop()


def _bound_workers(k: Kubectl, job: str) -> int:
    return sum(1 for p in k.items("pods", f"ludus.dev/job-name={job},ludus.dev/role=worker")
               if p["spec"].get("nodeName"))


def test_two_jobs_that_do_not_both_fit_run_one_whole_then_the_other(
    cluster: TestCluster, k: Kubectl, namespace: str, tmp_path: Path
) -> None:
    """Capacity for six 10-CPU workers (the two 32-CPU kwok CPU nodes), two jobs of four: without gangs
    the default scheduler could bind three of each, and neither could start."""
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, ("--gang-scheduling", "coscheduling")).start()
    try:
        for name in ("first", "second"):
            manifest = make_job(name).workers(4).on_fake_nodes().spec(resources={"cpu": "10", "memory": "1Gi"}) \
                .manifest()
            cpu_nodes = {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}]}
            manifest["spec"]["template"]["affinity"] = {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [cpu_nodes]}}}
            k.apply(manifest)
        seen: set[tuple[int, int]] = set()

        def one_whole() -> bool:
            counts = (_bound_workers(k, "first"), _bound_workers(k, "second"))
            seen.add(counts)
            return sorted(counts) == [0, 4]

        wait_for(one_whole, timeout=90, interval=0.5, what="one job placed whole")
        # Past the Permit timeout (10 s) the other is still not placed at all, and never was in part.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            one_whole()
            time.sleep(0.5)
        assert seen <= {(0, 0), (4, 0), (0, 4)}, f"a job was placed in part: {sorted(seen)}"
        running = "first" if _bound_workers(k, "first") == 4 else "second"
        waiting = "second" if running == "first" else "first"
        assert _bound_workers(k, waiting) == 0
        for pod in k.items("pods", f"ludus.dev/job-name={running},ludus.dev/role=worker"):
            k.run("annotate", "pod", pod["metadata"]["name"], "ludus.dev/kwok-exit-code=0")
        wait_for(lambda: (k.json("tj", running).get("status") or {}).get("phase") == "Succeeded", what=running)
        wait_for(lambda: _bound_workers(k, waiting) == 4, timeout=90, what=f"{waiting} placed whole")
        store = k.json("pod", f"{waiting}-rdzv")
        assert store["spec"]["schedulerName"] == "scheduler-plugins-scheduler" and store["spec"].get("nodeName")
    finally:
        operator.stop()


def test_a_gang_scheduler_that_is_not_running_is_named_in_a_condition_and_an_event(
    cluster: TestCluster, k: Kubectl, namespace: str, tmp_path: Path, pod_group_crds: None
) -> None:
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, ("--gang-scheduling", "volcano")).start()
    try:
        k.apply(make_job("orphan").workers(2).on_fake_nodes().manifest())

        def named() -> dict | None:
            conds = (k.json("tj", "orphan").get("status") or {}).get("conditions", [])
            return next((x for x in conds if x["type"] == "PodsScheduled" and x["status"] == "False"), None)

        cond = wait_for(named, timeout=60, what="the missing scheduler named")
        assert cond["reason"] == "SchedulerNotRunning" and "'volcano' running" in cond["message"]
        events = [e for e in k.items("events") if e["involvedObject"]["name"] == "orphan"]
        assert [e["reason"] for e in events].count("SchedulerNotRunning") == 1
    finally:
        operator.stop()


def test_scaling_a_gang_moves_its_minimum(cluster: TestCluster, k: Kubectl, namespace: str, tmp_path: Path) -> None:
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, ("--gang-scheduling", "coscheduling")).start()
    try:
        k.apply(make_job("grow").workers(2).on_fake_nodes().manifest())
        wait_for(lambda: (k.json("tj", "grow").get("status") or {}).get("phase") == "Running", what="grow Running")
        assert k.json("podgroups.scheduling.x-k8s.io", "grow")["spec"]["minMember"] == 3
        k.run("scale", "tj", "grow", "--replicas=3")
        wait_for(lambda: k.json("podgroups.scheduling.x-k8s.io", "grow")["spec"]["minMember"] == 4,
                 what="the minimum moved")
        wait_for(lambda: (k.json("tj", "grow").get("status") or {}).get("workers") == "3/3", what="3 workers")
    finally:
        operator.stop()


@pytest.mark.parametrize(("workers", "cpu", "said"), [(1, "100", "more than any node"), (20, "60", "together")],
                         ids=["a worker larger than any node", "a gang larger than every node together"])
def test_a_job_larger_than_its_nodes_is_named_in_a_condition_and_an_event(
    cluster: TestCluster, k: Kubectl, namespace: str, tmp_path: Path, workers: int, cpu: str, said: str
) -> None:
    """The scheduler only counts nodes without room, as for a busy cluster; the condition says that no
    node (or all the kwok nodes together: 192 CPUs) could ever hold the job."""
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, ("--gang-scheduling", "coscheduling")).start()
    try:
        k.apply(make_job("huge").workers(workers).on_fake_nodes().spec(resources={"cpu": cpu, "memory": "1Gi"})
                .manifest())

        def named() -> dict | None:
            conds = (k.json("tj", "huge").get("status") or {}).get("conditions", [])
            return next((x for x in conds if x["type"] == "PodsScheduled" and x["reason"] == "LargerThanNodes"), None)

        cond = wait_for(named, timeout=60, what="the job named larger than its nodes")
        assert cond["status"] == "False" and said in cond["message"] and "cpu" in cond["message"], cond
        time.sleep(3)  # more passes: still one Warning
        events = [e for e in k.items("events") if e["involvedObject"]["name"] == "huge"]
        assert [e["reason"] for e in events].count("LargerThanNodes") == 1, events
    finally:
        operator.stop()
