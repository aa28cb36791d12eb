"""A TrainingJob's life on the real control plane: pods, scheduling, status, restarts, cleanup."""

from __future__ import annotations

from typing import Any

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job

JOB_LABEL = "ludus.dev/job-name"


def _job(k: Kubectl, name: str) -> dict[str, Any]:
    return k.json("tj", name)


def _phase(k: Kubectl, name: str) -> str:
    return (_job(k, name).get("status") or {}).get("phase", "")


def _workers(k: Kubectl, name: str) -> list[dict[str, Any]]:
    return k.items("pods", f"{JOB_LABEL}={name},ludus.dev/role=worker")


def _exit(k: Kubectl, pod: str, code: int) -> None:
    """Make kwok end a running pod with this exit code (see devcluster/config/kwok-stages.yaml)."""
    k.run("annotate", "pod", pod, f"ludus.dev/kwok-exit-code={code}", "--overwrite")


def _wait_running(k: Kubectl, name: str, workers: int) -> None:
    wait_for(lambda: _job(k, name).get("status", {}).get("workers") == f"{workers}/{workers}"
             and _phase(k, name) == "Running", what=f"{name} Running {workers}/{workers}")


def test_two_worker_gpu_job_runs_on_gpu_nodes_and_succeeds(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("gpus").workers(2).gpus(4).on_fake_nodes().manifest())
    _wait_running(k, "gpus", 2)

    svc = k.json("service", "gpus")
    assert svc["spec"]["clusterIP"] == "None"
    pods = _workers(k, "gpus")
    assert sorted(p["metadata"]["name"] for p in pods) == ["gpus-worker-0", "gpus-worker-1"]
    for pod in pods:
        assert pod["spec"]["nodeName"].startswith("kwok-gpu-"), "the scheduler bound a GPU pod to a CPU node"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"
    table = k.run("get", "tj", "gpus").stdout
    assert "Running" in table and "2/2" in table

    for pod in pods:
        _exit(k, pod["metadata"]["name"], 0)
    wait_for(lambda: _phase(k, "gpus") == "Succeeded", what="Succeeded")
    status = _job(k, "gpus")["status"]
    assert status["completionTime"] and status["succeeded"] == 2
    assert {c["type"]: c["status"] for c in status["conditions"]}["Succeeded"] == "True"
    # cleanPodPolicy Running: the rendezvous store (still running) is removed.
    wait_for(lambda: k.get_or_none("pod", "gpus-rdzv") is None, what="store cleaned up")
    events = k.run("get", "events", "--field-selector", "involvedObject.name=gpus").stdout
    assert "AllWorkersSucceeded" in events


def test_cpu_pods_need_no_gpu_node(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("cpu").workers(2).on_fake_nodes().manifest())
    _wait_running(k, "cpu", 2)
    assert all("nvidia.com/gpu" not in p["spec"]["containers"][0]["resources"]["requests"] for p in _workers(k, "cpu"))


def test_a_failed_worker_is_recreated_under_on_failure(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("retry").workers(2).on_fake_nodes().manifest())
    _wait_running(k, "retry", 2)
    old_uid = k.json("pod", "retry-worker-1")["metadata"]["uid"]
    _exit(k, "retry-worker-1", 1)

    def replaced() -> bool:
        pod = k.get_or_none("pod", "retry-worker-1")
        return bool(pod and pod["metadata"]["uid"] != old_uid and pod["status"].get("phase") == "Running")

    wait_for(replaced, what="worker 1 replaced")
    _wait_running(k, "retry", 2)
    status = _job(k, "retry")["status"]
    assert status["restarts"] == 1
    restarting = next(c for c in status["conditions"] if c["type"] == "Restarting")
    assert restarting["reason"] == "AllWorkersRunning" or restarting["status"] == "False"
    assert "WorkerFailed" in k.run("get", "events", "--field-selector", "involvedObject.name=retry").stdout
    assert len(_workers(k, "retry")) == 2


def test_a_failed_worker_fails_the_job_under_never(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("never").workers(2).policy("Never").on_fake_nodes().manifest())
    _wait_running(k, "never", 2)
    _exit(k, "never-worker-0", 3)
    wait_for(lambda: _phase(k, "never") == "Failed", what="Failed")
    failed = next(c for c in _job(k, "never")["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "RestartPolicyNever" and "exit code 3" in failed["message"]
    # The other worker, still running, is stopped (cleanPodPolicy Running).
    wait_for(lambda: k.get_or_none("pod", "never-worker-1") is None, what="running worker cleaned")


def test_deleting_the_job_garbage_collects_pods_and_service(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("gc").workers(2).on_fake_nodes().manifest())
    _wait_running(k, "gc", 2)
    k.run("delete", "tj", "gc", "--wait=true", "--timeout=60s")
    wait_for(lambda: not k.items("pods", f"{JOB_LABEL}=gc"), timeout=90, what="pods garbage-collected")
    wait_for(lambda: k.get_or_none("service", "gc") is None, timeout=90, what="service garbage-collected")
