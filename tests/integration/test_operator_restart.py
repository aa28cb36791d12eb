"""The operator is level-based: restarted mid-job, it picks up without duplicating pods."""

from __future__ import annotations

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job


def test_operator_restart_mid_job_keeps_exactly_its_pods(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("steady").workers(3).on_fake_nodes().manifest())
    wait_for(lambda: (k.json("tj", "steady").get("status") or {}).get("workers") == "3/3", what="3/3")
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in k.items("pods", "ludus.dev/job-name=steady")}
    assert len(uids) == 4

    operator.kill()
    # While it is down, a worker fails: the restarted operator must notice and count it exactly once.
    # Exit 137 (killed by a signal) replaces that one pod; the others must be left alone.
    k.run("annotate", "pod", "steady-worker-2", "ludus.dev/kwok-exit-code=137")
    wait_for(lambda: k.json("pod", "steady-worker-2")["status"]["phase"] == "Failed", what="worker 2 failed")
    operator.start()

    wait_for(lambda: (k.json("tj", "steady").get("status") or {}).get("workers") == "3/3"
             and k.json("pod", "steady-worker-2")["metadata"]["uid"] != uids["steady-worker-2"],
             what="worker 2 replaced after restart")
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in k.items("pods", "ludus.dev/job-name=steady")}
    assert sorted(after) == sorted(uids), "pods were duplicated or lost"
    for name in ("steady-rdzv", "steady-worker-0", "steady-worker-1"):
        assert after[name] == uids[name], f"{name} was recreated needlessly"
    assert k.json("tj", "steady")["status"]["restarts"] == 1

    # A second restart with nothing new changes nothing.
    operator.kill()
    operator.start()
    wait_for(lambda: "ludus_workqueue_depth" in operator.metrics(), what="metrics")
    final = {p["metadata"]["name"]: p["metadata"]["uid"] for p in k.items("pods", "ludus.dev/job-name=steady")}
    assert final == after and k.json("tj", "steady")["status"]["restarts"] == 1
