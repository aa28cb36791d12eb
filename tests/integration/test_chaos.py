"""The operator under fire: killed at random moments during a burst, and an API server restart."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
import yaml

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster

BURST = 100


def test_sigkill_during_a_burst_of_100_jobs_converges_with_exactly_their_pods(
    k: Kubectl, operator: OperatorProcess
) -> None:
    rng = random.Random(11)
    small = {"cpu": "100m", "memory": "256Mi"}  # 200 workers must fit the fake nodes
    docs = [
        make_job(f"burst-{i:03d}").workers(2).spec(resources=small).on_fake_nodes().manifest() for i in range(BURST)
    ]
    k.run("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    for _ in range(3):
        time.sleep(rng.uniform(0.5, 4.0))
        operator.kill()
        operator.start()

    def converged() -> bool:
        jobs = k.items("tj")
        return len(jobs) == BURST and all((j.get("status") or {}).get("workers") == "2/2" for j in jobs)

    wait_for(converged, timeout=300, interval=2, what=f"{BURST} jobs Running 2/2")
    jobs = {j["metadata"]["name"]: j for j in k.items("tj")}
    pods = k.items("pods")
    per_job = Counter(p["metadata"]["labels"]["ludus.dev/job-name"] for p in pods)
    assert set(per_job) == set(jobs), "orphan pods, or jobs without pods"
    assert all(count == 3 for count in per_job.values()), "every job has its store and 2 workers, no more"
    names = Counter(p["metadata"]["name"] for p in pods)
    assert max(names.values()) == 1
    for pod in pods:
        owner = pod["metadata"]["ownerReferences"][0]
        assert owner["uid"] == jobs[owner["name"]]["metadata"]["uid"]
    assert all(j["status"]["restarts"] == 0 for j in jobs.values()), "no restart was counted by mistake"
    stuck = [n for n, j in jobs.items() if j["status"]["phase"] != "Running"]
    assert not stuck


def test_an_api_server_restart_is_survived_without_restarting_the_operator(
    cluster: TestCluster, k: Kubectl, operator: OperatorProcess
) -> None:
    if cluster.built_in is None:
        pytest.skip("restarts the built-in cluster's API server")
    k.apply(make_job("outage").workers(2).on_fake_nodes().manifest())
    wait_for(lambda: (k.json("tj", "outage").get("status") or {}).get("workers") == "2/2", what="Running")
    pid = operator.proc.pid if operator.proc else None
    cluster.built_in.restart("kube-apiserver")
    old = k.json("pod", "outage-worker-1")["metadata"]["uid"]
    k.run("annotate", "pod", "outage-worker-1", "ludus.dev/kwok-exit-code=137")
    wait_for(lambda: (k.get_or_none("pod", "outage-worker-1") or {}).get("metadata", {}).get("uid") not in (None, old),
             timeout=120, what="the failed worker replaced after the outage")
    wait_for(lambda: (k.json("tj", "outage").get("status") or {}).get("workers") == "2/2", what="Running again")
    assert operator.proc is not None and operator.proc.pid == pid and operator.proc.poll() is None
    assert k.json("tj", "outage")["status"]["restarts"] == 1
    relists = [line for line in operator.metrics().splitlines() if line.startswith("ludus_pod_watch_relists_total{")]
    assert any(float(line.rsplit(" ", 1)[1]) >= 1 for line in relists), "the pod watch relisted after the outage"
