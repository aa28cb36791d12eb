"""`make demo-multicluster`: two clusters on this host joined by Kueue's MultiKueue. The digits
TrainingJob is applied to the manager (the built-in control plane, with no node of its own that runs
it) and trains on the worker (a second control plane with a real node, where Ludus is installed as
users install it); its phase, progress and evaluation come back to the manager's copy.

Exit status 0 only when the manager's copy ends Succeeded. `make demo-down` stops both clusters.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from demo import PROGRESS_INTERVAL, say  # noqa: E402

from devcluster import claim  # noqa: E402
from devcluster.cluster import Cluster  # noqa: E402
from devcluster.kubectl import Kubectl, wait_for  # noqa: E402
from devcluster.multicluster import (  # noqa: E402
    WORKER_NAME,
    condition_true,
    connect,
    flat_kubeconfig,
    multikueue_queue,
    worker_of,
)
from devcluster.node import RealNode, host_problem  # noqa: E402
from devcluster.operator_process import CRD, OperatorProcess  # noqa: E402
from devcluster.paths import binary  # noqa: E402

NAMESPACE = "ludus-demo"
JOB = "digits"
EXAMPLE = REPO / "manifests" / "examples" / "digits-multicluster.yaml"
TIMEOUT_SECONDS = 600


def main() -> int:
    problem = host_problem()
    if problem:
        say(f"this machine cannot run the worker's real node: {problem}")
        return 2
    manager = Cluster.default()
    if any(name.startswith("kubelet") for name in manager.state().get("pids", {})):
        say("the built-in cluster runs a real node (make demo?): `make demo-down` first; the worker needs it")
        return 3
    return claim.run_holding(manager.root, "make demo-multicluster", lambda: run(manager), say)


def start(manager: Cluster) -> tuple[Kubectl, Kubectl]:
    say("starting the manager: etcd, kube-apiserver, controllers, kwok, Kueue (the built-in cluster)")
    manager.up()
    worker = worker_of(manager)
    say("starting the worker: a second control plane with its own etcd, API server, Kueue, and a real node")
    worker.up()
    node = RealNode(worker)
    node.up()
    for image in ("ludus-operator:latest", "ludus-trainer:latest"):
        say(f"loading {image} into the worker node's runtime (never pulled)")
        node.import_image(image)
    mk, wk = (Kubectl(str(binary("kubectl")), str(c.kubeconfig)) for c in (manager, worker))
    say("installing Ludus on the worker: kubectl apply -k (scripts/demo-kustomize)")
    wk.run("apply", "-k", str(REPO / "scripts" / "demo-kustomize"))
    arg = {"op": "add", "path": "/spec/template/spec/containers/0/args/-",
           "value": f"--progress-interval={PROGRESS_INTERVAL}"}
    wk.run("-n", "ludus-system", "patch", "deployment/ludus-operator", "--type=json", "-p", json.dumps([arg]))
    wk.run("-n", "ludus-system", "rollout", "status", "deployment/ludus-operator", "--timeout=180s")
    mk.run("apply", "-f", str(CRD))
    mk.run("wait", "--for=condition=Established", "crd/trainingjobs.ludus.dev", "--timeout=60s")
    for k in (mk, wk):
        k.run("create", "namespace", NAMESPACE, check=False)
    say(f"connecting them: the worker's kubeconfig in Secret kueue-system/{WORKER_NAME}, a MultiKueueCluster, "
        "a MultiKueueConfig, an AdmissionCheck, and ClusterQueue 'demo' (on both sides)")
    connect(mk, WORKER_NAME, flat_kubeconfig(worker))
    wait_for(lambda: condition_true(mk.json("multikueuecluster", WORKER_NAME), "Active"), timeout=90,
             what="the worker's MultiKueueCluster Active")
    return mk, wk


def run(manager: Cluster) -> int:
    started = time.monotonic()
    mk, wk = start(manager)
    logs = manager.root / "demo-multicluster"
    logs.mkdir(exist_ok=True)
    say("the manager's Ludus operator: a process here (it keeps the job's Workload; it runs no pods)")
    operator = OperatorProcess(str(manager.kubeconfig), NAMESPACE, logs).start()
    try:
        with multikueue_queue(mk, wk, "demo", NAMESPACE, [WORKER_NAME]):
            return follow(mk.in_namespace(NAMESPACE), wk.in_namespace(NAMESPACE), started)
    finally:
        operator.stop()


def follow(mk: Kubectl, wk: Kubectl, started: float) -> int:
    job = yaml.safe_load(EXAMPLE.read_text())
    for k in (mk, wk):
        k.run("delete", "trainingjob", JOB, "--ignore-not-found", "--wait=true")
    say(f"kubectl apply -f {EXAMPLE.relative_to(REPO)} (to the manager; spec.managedBy: kueue.x-k8s.io/multikueue)")
    applied = time.monotonic()
    mk.apply(job)
    seen: tuple[object, ...] = ()
    status: dict = {}
    was_there = False
    while time.monotonic() - applied < TIMEOUT_SECONDS:
        status = (mk.get_or_none("tj", JOB) or {}).get("status") or {}
        remote = wk.get_or_none("tj", JOB)
        progress = status.get("progress") or {}
        now = (status.get("phase"), status.get("workers"), progress.get("step"), remote is not None)
        if now != seen:
            seen = now
            # MultiKueue removes the worker's copy once the job's Workload is finished.
            where = "on the worker" if remote is not None else "gone from the worker" if was_there else \
                "not on the worker yet"
            was_there = was_there or remote is not None
            say(f"  manager's copy: phase {now[0] or '-'}  workers {now[1] or '-'}  step {now[2] or '-'}  ({where})")
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    print()
    print(mk.run("get", "trainingjob", JOB, "-o", "wide").stdout, end="")
    latest = (status.get("evaluation") or {}).get("latest") or {}
    for metric, value in sorted(latest.items()):
        say(f"  evaluation on the manager's copy: {metric} {value.get('value')}")
    if status.get("phase") != "Succeeded":
        say(f"the manager's copy ended {status.get('phase') or 'without finishing'}")
        return 1
    say(f"TrainingJob {JOB} applied to the manager, trained on the worker, Succeeded in "
        f"{time.monotonic() - applied:.0f}s (demo total {time.monotonic() - started:.0f}s)")
    print(f"\nBoth clusters keep running: manager KUBECONFIG={mk.kubeconfig}, worker KUBECONFIG={wk.kubeconfig}"
          "   (make demo-down stops both)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
