"""Recovery and start-up timings: `make bench-recovery` (writes docs/benchmarks/recovery.json).

Measures, each as the median of --runs runs (spread reported):
- the demo job on real pods: apply -> all workers Running, apply -> Succeeded;
- the demo job with a shared checkpoint volume and slowed steps: worker 0 deleted -> training
  resumed (the group's next `start` event), and the steps redone;
- local torchrun agents (no Kubernetes): one agent SIGKILLed -> survivors resumed, steps redone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.real_node import real_node_namespace  # noqa: E402
from devcluster.agents import Store, progress_steps, start_agent, wait_for_step  # noqa: E402
from devcluster.jobs import (  # noqa: E402
    events,
    progress_step,
    real_job,  # noqa: E402
)
from devcluster.kubectl import Kubectl, wait_for  # noqa: E402
from devcluster.node import STATE  # noqa: E402
from devcluster.paths import versions  # noqa: E402

INTERVAL = 20


def summary(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "runs": [round(v, 2) for v in values]}


def job_status(k: Kubectl, name: str) -> dict[str, Any]:
    return k.json("tj", name).get("status") or {}


def demo_run(k: Kubectl) -> dict[str, float]:
    name = f"digits-{uuid.uuid4().hex[:4]}"
    applied = time.time()
    k.apply(real_job(name, args=["--epochs", "30"], interval=20,
                     resources={"cpu": "500m", "memory": "3Gi", "sharedMemory": "256Mi"}))
    wait_for(lambda: job_status(k, name).get("phase") == "Running" and job_status(k, name).get("workers") == "2/2",
             timeout=300, interval=0.1, what="Running 2/2")
    running = time.time()
    wait_for(lambda: job_status(k, name).get("phase") == "Succeeded", timeout=300, interval=0.2, what="Succeeded")
    done = time.time()
    k.run("delete", "tj", name, "--wait=false")
    return {"apply_to_running_s": running - applied, "apply_to_succeeded_s": done - applied}


def deletion_run(k: Kubectl, namespace: str) -> dict[str, float]:
    name = f"resume-{uuid.uuid4().hex[:4]}"
    volume = STATE / "pv" / f"bench-{name}"
    volume.mkdir(parents=True, exist_ok=True)
    volume.chmod(0o777)
    pv = f"bench-{name}"
    k.apply(
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                  "hostPath": {"path": str(volume)}, "claimRef": {"namespace": namespace, "name": pv}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": pv},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv,
                  "resources": {"requests": {"storage": "1Gi"}}}},
    )
    k.apply(real_job(name, args=["--epochs", "30", "--log-every", "1", "--step-delay", "0.1"], claim=pv,
                     interval=INTERVAL))
    wait_for(lambda: progress_step(volume) >= 2 * INTERVAL + 5, timeout=300, interval=0.1, what="step 45")
    deleted = time.time()
    k.run("delete", "pod", f"{name}-worker-0", "--wait=false")
    reached = progress_step(volume)
    wait_for(lambda: any(e["event"] == "start" and e["time"] > deleted for e in events(volume)),
             timeout=300, interval=0.2, what="training resumed")
    resumed = next(e for e in events(volume) if e["event"] == "start" and e["time"] > deleted)
    wait_for(lambda: job_status(k, name).get("phase") in ("Succeeded", "Failed"), timeout=400, interval=0.5,
             what="finished")
    if job_status(k, name).get("phase") != "Succeeded":
        raise RuntimeError(f"{name} did not succeed: {job_status(k, name)}")
    k.run("delete", "tj", name, "--wait=true")
    k.run("delete", "pvc", pv, "--wait=false")
    k.run("delete", "pv", pv, "--wait=false")
    return {"delete_to_resumed_s": resumed["time"] - deleted, "steps_redone": float(reached - resumed["step"]),
            }


def local_kill_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp_dir, Store() as store:
        tmp = Path(tmp_dir)
        args = ["--workload", "digits", "--epochs", "30", "--log-every", "1", "--checkpoint-interval", str(INTERVAL),
                "--step-delay", "0.03"]
        agents = [start_agent(n, store=store, tmp=tmp, nnodes=(1, 2), nproc=2, checkpoint_dir=tmp / "ckpt",
                              trainer_args=args) for n in ("a", "b")]
        wait_for_step(agents, 2 * INTERVAL + 7)
        killed = time.time()
        agents[1].kill()
        reached = max(progress_steps(agents[0].text()) + progress_steps(agents[1].text()))
        history = lambda: [json.loads(x) for x in (tmp / "ckpt" / "events.jsonl").read_text().splitlines()]  # noqa: E731
        wait_for(lambda: any(e["event"] == "start" and e["time"] > killed for e in history()), timeout=300,
                 interval=0.1, what="resumed")
        resumed = next(e for e in history() if e["event"] == "start" and e["time"] > killed)
        agents[0].wait(timeout=300)
        return {"kill_to_resumed_s": resumed["time"] - killed, "steps_redone": float(reached - resumed["step"])}


def repeat(fn: Callable[[], dict[str, float]], runs: int) -> dict[str, Any]:
    results = [fn() for _ in range(runs)]
    return {key: summary([r[key] for r in results]) for key in results[0]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks" / "recovery.json")
    args = parser.parse_args()

    with real_node_namespace() as bench:
        k = bench.k
        demo_run(k)  # warm-up, discarded
        report = {
            "command": "make bench-recovery",
            "machine": {"cpus": os.cpu_count(), "memory_gib": round(
                os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30),
                        "platform": platform.platform()},
            "versions": {**versions(), "python": platform.python_version()},
            "demo_job": repeat(lambda: demo_run(k), args.runs),
            "worker0_deleted": repeat(lambda: deletion_run(k, bench.namespace), args.runs),
            "local_agent_killed": repeat(local_kill_run, args.runs),
            "checkpoint_interval_steps": INTERVAL,
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
