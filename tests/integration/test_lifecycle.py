"""Restart policies, deadlines, TTL, suspend and disruptions on the real API server.

kwok ends pods with chosen exit codes (the ludus.dev/kwok-exit-code annotation); evictions go
through the real Eviction API and node loss through deleting the node object.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job


def _status(k: Kubectl, name: str) -> dict[str, Any]:
    return k.json("tj", name).get("status") or {}


def _condition(k: Kubectl, name: str, type_: str) -> dict[str, Any]:
    return next((c for c in _status(k, name).get("conditions", []) if c["type"] == type_), {})


def _running(k: Kubectl, name: str, workers: int = 2) -> None:
    wait_for(lambda: _status(k, name).get("phase") == "Running" and _status(k, name).get("workers")
             == f"{workers}/{workers}", what=f"{name} Running")


def _uid(k: Kubectl, pod: str) -> str:
    return str(k.json("pod", pod)["metadata"]["uid"])


def _exit(k: Kubectl, pod: str, code: int) -> None:
    k.run("annotate", "pod", pod, f"ludus.dev/kwok-exit-code={code}", "--overwrite")


def _replaced(k: Kubectl, pod: str, old_uid: str) -> bool:
    body = k.get_or_none("pod", pod)
    return bool(body and body["metadata"]["uid"] != old_uid and body["status"].get("phase") == "Running")


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(137, "replaced"), (3, "replaced"), (1, "Failed")],
    ids=["ExitCode: a signal exit is retried", "ExitCode: a listed code is retried", "ExitCode: code 1 fails the job"],
)
def test_exit_code_policy(k: Kubectl, operator: OperatorProcess, code: int, outcome: str) -> None:
    k.apply(make_job("codes").workers(2).policy("ExitCode", retryable=[3]).on_fake_nodes().manifest())
    _running(k, "codes")
    old = _uid(k, "codes-worker-1")
    _exit(k, "codes-worker-1", code)
    if outcome == "replaced":
        wait_for(lambda: _replaced(k, "codes-worker-1", old), what="worker 1 replaced")
        _running(k, "codes")
        assert _status(k, "codes")["restarts"] == 1
    else:
        wait_for(lambda: _status(k, "codes").get("phase") == "Failed", what="Failed")
        assert _condition(k, "codes", "Failed")["reason"] == "NonRetryableExitCode"


def test_backoff_limit_counts_every_recreation_and_fails_the_job(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("flaky").workers(2).policy("OnFailure", backoff=2).on_fake_nodes().manifest())
    for restart in (1, 2):
        _running(k, "flaky")
        old = _uid(k, "flaky-worker-0")
        _exit(k, "flaky-worker-0", 137)
        wait_for(lambda old=old: _replaced(k, "flaky-worker-0", old), what=f"restart {restart}")
        assert _status(k, "flaky")["restarts"] == restart
    _running(k, "flaky")
    _exit(k, "flaky-worker-0", 137)
    wait_for(lambda: _status(k, "flaky").get("phase") == "Failed", what="Failed")
    failed = _condition(k, "flaky", "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and "restart limit 2" in failed["message"]
    assert _status(k, "flaky")["restarts"] == 2
    wait_for(lambda: k.get_or_none("pod", "flaky-worker-1") is None, what="running worker cleaned up")


def test_an_agent_that_gave_up_restarts_the_whole_group(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("group").workers(2).on_fake_nodes().manifest())
    _running(k, "group")
    before = {p: _uid(k, p) for p in ("group-worker-0", "group-worker-1", "group-rdzv")}
    _exit(k, "group-worker-1", 1)
    wait_for(lambda: all(_replaced(k, p, uid) for p, uid in before.items()), what="every pod recreated")
    _running(k, "group")
    assert _status(k, "group")["restarts"] == 1


def test_an_evicted_worker_is_replaced_as_a_restart(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("evict").workers(2).policy("Never").on_fake_nodes().manifest())
    _running(k, "evict")
    old = _uid(k, "evict-worker-1")
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "evict-worker-1", "namespace": k.namespace}}
    k.run("create", "--raw", f"/api/v1/namespaces/{k.namespace}/pods/evict-worker-1/eviction", "-f", "-",
          input=__import__("json").dumps(eviction))
    wait_for(lambda: _replaced(k, "evict-worker-1", old), what="evicted worker replaced")
    _running(k, "evict")
    assert _status(k, "evict")["restarts"] == 1, "a disruption is replaced even under restartPolicy Never"


def test_active_deadline_fails_the_job_and_stops_its_pods(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("late").workers(2).spec(activeDeadlineSeconds=5).on_fake_nodes().manifest())
    wait_for(lambda: _status(k, "late").get("phase") == "Failed", timeout=60, what="DeadlineExceeded")
    assert _condition(k, "late", "Failed")["reason"] == "DeadlineExceeded"
    wait_for(lambda: not k.items("pods", "ludus.dev/job-name=late"), timeout=60, what="pods stopped")


def test_ttl_after_finished_deletes_the_job(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("ttl").workers(1).spec(ttlSecondsAfterFinished=2).on_fake_nodes().manifest())
    _running(k, "ttl", 1)
    _exit(k, "ttl-worker-0", 0)
    wait_for(lambda: _status(k, "ttl").get("phase") == "Succeeded", what="Succeeded")
    wait_for(lambda: k.get_or_none("tj", "ttl") is None, timeout=60, what="job deleted by TTL")


def test_a_job_another_controller_manages_is_left_alone(k: Kubectl, operator: OperatorProcess) -> None:
    """spec.managedBy names another controller: no pods, no Service, no status, as Kubernetes' Job
    controller leaves a Job managed by someone else. A job beside it in the namespace runs meanwhile."""
    foreign = make_job("foreign").workers(2).on_fake_nodes().manifest()
    foreign["spec"]["managedBy"] = "example.com/other-controller"
    k.apply(foreign)
    k.apply(make_job("ours").workers(2).on_fake_nodes().manifest())
    wait_for(lambda: k.json("tj", "ours").get("status", {}).get("phase") == "Running", what="ours Running")
    assert k.json("tj", "foreign").get("status") is None
    assert not k.items("pods", "ludus.dev/job-name=foreign")
    assert not k.items("services", "ludus.dev/job-name=foreign")


def test_suspend_deletes_pods_keeps_the_job_and_resume_recreates_them(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("pause").workers(2).on_fake_nodes().manifest())
    _running(k, "pause")
    k.run("patch", "tj", "pause", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_for(lambda: _status(k, "pause").get("phase") == "Suspended", what="Suspended")
    wait_for(lambda: not k.items("pods", "ludus.dev/job-name=pause"), what="pods deleted")
    assert _condition(k, "pause", "Suspended")["status"] == "True"
    assert k.get_or_none("tj", "pause") is not None
    k.run("patch", "tj", "pause", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    _running(k, "pause")
    assert _condition(k, "pause", "Suspended")["status"] == "False"
    assert _status(k, "pause")["restarts"] == 0


def test_a_worker_on_a_lost_node_is_replaced(k: Kubectl, operator: OperatorProcess, cluster) -> None:
    """Delete the node under a worker: pod garbage collection fails the pod, Ludus replaces it."""
    node_yaml = cluster.built_in.fake_nodes_yaml() if cluster.built_in else None
    if node_yaml is None:
        pytest.skip("needs the built-in cluster's fake nodes")
    k.apply(make_job("lost").workers(2).on_fake_nodes().manifest())
    _running(k, "lost")
    pod = k.json("pod", "lost-worker-1")
    node, old = pod["spec"]["nodeName"], pod["metadata"]["uid"]
    k.run("delete", "node", node)
    try:
        wait_for(lambda: _replaced(k, "lost-worker-1", old), timeout=120, what="worker on the lost node replaced")
        _running(k, "lost")
        assert _status(k, "lost")["restarts"] >= 1
        reasons = k.run("get", "events", "--field-selector", "involvedObject.name=lost").stdout
        assert "NodeLost" in reasons or "WorkerDeleted" in reasons
    finally:
        cluster.kubectl.run("apply", "-f", "-", input=node_yaml)
        time.sleep(1)
