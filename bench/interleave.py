"""Interleaved A/B at N jobs: the operator of another tree (e.g. a worktree of an earlier commit) and
this one, alternating on one cluster in one session, so the machine's drift hits both alike.

    git worktree add /tmp/before REV
    .venv/bin/python bench/interleave.py --before-tree /tmp/before --before-rev REV
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
import scale  # noqa: E402 - bench/scale.py: its cluster, client and arms

METRICS = ("apply_to_all_running_s", "operator_cpu_s_to_running", "operator_cpu_s_with_delete", "writes_per_job")


async def interleave(trees: dict[str, Path], order: list[str], jobs: int, workers: int) -> dict[str, Any]:
    cluster = scale.bench_cluster()
    api = scale.Api(cluster.kubeconfig)
    runs: list[dict[str, Any]] = []
    try:
        await scale.run_bare_arm(api, jobs, workers, "warm")  # warms the cluster up; discarded
        for i, build in enumerate(order):
            scale.REPO = trees[build]  # the operator process runs with PYTHONPATH=<tree>/operator
            r = await scale.run_operator_arm(api, cluster, jobs, workers, f"{build}-{i}")
            runs.append({"build": build, "apply_to_all_running_s": r["first_apply_to_all_running_s"],
                         "operator_cpu_s_to_running": r["operator_cpu_s_to_running"],
                         "operator_cpu_s_with_delete": r["operator_cpu_s_with_delete"],
                         "writes_per_job": r["operator_writes_per_job"], "reconcile_errors": r["reconcile_errors"]})
            print(json.dumps(runs[-1]), flush=True)
    finally:
        await api.close()
        cluster.down(quiet=True)
    out: dict[str, Any] = {"order": order, "runs": runs}
    for build in trees:
        rows = [r for r in runs if r["build"] == build]
        out[build] = {k: statistics.median(r[k] for r in rows) for k in METRICS}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-tree", type=Path, required=True)
    parser.add_argument("--before-rev", default="")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--order", default="after,before,before,after")
    default_output = scale.REPO / "docs" / "benchmarks" / "scale-500-interleaved.json"
    parser.add_argument("--output", type=Path, default=default_output)
    args = parser.parse_args()
    here = scale.REPO
    trees = {"before": args.before_tree.resolve(), "after": here}
    result = asyncio.run(interleave(trees, args.order.split(","), args.jobs, args.workers))
    output = "" if args.output == default_output else f" --output {args.output}"
    result["command"] = (f"git worktree add {args.before_tree} {args.before_rev or 'REV'} && "
                         f"python bench/interleave.py --before-tree {args.before_tree} --before-rev {args.before_rev}"
                         f"{output}")
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({b: result[b] for b in trees}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
