"""The operator's memory at its documented limits, against the chart's default limit (512 MiB).

`make bench-memory` runs it on its own built-in cluster, `ludus operator` as a process. A tenant can
make the operator hold every object it watches, so what counts is the memory per object, for objects
of ordinary size and of the largest size the CRD admits:

- idle: the operator started, nothing to watch;
- typical: N TrainingJobs of the benchmark's ordinary spec, suspended (no pods: the figure is the
  objects' own cost), once the operator has reconciled them all;
- largest: M TrainingJobs whose spec is as large as the CRD's bounds let a tenant make it in one
  field (`args`: 256 arguments of 4096 characters, 1 MiB), also suspended.

The operator's RSS is read after each phase has settled (VmRSS), and its peak (VmHWM) at the end.
From the two slopes, the table in docs/benchmarks.md gives the memory at the documented limits.

The job index's share of each slope is measured apart: the jobs as the API server lists them (status,
managedFields and all) are reduced by the operator's own `slim_job`, in this process, under
tracemalloc. What the index keeps is then known per object, and the rest of the slope is not the index.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from bench import scale  # noqa: E402
from ludus.api.models import MAX_ARGUMENT  # noqa: E402
from ludus.handlers.trainingjob import slim_job  # noqa: E402

RESULTS = REPO / "docs" / "benchmarks" / "memory.json"
GROUP = "/apis/ludus.dev/v1alpha1/namespaces"
# The chart's default memory limit for the operator, and the documented limits measured against it.
CHART_LIMIT_MB = 512
DOCUMENTED_JOBS = 5000  # TrainingJobs of ordinary size (a Sweep's trials and a ContinuousTraining's runs count)
DOCUMENTED_LARGEST = 20  # and of the largest size a tenant can give one field (each costs ~2 MB)


def suspended(name: str, namespace: str, args: list[str] | None = None) -> dict[str, Any]:
    manifest = scale.job_manifest(name, namespace, 1)
    manifest["spec"]["suspend"] = True
    if args is not None:
        manifest["spec"]["args"] = args
    return manifest


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def settle(api: scale.Api, namespace: str, count: int) -> None:
    """Until every job has a status the operator wrote (Suspended), then a quiet moment."""
    for _ in range(1800):
        listed = await api.call("GET", f"{GROUP}/{namespace}/trainingjobs")
        done = sum(1 for j in listed.get("items") or [] if (j.get("status") or {}).get("phase") == "Suspended")
        if done >= count:
            await asyncio.sleep(5)
            return
        await asyncio.sleep(1)
    raise RuntimeError(f"{namespace}: jobs were not all reconciled")


def index_kb_per_job(bodies: list[dict[str, Any]]) -> float:
    """What the job index keeps per object: `slim_job` of each body decoded from its JSON text (as the
    watch delivers it), measured with tracemalloc (the text itself is not counted)."""
    texts = [json.dumps(body) for body in bodies]
    tracemalloc.start()
    try:
        kept = [slim_job(json.loads(text)) for text in texts]
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size / len(kept) / 1024


async def listed_jobs(api: scale.Api, namespace: str, prefix: str) -> list[dict[str, Any]]:
    listed = await api.call("GET", f"{GROUP}/{namespace}/trainingjobs")
    return [j for j in listed.get("items") or [] if j["metadata"]["name"].startswith(prefix)]


async def create(api: scale.Api, namespace: str, docs: list[dict[str, Any]], at_once: int = 20) -> None:
    for start in range(0, len(docs), at_once):
        await asyncio.gather(*(api.call("POST", f"{GROUP}/{namespace}/trainingjobs", d)
                               for d in docs[start:start + at_once]))


async def run(typical: int, largest: int) -> dict[str, Any]:
    cluster = scale.bench_cluster()
    api = scale.Api(cluster.kubeconfig)
    namespace = "memory"
    try:
        await scale._namespace(api, namespace)
        operator = scale.OperatorArm(cluster, namespace, cluster.logs / "bench-memory-operator.log")
        await operator.ready()
        await asyncio.sleep(5)
        idle = rss_mb(operator.proc.pid)
        await create(api, namespace, [suspended(f"job-{i:05d}", namespace) for i in range(typical)])
        await settle(api, namespace, typical)
        after_typical = rss_mb(operator.proc.pid)
        big_args = ["x" * MAX_ARGUMENT] * 256
        await create(api, namespace, [suspended(f"big-{i:04d}", namespace, big_args) for i in range(largest)],
                     at_once=4)
        await settle(api, namespace, typical + largest)
        after_largest = rss_mb(operator.proc.pid)
        peak = operator.sampler.peak_rss_mb()
        operator.stop()
        index_typical = index_kb_per_job(await listed_jobs(api, namespace, "job-"))
        index_largest = index_kb_per_job(await listed_jobs(api, namespace, "big-")) / 1024
    finally:
        await api.close()
        cluster.down(quiet=True)
    per_typical = (after_typical - idle) / typical
    per_largest = (after_largest - after_typical) / largest
    at_limits = idle + DOCUMENTED_JOBS * per_typical + DOCUMENTED_LARGEST * per_largest
    return {
        "typical_jobs": typical, "largest_jobs": largest,
        "largest_spec_bytes": len(json.dumps(suspended("big-0000", namespace, big_args))),
        "idle_rss_mb": round(idle, 1), "after_typical_rss_mb": round(after_typical, 1),
        "after_largest_rss_mb": round(after_largest, 1), "peak_rss_mb": round(peak, 1),
        "mb_per_typical_job": round(per_typical, 4), "mb_per_largest_job": round(per_largest, 3),
        "index_kb_per_typical_job": round(index_typical, 2), "index_mb_per_largest_job": round(index_largest, 3),
        "documented_limits": {"jobs": DOCUMENTED_JOBS, "of_them_largest": DOCUMENTED_LARGEST},
        "estimated_rss_at_limits_mb": round(at_limits, 1), "chart_limit_mb": CHART_LIMIT_MB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--typical", type=int, default=1000)
    parser.add_argument("--largest", type=int, default=50)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.time()
    result = asyncio.run(run(args.typical, args.largest))
    scale.write_document("bench-memory", started, result, args.output)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
