"""Kueue preemption on real pods: a higher-priority job takes the quota of a running one, which is
suspended through the normal path (SIGTERM, the trainer checkpoints) and, admitted again once the
quota is free, resumes from that checkpoint instead of starting over."""

from __future__ import annotations

from pathlib import Path

from devcluster.jobs import events, progress_step, real_job, unique, wait_phase, wait_step
from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.fixtures import TestCluster
from tests.kueue import LOCAL_QUEUE, kueue_queue

INTERVAL = 20
SLOW = ["--epochs", "30", "--log-every", "1", "--step-delay", "0.1"]


def _queued(body: dict, namespace: str, priority: str) -> dict:
    body["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": LOCAL_QUEUE}
    body["spec"]["template"]["priorityClassName"] = f"{priority}-{namespace}"
    return body


def test_a_preempted_job_checkpoints_and_resumes_from_it_once_admitted_again(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess, real_node: object,
    shared_volume: tuple[str, Path],
) -> None:
    claim, volume = shared_volume
    low, high = unique("low"), unique("high")
    # Room for one digits job (2 workers x 200m and the store's 50m), not for two.
    with kueue_queue(cluster.kubectl, namespace, cpu="600m", memory="10Gi"):
        k.apply(_queued(real_job(low, args=SLOW, claim=claim, interval=INTERVAL), namespace, "low"))
        wait_step(volume, 2 * INTERVAL + 5)
        k.apply(_queued(real_job(high), namespace, "high"))
        wait_for(lambda: k.json("tj", low).get("status", {}).get("phase") == "Suspended", timeout=60,
                 what="the low-priority job suspended by Kueue's preemption")
        reached = progress_step(volume)
        wait_phase(k, high, "Succeeded", timeout=300)
        wait_phase(k, low, "Succeeded", timeout=400)

    history = events(volume)
    resumes = [e for e in history if e["event"] == "start" and e["step"] > 0]
    assert resumes, f"the preempted job started over instead of resuming: {history}"
    assert reached - resumes[0]["step"] <= INTERVAL, (reached, resumes[0])
    final = [e for e in history if e["event"] == "result"]
    assert final and final[-1]["accuracy"] >= 0.95
    status = k.json("tj", low)["status"]
    assert status.get("restarts", 0) == 0  # a preemption is a suspension, not a failure
    reasons = [e["reason"] for e in k.items("events") if e["involvedObject"]["name"] == low]
    assert "Evicted" in reasons and "Admitted" in reasons, reasons
