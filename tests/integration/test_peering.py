"""Two operator replicas with Kopf peering: one acts, and killing it hands over to the other."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from devcluster.paths import REPO
from tests.factories import make_job
from tests.fixtures import TestCluster

PEERING_CRDS = REPO / "manifests" / "crd" / "kopfpeerings.kopf.dev.yaml"


def _pods_created(proc: OperatorProcess) -> float:
    text = proc.metrics()
    return sum(float(v) for v in re.findall(r'^ludus_pods_created_total\{[^}]*\} (\S+)$', text, re.M))


@pytest.fixture
def replicas(cluster: TestCluster, k: Kubectl, namespace: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    cluster.kubectl.run("apply", "-f", str(PEERING_CRDS))
    cluster.kubectl.run("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
    k.apply({"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "ludus"}})
    procs = tuple(
        OperatorProcess(cluster.kubeconfig, namespace, Path(tmp_path_factory.mktemp(f"operator-{prio}")),
                        ("--peering", "ludus", "--priority", str(prio))).start()
        for prio in (20, 10)
    )
    yield procs  # type: ignore[misc]
    for proc in procs:
        proc.stop()


def test_one_replica_acts_and_a_killed_one_hands_over_within_30s(
    k: Kubectl, replicas: tuple[OperatorProcess, OperatorProcess]
) -> None:
    active, standby = replicas
    peers = wait_for(lambda: len(s := (k.json("kopfpeering", "ludus").get("status") or {})) == 2 and s,
                     what="both replicas in the peering object")
    assert sorted(p["priority"] for p in peers.values()) == [10, 20]

    k.apply(make_job("first").workers(2).on_fake_nodes().manifest())
    wait_for(lambda: (k.json("tj", "first").get("status") or {}).get("phase") == "Running", what="first Running")
    assert _pods_created(active) == 3 and _pods_created(standby) == 0  # store + 2 workers, by one replica

    active.kill()  # SIGKILL: no goodbye in the peering object, its keep-alive just stops
    killed = time.monotonic()
    k.apply(make_job("second").workers(2).on_fake_nodes().manifest())
    wait_for(lambda: len(k.items("pods", "ludus.dev/job-name=second")) == 3, timeout=30,
             what="the standby creating the second job's pods within 30 s")
    handover = time.monotonic() - killed
    wait_for(lambda: (k.json("tj", "second").get("status") or {}).get("phase") == "Running", what="second Running")
    assert _pods_created(standby) == 3
    assert len(k.items("pods", "ludus.dev/job-name=first")) == 3  # nothing of the first job redone
    print(f"hand-over after SIGKILL: {handover:.1f}s")
