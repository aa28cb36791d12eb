"""Sweeps on simulated nodes: the gap between trials, and what a 200-trial sweep costs the operator.

`make bench-sweep` runs it, on its own built-in cluster with kwok nodes and `ludus operator` as a
process. The bench plays the trainers: as soon as a trial's TrainingJob is Running it writes the
trial's evaluation into its status and ends its pod (kwok's exit-code annotation).

- gap: a sweep with parallelTrials 1; from the moment the bench ends trial N's pod to the moment
  the watch shows trial N+1's first pod (kwok's Succeeded, the operator's TrainingJob pass, the
  sweep pass with a TPE suggestion from every earlier trial, the trial's creation, its pods).
- cost: a TPE sweep of 200 trials, 10 at a time: wall time, the operator's CPU seconds and peak
  RSS, and the mean duration of a sweep pass (the operator's own histogram).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from bench import scale  # noqa: E402

RESULTS = REPO / "docs" / "benchmarks" / "sweep.json"
GROUP = "/apis/ludus.dev/v1alpha1/namespaces"
MERGE = "application/merge-patch+json"


def sweep_manifest(name: str, trials: int, parallel: int) -> dict[str, Any]:
    template = scale.job_manifest("template", "x", 1)["spec"]
    return {
        "apiVersion": "ludus.dev/v1alpha1", "kind": "Sweep", "metadata": {"name": name},
        "spec": {
            "template": template,
            "parameters": [{"name": "lr", "type": "float", "min": 1e-4, "max": 1.0, "log": True},
                           {"name": "width", "type": "int", "min": 16, "max": 512, "step": 16}],
            "objective": {"metric": "accuracy", "goal": "maximize"},
            "algorithm": {"name": "tpe", "seed": 1},
            "maxTrials": trials, "parallelTrials": parallel,
        },
    }


def accuracy(values: dict[str, str]) -> float:
    return 1 - ((math.log10(float(values["lr"])) + 2) ** 2) / 20 - ((int(values["width"]) - 128) / 480) ** 2


class Trainers:
    """Ends each trial once it is Running; notes when, and when each trial's first pod appeared."""

    def __init__(self, api: scale.Api, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.ended: dict[str, float] = {}
        self.first_pod: dict[str, float] = {}
        self.most_running = 0
        self.running: set[str] = set()
        self.done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_job(self, kind: str, job: dict[str, Any], at: float) -> None:
        name = job["metadata"]["name"]
        phase = (job.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            self.running.discard(name)
        elif kind != "DELETED":
            self.running.add(name)
        self.most_running = max(self.most_running, len(self.running))
        if phase == "Running" and name not in self.ended:
            self.ended[name] = time.monotonic()
            task = asyncio.create_task(self._end(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def on_pod(self, kind: str, pod: dict[str, Any], at: float) -> None:
        job = pod["metadata"].get("labels", {}).get("ludus.dev/job-name", "")
        if kind == "ADDED" and job not in self.first_pod:
            self.first_pod[job] = at

    def on_sweep(self, kind: str, sweep: dict[str, Any], at: float) -> None:
        if (sweep.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            self.done.set()

    async def _end(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        values = json.loads(job["metadata"]["annotations"]["ludus.dev/trial-parameters"])
        evaluation = {"latest": {"accuracy": {"value": accuracy(values), "step": 100, "epoch": 1}}}
        await self.api.call("PATCH", f"{GROUP}/{self.namespace}/trainingjobs/{name}/status",
                            {"status": {"evaluation": evaluation}}, content_type=MERGE)
        self.ended[name] = time.monotonic()
        await self.api.call("PATCH", f"/api/v1/namespaces/{self.namespace}/pods/{name}-worker-0",
                            {"metadata": {"annotations": {"ludus.dev/kwok-exit-code": "0"}}}, content_type=MERGE)


def _sample(text: str, series: str) -> float:
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series + " ")), 0.0)


async def one_sweep(api: scale.Api, cluster: Any, name: str, trials: int, parallel: int) -> dict[str, Any]:
    namespace = f"sweep-{name}"
    await scale._namespace(api, namespace)
    operator = scale.OperatorArm(cluster, namespace, cluster.logs / f"bench-sweep-{name}-operator.log")
    await operator.ready()
    trainers = Trainers(api, namespace)
    watches = [asyncio.create_task(api.watch(f"{GROUP}/{namespace}/trainingjobs", trainers.on_job)),
               asyncio.create_task(api.watch(f"/api/v1/namespaces/{namespace}/pods", trainers.on_pod)),
               asyncio.create_task(api.watch(f"{GROUP}/{namespace}/sweeps", trainers.on_sweep))]
    cpu0, t0 = operator.sampler.cpu_seconds(), time.monotonic()
    await api.call("POST", f"{GROUP}/{namespace}/sweeps", sweep_manifest(name, trials, parallel))
    await asyncio.wait_for(trainers.done.wait(), timeout=3600)
    wall, cpu = time.monotonic() - t0, operator.sampler.cpu_seconds() - cpu0
    text = await operator.metrics()
    rss = operator.sampler.peak_rss_mb()
    operator.stop()
    for task in watches:
        task.cancel()
    status = (await api.call("GET", f"{GROUP}/{namespace}/sweeps/{name}"))["status"]
    gaps = [trainers.first_pod[f"{name}-{n + 1}"] - trainers.ended[f"{name}-{n}"]
            for n in range(trials - 1)
            if f"{name}-{n}" in trainers.ended and f"{name}-{n + 1}" in trainers.first_pod]
    passes = _sample(text, 'ludus_reconcile_duration_seconds_count{handler="sweep"}')
    pass_seconds = _sample(text, 'ludus_reconcile_duration_seconds_sum{handler="sweep"}')
    return {
        "trials": trials, "parallel_trials": parallel, "phase": status["phase"],
        "succeeded": status["succeeded"], "most_running_seen": trainers.most_running,
        "best": status.get("best", {}).get("value"),
        "wall_s": round(wall, 1), "operator_cpu_s": round(cpu, 2), "operator_peak_rss_mb": round(rss, 1),
        "sweep_passes": passes, "mean_sweep_pass_ms": round(1000 * pass_seconds / passes, 1) if passes else None,
        "gap_s": {"median": round(statistics.median(gaps), 2), "p90": round(scale.percentile(gaps, 90), 2),
                  "max": round(max(gaps), 2), "n": len(gaps)} if parallel == 1 and gaps else None,
    }


async def run(gap_trials: int, cost_trials: int, cost_parallel: int) -> dict[str, Any]:
    cluster = scale.bench_cluster()
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "crd" / "sweeps.ludus.dev.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/sweeps.ludus.dev", "--timeout=60s")
    api = scale.Api(cluster.kubeconfig)
    try:
        gap = await one_sweep(api, cluster, "gap", gap_trials, 1)
        cost = await one_sweep(api, cluster, "cost", cost_trials, cost_parallel)
        return {"gap": gap, "cost": cost}
    finally:
        await api.close()
        cluster.down(quiet=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gap-trials", type=int, default=30)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.time()
    result = asyncio.run(run(args.gap_trials, args.trials, args.parallel))
    scale.write_document("bench-sweep", started, result, args.output)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
