"""Kueue for real: its controller (built from its pinned module and started with the built-in cluster)
admits, queues and preempts TrainingJobs through the Workloads Ludus makes for them, as Kueue's own job
integrations do for the kinds it knows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devcluster.jobs import PodWatch
from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster
from tests.kueue import LOCAL_QUEUE, conditions_true, kueue_queue, two_flavor_queue


@pytest.fixture
def queue(cluster: TestCluster, namespace: str) -> Iterator[str]:
    """Room for one 4-worker job (4 CPUs and the store's 50m; not 8.1)."""
    with kueue_queue(cluster.kubectl, namespace, cpu="5", memory="20Gi") as cq:
        yield cq


def _queued(name: str, queue_name: str = LOCAL_QUEUE, priority: str | None = None) -> dict[str, Any]:
    builder = make_job(name).workers(4).on_fake_nodes()
    if priority:
        builder._body["spec"]["template"]["priorityClassName"] = priority
    manifest = builder.manifest()
    manifest["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": queue_name}
    return manifest


def _status(k: Kubectl, name: str) -> dict[str, Any]:
    return k.json("tj", name).get("status") or {}


def _admitted(k: Kubectl, name: str) -> dict[str, Any]:
    return next((c for c in _status(k, name).get("conditions", []) if c["type"] == "Admitted"), {})


def _running(k: Kubectl, name: str) -> None:
    wait_for(lambda: _status(k, name).get("phase") == "Running" and _status(k, name).get("workers") == "4/4",
             timeout=90, what=f"{name} Running 4/4")


def _events(k: Kubectl, name: str) -> list[dict[str, Any]]:
    return [e for e in k.items("events") if e["involvedObject"]["name"] == name]


def _finish(k: Kubectl, name: str) -> None:
    for index in range(4):
        k.run("annotate", "pod", f"{name}-worker-{index}", "ludus.dev/kwok-exit-code=0", "--overwrite")
    wait_for(lambda: _status(k, name).get("phase") == "Succeeded", what=f"{name} Succeeded")


def _workload(k: Kubectl, job: str) -> dict[str, Any]:
    items = k.items("workloads.kueue.x-k8s.io", f"ludus.dev/job-name={job}")
    assert len(items) == 1, items
    return items[0]


def test_quota_for_one_job_admits_the_first_queues_the_second_and_admits_it_when_the_first_ends(
    k: Kubectl, operator: OperatorProcess, queue: str
) -> None:
    k.apply(_queued("first"))
    _running(k, "first")
    admitted = _admitted(k, "first")
    assert admitted["status"] == "True" and queue in admitted["message"]
    workload = _workload(k, "first")
    assert workload["metadata"]["ownerReferences"][0]["name"] == "first"
    assert [(s["name"], s["count"]) for s in workload["spec"]["podSets"]] == [("store", 1), ("workers", 4)]

    k.apply(_queued("second"))
    wait_for(lambda: _admitted(k, "second").get("reason") == "Queued" and "insufficient" in _admitted(
        k, "second").get("message", ""), what="second queued, with Kueue's reason")
    assert _status(k, "second")["phase"] == "Suspended"
    assert not k.items("pods", "ludus.dev/job-name=second")
    message = _admitted(k, "second")["message"]
    assert f"LocalQueue {LOCAL_QUEUE}" in message, message
    wait_for(lambda: any(e["reason"] == "Queued" for e in _events(k, "second")), what="a Queued Event")

    _finish(k, "first")
    wait_for(lambda: conditions_true(_workload(k, "first"), "Finished"),
             what="first's Workload finished (quota released)")
    _running(k, "second")
    assert _admitted(k, "second")["status"] == "True"
    assert any(e["reason"] == "Admitted" for e in _events(k, "second"))
    assert k.json("tj", "second")["spec"]["suspend"] is False


def test_a_higher_priority_job_preempts_through_the_suspend_path_and_the_lower_one_resumes_after(
    k: Kubectl, operator: OperatorProcess, queue: str, namespace: str
) -> None:
    k.apply(_queued("low", priority=f"low-{namespace}"))
    _running(k, "low")
    assert _workload(k, "low")["spec"]["priority"] == 10
    k.apply(_queued("high", priority=f"high-{namespace}"))
    _running(k, "high")
    low = k.json("tj", "low")
    assert low["spec"]["suspend"] is True and low["metadata"]["annotations"]["ludus.dev/queue-suspended"] == "true"
    assert low["status"]["phase"] == "Suspended" and not k.items("pods", "ludus.dev/job-name=low")
    evicted = _admitted(k, "low")
    assert evicted["reason"] in ("Evicted", "Queued"), evicted  # Queued once its quota went back
    warning = [e for e in _events(k, "low") if e["reason"] == "Evicted"]
    assert warning and "Preempted" in warning[0]["message"], warning
    assert conditions_true(_workload(k, "low"), "Requeued")

    _finish(k, "high")
    _running(k, "low")  # admitted again: the normal resume path, from its checkpoint on a real node
    assert _admitted(k, "low")["status"] == "True"
    assert _status(k, "low").get("restarts", 0) == 0  # a suspension is not a failure


def test_a_queue_no_localqueue_serves_is_named_in_a_condition_and_an_event(
    k: Kubectl, operator: OperatorProcess, queue: str
) -> None:
    k.apply(_queued("lost", queue_name="no-such-queue"))
    wait_for(lambda: _admitted(k, "lost").get("reason") == "Inadmissible", what="Inadmissible")
    assert "LocalQueue no-such-queue doesn't exist" in _admitted(k, "lost")["message"]
    assert _status(k, "lost")["phase"] == "Suspended" and not k.items("pods", "ludus.dev/job-name=lost")
    wait_for(lambda: any(e["reason"] == "Inadmissible" and "no-such-queue" in e["message"]
                         for e in _events(k, "lost")), what="an Inadmissible Event naming the queue")


def test_scaling_never_runs_more_workers_than_the_quota_admitted_and_says_why_the_job_waits(
    k: Kubectl, operator: OperatorProcess, queue: str
) -> None:
    """Quota for 4 workers; an elastic job admitted with 2 is scaled to 8 (`kubectl scale`, within its
    elastic range): it stops and asks Kueue again, which can never give 8, and the job says so. Scaled
    to 4, its Workload is resized in place and admitted; at no moment did more than 4 workers run."""
    manifest = make_job("grow").workers(2).elastic(1, 8).on_fake_nodes().manifest()
    manifest["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": LOCAL_QUEUE}
    watch = PodWatch(k, "ludus.dev/job-name=grow,ludus.dev/role=worker")
    try:
        k.apply(manifest)
        wait_for(lambda: _status(k, "grow").get("workers") == "2/2", timeout=90, what="grow Running 2/2")
        k.run("scale", "tj", "grow", "--replicas=8")
        wait_for(lambda: any(e["reason"] == "Resized" and "scaled to 8 workers" in e["message"]
                             for e in _events(k, "grow")), what="a Resized Event")
        wait_for(lambda: _admitted(k, "grow").get("reason") == "Inadmissible", what="grow inadmissible at 8")
        said = _admitted(k, "grow")
        assert said["status"] == "False" and "maximum capacity" in said["message"], said
        assert _status(k, "grow")["phase"] == "Suspended" and not k.items("pods", "ludus.dev/job-name=grow")
        assert [(s["name"], s["count"]) for s in _workload(k, "grow")["spec"]["podSets"]] == [
            ("store", 1), ("workers", 8)]

        k.run("scale", "tj", "grow", "--replicas=4")
        wait_for(lambda: _status(k, "grow").get("workers") == "4/4", timeout=90, what="grow Running 4/4")
        assert _admitted(k, "grow")["status"] == "True"
        assert [(s["name"], s["count"]) for s in _workload(k, "grow")["spec"]["podSets"]] == [
            ("store", 1), ("workers", 4)]
    finally:
        watch.stop()
    assert watch.events > 0 and watch.most_running == 4, (watch.events, watch.most_running)


def test_the_pods_run_where_the_admitted_flavor_says_each_on_its_own_nodes(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    """Quota for one 4-worker job in each of two flavors: the first job is admitted on flavor a, the second
    on flavor b; each one's pods carry its flavor's node labels (and b's toleration) and run on its node."""
    with two_flavor_queue(cluster.kubectl, namespace, cpu="5", memory="20Gi") as (key, queue_name):
        k.apply(_queued("first", queue_name))
        _running(k, "first")
        k.apply(_queued("second", queue_name))
        _running(k, "second")
        nodes = {"a": "kwok-cpu-0", "b": "kwok-cpu-1"}
        for job, workers_flavor in (("first", "a"), ("second", "b")):
            # Each pod set has its own flavors: the second job's store (50m) may still fit in flavor a.
            assigned = {a["name"]: a["flavors"]["cpu"].removesuffix(f"-{namespace}")
                        for a in _workload(k, job)["status"]["admission"]["podSetAssignments"]}
            assert assigned["workers"] == workers_flavor, assigned
            pods = k.items("pods", f"ludus.dev/job-name={job}")
            assert len(pods) == 5  # the store and four workers
            for pod in pods:
                flavor = assigned["store" if pod["metadata"]["labels"]["ludus.dev/role"] == "rendezvous" else "workers"]
                assert pod["spec"]["nodeSelector"][key] == flavor, (pod["metadata"]["name"], pod["spec"])
                assert pod["spec"]["nodeName"] == nodes[flavor]
                tolerated = any(t.get("key") == key for t in pod["spec"].get("tolerations") or [])
                assert tolerated == (flavor == "b")
        # Suspended, its pods go; resumed and admitted again, its new pods are placed again.
        k.run("patch", "tj", "first", "--type=merge", "-p", '{"spec": {"suspend": true}}')
        wait_for(lambda: not k.items("pods", "ludus.dev/job-name=first"), what="first's pods gone")
        k.run("patch", "tj", "first", "--type=merge", "-p", '{"spec": {"suspend": false}}')
        _running(k, "first")
        workers = k.items("pods", "ludus.dev/job-name=first,ludus.dev/role=worker")
        assert {p["spec"]["nodeSelector"][key] for p in workers} == {"a"}
