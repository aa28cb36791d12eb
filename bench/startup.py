"""Where a job's start goes, phase by phase: `make bench-startup` (writes docs/benchmarks/startup.json).

The demo's job (digits, 2 pods x 2 processes, on the real node) is applied --runs times after a discarded
warm-up. Two `kubectl get -w` record when each of the job's pods is created, scheduled and Ready (the
rendezvous store's too) and when the job's phase changes, with the moment each line arrived. A loop (about
every 0.05 s) asks the node's containerd (`ctr`) for the sandbox's and the trainer container's creation
(nanosecond times) and, while the trainer's task lives, its first process's start in /proc (what the
trainer itself counts from). Rank 0's `LUDUS_STARTUP` marks (seconds since that start: the worker process
forked, its imports, the rendezvous, the data and the model, the first step) come from its log. Worker 0's
chain is followed; the other worker's scheduling and the store's readiness show where worker 0 waits. The
end: the last trainer task seen alive to `Succeeded` in the watch. Every figure is the median of the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.real_node import real_node_namespace  # noqa: E402
from devcluster.jobs import real_job  # noqa: E402
from devcluster.kubectl import Kubectl  # noqa: E402
from devcluster.node import RealNode  # noqa: E402
from devcluster.paths import versions  # noqa: E402

DEMO_ARGS = ["--epochs", "30", "--log-every", "5", "--step-delay", "0.03"]
POD_NAME = "io.kubernetes.pod.name"
CONTAINER_NAME = "io.kubernetes.container.name"
KIND = "io.cri-containerd.kind"


def _ctr(node: RealNode, *args: str) -> str:
    return subprocess.run(["ctr", f"--address={node.sock}", "--namespace=k8s.io", *args], capture_output=True,
                          text=True, check=False).stdout


def _epoch(stamp: str) -> float:
    """containerd's RFC 3339 time with nanoseconds, as seconds since the epoch."""
    from datetime import datetime

    head, _, rest = stamp.partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())[:6] or "0"
    return datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{fraction}")


def _boot_time() -> float:
    """The host's boot as seconds since the epoch, to 10 ms (/proc/stat's btime is whole seconds)."""
    return time.time() - float(Path("/proc/uptime").read_text().split()[0])


def _process_start(pid: int, boot: float) -> float | None:
    """When a host process started (its /proc stat), as seconds since the epoch."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


class Watch(threading.Thread):
    """A `kubectl get -w` whose lines are kept with the moment each arrived."""

    def __init__(self, k: Kubectl, *args: str) -> None:
        super().__init__(daemon=True)
        self.proc = subprocess.Popen([k.binary, f"--kubeconfig={k.kubeconfig}",
                                      *(["-n", k.namespace] if k.namespace else []), "get", *args, "-w"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[tuple[float, str]] = []
        self.start()

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.strip()))

    def first(self, test: Callable[[str], bool]) -> float | None:
        return next((t for t, line in list(self.lines) if test(line)), None)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _containers(node: RealNode, pod: str) -> dict[str, dict[str, Any]]:
    """The pod's containers in containerd by role ('sandbox', or the container's name): id and creation."""
    found: dict[str, dict[str, Any]] = {}
    for cid in _ctr(node, "containers", "list", "--quiet", f'labels."{POD_NAME}"=={pod}').split():
        info = json.loads(_ctr(node, "containers", "info", cid) or "{}")
        labels = info.get("Labels") or {}
        role = "sandbox" if labels.get(KIND) == "sandbox" else labels.get(CONTAINER_NAME, "?")
        found[role] = {"id": cid, "created": _epoch(info["CreatedAt"])}
    return found


def _tasks(node: RealNode) -> dict[str, int]:
    """Running tasks: container id -> host PID."""
    tasks = {}
    for line in _ctr(node, "tasks", "list").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "RUNNING":
            tasks[parts[0]] = int(parts[1])
    return tasks


def _startup_marks(k: Kubectl, pod: str) -> dict[str, float]:
    logs = k.run("logs", pod, "-c", "trainer", check=False).stdout
    line = next((x for x in logs.splitlines() if x.startswith("LUDUS_STARTUP ")), None)
    return dict(json.loads(line.split(" ", 1)[1])) if line else {}


def startup_run(k: Kubectl, node: RealNode, boot: float) -> dict[str, float]:
    name = f"start-{uuid.uuid4().hex[:4]}"
    pods = [f"{name}-worker-0", f"{name}-worker-1"]
    ready = '{.status.conditions[?(@.type=="Ready")].status}'
    pod_watch = Watch(k, "pods", "-l", f"ludus.dev/job-name={name}", "-o",
                      "jsonpath={.metadata.name} {.spec.nodeName} " + ready + "{'\\n'}")
    job_watch = Watch(k, "tj", "-o", "jsonpath={.metadata.name} {.status.phase}{'\\n'}")
    time.sleep(0.5)  # both watches listening
    applied = time.time()
    k.apply(real_job(name, args=DEMO_ARGS, interval=20,
                     resources={"cpu": "500m", "memory": "3Gi", "sharedMemory": "256Mi"}))
    alive: dict[str, float] = {}  # trainer container id -> last seen running
    started: dict[str, float] = {}  # pod -> its trainer's first process start
    containers: dict[str, dict[str, dict[str, Any]]] = {}
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and job_watch.first(lambda x: x.startswith(f"{name} Succeeded")
                                                              or x.startswith(f"{name} Failed")) is None:
            now = time.time()
            tasks = _tasks(node)
            for pod in pods:
                if "trainer" not in containers.get(pod, {}):
                    containers[pod] = _containers(node, pod)
                trainer = containers[pod].get("trainer")
                if trainer and trainer["id"] in tasks:
                    alive[trainer["id"]] = now
                    if pod not in started:
                        started[pod] = _process_start(tasks[trainer["id"]], boot) or now
            time.sleep(0.03)
    finally:
        pod_watch.stop()
        job_watch.stop()
    ended = job_watch.first(lambda x: x.startswith(f"{name} "))
    succeeded = job_watch.first(lambda x: x.startswith(f"{name} Succeeded"))
    if succeeded is None or ended is None:
        raise RuntimeError(f"{name} did not succeed in time: {job_watch.lines[-3:]}")
    created = [pod_watch.first(lambda x, p=p: x.split()[:1] == [p]) for p in pods]  # type: ignore[misc]
    scheduled = [pod_watch.first(lambda x, p=p: x.split()[:1] == [p] and len(x.split()) >= 2)  # type: ignore[misc]
                 for p in pods]
    store_ready = pod_watch.first(lambda x: x.split()[:1] == [f"{name}-rdzv"] and x.split()[-1:] == ["True"])
    if None in created or None in scheduled:
        raise RuntimeError(f"{name}: pods not seen created and scheduled: {pod_watch.lines}")
    first = containers[pods[0]]
    origin = started[pods[0]]
    marks = _startup_marks(k, pods[0])
    k.run("delete", "tj", name, "--wait=false")
    result = {
        "apply_to_pod_created_s": created[0] - applied,  # type: ignore[operator]
        "pod_created_to_scheduled_s": scheduled[0] - created[0],  # type: ignore[operator]
        "last_worker_scheduled_after_first_s": max(scheduled) - min(scheduled),  # type: ignore[type-var,operator]
        "scheduled_to_sandbox_created_s": first["sandbox"]["created"] - scheduled[0],  # type: ignore[operator]
        "sandbox_to_container_created_s": first["trainer"]["created"] - first["sandbox"]["created"],
        "container_created_to_started_s": origin - first["trainer"]["created"],
        "apply_to_container_started_s": origin - applied,
        "last_exit_to_succeeded_s": succeeded - max(alive.values()),
    }
    if store_ready is not None:
        result["container_started_to_store_ready_s"] = store_ready - origin
    previous = 0.0
    for mark in ("process", "imports", "rendezvous", "data", "first_step"):
        if mark in marks:
            result[f"trainer_{mark}_s"] = marks[mark] - previous
            previous = marks[mark]
    result["container_started_to_first_step_s"] = marks.get("first_step", float("nan"))
    return result


def summary(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": [round(v, 3) for v in values]}


def import_times() -> list[tuple[str, float]]:
    """`python -X importtime` of what torchrun's agent imports, in the trainer image: the ten costliest
    top-level packages (cumulative seconds)."""
    code = ("import torch.distributed; from torch.distributed.launcher.api import elastic_launch; "
            "import ludus_trainer.cli")
    out = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python", "ludus-trainer:latest", "-X",
                          "importtime", "-c", code], capture_output=True, text=True, check=False).stderr
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if cumulative.isdigit() and not name.startswith(" ") and "." not in name.strip():
            totals[name.strip()] = max(totals.get(name.strip(), 0.0), int(cumulative) / 1e6)
    return sorted(totals.items(), key=lambda kv: -kv[1])[:10]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks" / "startup.json")
    args = parser.parse_args()

    with real_node_namespace("--progress-interval", "2") as bench:
        boot = _boot_time()
        startup_run(bench.k, bench.node, boot)  # warm-up, discarded
        runs = [startup_run(bench.k, bench.node, boot) for _ in range(args.runs)]
    report = {
        "command": "make bench-startup",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {**versions(), "python": platform.python_version()},
        "phases": {key: summary([r[key] for r in runs]) for key in runs[0]},
        "agent_imports_s": dict(import_times()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
