"""How long a checkpoint save stops training: `make bench-checkpoint`.

The gpt workload's model and AdamW state (after one step, so the optimizer's moments exist) saved by the
trainer's own code, three ways, alternating so drift on the machine hits each alike:

- `claim`: `CheckpointManager` on a local directory (what a claim on the node's disk gives: torch.save of
  the whole state, written atomically);
- `s3-direct`: `ObjectCheckpoints` without staging: torch.distributed.checkpoint writes straight to the
  S3 server and rank 0 commits; training waits for all of it;
- `s3-staged`: what a job with `checkpoint.uri` does: written to the pod's own disk, then uploaded and
  committed by a background thread while training goes on. Training waits only for the local part;
  `until committed` is when a restart could resume from it.

The S3 server is the cluster's own (SeaweedFS on this host, devcluster/objectstore.py). One process
(world size 1), on the CPU: the figure is the save's own cost, not a network's.
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
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "trainer_image"))
sys.path.insert(0, str(REPO))

from devcluster.objectstore import ObjectStore  # noqa: E402
from ludus_trainer.checkpoint import CheckpointManager  # noqa: E402
from ludus_trainer.dist import DistContext  # noqa: E402
from ludus_trainer.env import RunEnv  # noqa: E402
from ludus_trainer.objectstore import ObjectCheckpoints, storage_options  # noqa: E402
from ludus_trainer.workloads.gpt import GPTWorkload  # noqa: E402
from ludus_trainer.workloads.gpt_model import GPTConfig  # noqa: E402

BUCKET = "ludus-bench"
# The harness' default gpt (ludus_trainer.cli) and one eight times its parameters.
SIZES = {"gpt (harness default)": GPTConfig(4096, 256, 256, 4, 4), "gpt x8": GPTConfig(4096, 256, 512, 8, 8)}


def training_state(cfg: GPTConfig) -> tuple[dict[str, Any], int]:
    """What the built-in loop saves for the gpt workload, and the parameter count."""
    ctx = DistContext(env=RunEnv.from_environ(), device=torch.device("cpu"), backend="none")
    workload = GPTWorkload(ctx, cfg, bf16=False, samples=64)
    workload.train_step(list(range(4)))  # AdamW's moments exist after a step
    params = sum(p.numel() for p in workload.model.parameters())
    return {"workload": workload.state_dict(), "epoch": 0, "consumed": 4, "results": {}}, params


def measure(arm: str, state: dict[str, Any], step: int, tmp: Path, env: dict[str, str]) -> dict[str, float]:
    """One save: seconds training waits, and seconds until it can be resumed from."""
    uri = f"s3://{BUCKET}/{tmp.name}/{arm}"
    if arm == "claim":
        manager = CheckpointManager(tmp / "claim", keep=2)
        manager.save(step, state)
        blocked = manager.last_duration or 0.0
        return {"blocked_s": blocked, "committed_s": blocked}
    staging = tmp / "staging" if arm == "s3-staged" else None
    store = ObjectCheckpoints(uri, keep=2, options=storage_options(uri, env), staging=staging)
    started = time.monotonic()
    store.save(step, state)
    blocked = store.last_duration or 0.0
    store.flush()
    committed = time.monotonic() - started
    assert step in store.steps(), f"{arm}: step {step} not committed"
    return {"blocked_s": blocked, "committed_s": committed}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks" / "checkpoint-save.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    arms = ("claim", "s3-direct", "s3-staged")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        store = ObjectStore(root / "objectstore")
        store.up()
        try:
            store.make_bucket(BUCKET)
            env = store.environment()
            results: dict[str, Any] = {}
            for label, cfg in SIZES.items():
                state, params = training_state(cfg)
                runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
                for step in range(1, args.repeats + 1):
                    for arm in arms:
                        runs[arm].append(measure(arm, state, step, root / label.replace(" ", "-"), env))
                size = (root / label.replace(" ", "-") / "claim" / f"ckpt-{args.repeats:012d}.pt").stat().st_size
                results[label] = {
                    "params_millions": round(params / 1e6, 2), "checkpoint_mib": round(size / 2**20, 1),
                    **{arm: {k: round(statistics.median(r[k] for r in runs[arm]), 3) for k in ("blocked_s",
                                                                                            "committed_s")}
                       for arm in arms},
                    "runs": {arm: [{k: round(v, 3) for k, v in r.items()} for r in runs[arm]] for arm in arms},
                }
        finally:
            store.down()
    report = {"command": "make bench-checkpoint", "date": time.strftime("%Y-%m-%d"),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "torch": torch.__version__,
              "repeats": args.repeats, "results": results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: {a: v[a] for a in arms} for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
