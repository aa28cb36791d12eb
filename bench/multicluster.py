"""MultiKueue dispatch: from apply on the manager to Running on the worker, for 50 TrainingJobs.

`make bench-multicluster` runs it on its own pair of clusters (devcluster/multicluster.py: a manager
control plane and a separate worker control plane on this host, each with Kueue and kwok nodes, and a
`ludus operator` process on each). The 50 jobs (one kwok worker each, quota for all of them) are
created on the manager at once; two watches note when each job's copy on the worker is Running, and
when the manager's copy says Running (MultiKueue copied the worker's status back).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from bench import scale  # noqa: E402
from devcluster.cluster import Cluster  # noqa: E402
from devcluster.kubectl import Kubectl, wait_for  # noqa: E402
from devcluster.multicluster import (  # noqa: E402
    WORKER_NAME,
    condition_true,
    connect,
    flat_kubeconfig,
    multikueue_queue_objects,
    worker_of,
    worker_queue_objects,
)
from devcluster.operator_process import CRD  # noqa: E402
from devcluster.paths import binary, versions  # noqa: E402

RESULTS = REPO / "docs" / "benchmarks" / "multicluster.json"
ROOT = REPO / ".bench-multicluster"
NAMESPACE = "bench-mk"
GROUP = "/apis/ludus.dev/v1alpha1/namespaces"


def dispatched_job(name: str) -> dict[str, Any]:
    manifest = scale.job_manifest(name, NAMESPACE, 1)
    manifest["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team"}
    manifest["spec"]["managedBy"] = "kueue.x-k8s.io/multikueue"
    return manifest


def start_clusters() -> tuple[Cluster, Cluster, Kubectl, Kubectl]:
    manager = Cluster(ROOT)
    manager.down(quiet=True)
    manager.up()
    worker = worker_of(manager)
    worker.up()
    mk, wk = (Kubectl(str(binary("kubectl")), str(c.kubeconfig)) for c in (manager, worker))
    for k in (mk, wk):
        k.run("apply", "-f", str(CRD))
        k.run("wait", "--for=condition=Established", "crd/trainingjobs.ludus.dev", "--timeout=60s")
        k.run("create", "namespace", NAMESPACE)
    connect(mk, WORKER_NAME, flat_kubeconfig(worker))
    wait_for(lambda: condition_true(mk.json("multikueuecluster", WORKER_NAME), "Active"), timeout=90,
             what="the worker's MultiKueueCluster Active")
    wk.apply(*worker_queue_objects("bench", NAMESPACE, "1000", "4Ti", "team"))
    mk.apply(*multikueue_queue_objects("bench", NAMESPACE, [WORKER_NAME], "1000", "4Ti", "team"))
    wait_for(lambda: condition_true(mk.json("clusterqueue", "bench"), "Active"), timeout=90,
             what="the manager's ClusterQueue active")
    return manager, worker, mk, wk


class Running:
    """When each job was first seen Running, by name."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def on_job(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        if kind != "DELETED" and (obj.get("status") or {}).get("phase") == "Running":
            self.at.setdefault(name, now)


async def measure(manager: Cluster, worker: Cluster, n: int) -> dict[str, Any]:
    m_api, w_api = scale.Api(manager.kubeconfig), scale.Api(worker.kubeconfig)
    operators = [scale.OperatorArm(c, NAMESPACE, c.logs / f"bench-multicluster-{role}.log")
                 for c, role in ((manager, "manager"), (worker, "worker"))]
    for operator in operators:
        await operator.ready()
    on_worker, on_manager = Running(), Running()
    path = f"{GROUP}/{NAMESPACE}/trainingjobs"
    watches = [asyncio.create_task(w_api.watch(path, on_worker.on_job)),
               asyncio.create_task(m_api.watch(path, on_manager.on_job))]
    names = [f"mk-{i:03d}" for i in range(n)]
    created: dict[str, float] = {}

    async def create(name: str) -> None:
        await m_api.call("POST", path, dispatched_job(name))
        created[name] = time.monotonic()

    t0 = time.monotonic()
    await asyncio.gather(*(create(name) for name in names))
    deadline = time.monotonic() + scale.JOB_TIMEOUT_S
    while (len(on_worker.at) < n or len(on_manager.at) < n) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for task in watches:
        task.cancel()
    cpu = [round(o.sampler.cpu_seconds(), 2) for o in operators]
    for operator in operators:
        operator.stop()
    await m_api.close()
    await w_api.close()
    worker_latency = [on_worker.at[x] - created[x] for x in names if x in on_worker.at]
    manager_latency = [on_manager.at[x] - created[x] for x in names if x in on_manager.at]
    return {
        "jobs": n,
        "running_on_worker": len(worker_latency),
        "running_on_manager_copy": len(manager_latency),
        "apply_to_worker_running_s": _stats(worker_latency),
        "apply_to_manager_copy_running_s": _stats(manager_latency),
        "all_running_on_worker_s": round(max(on_worker.at.values(), default=t0) - t0, 2),
        "operator_cpu_s": {"manager": cpu[0], "worker": cpu[1]},
    }


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"median": round(scale.percentile(values, 50), 2), "p90": round(scale.percentile(values, 90), 2),
            "max": round(max(values), 2), "min": round(min(values), 2)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="leave both clusters running")
    args = parser.parse_args()
    manager, worker, _, _ = start_clusters()
    try:
        result = asyncio.run(measure(manager, worker, args.jobs))
    finally:
        if not args.keep:
            manager.down(quiet=True)
    record = {"command": "make bench-multicluster", "date": time.strftime("%Y-%m-%d"), "machine": scale.machine(),
              "versions": {**versions(), **scale.package_versions()}, "result": result}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["running_on_worker"] == args.jobs and result["running_on_manager_copy"] == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
