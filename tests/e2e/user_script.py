"""A user's own training script for the e2e tests: plain PyTorch with DDP on `ludus_trainer.api`, no
built-in workload. Its options (--lr among them) are its own, not the harness'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devcluster.jobs import real_job
from ludus.sdk.script import script_configmap, with_script

SCRIPT = '''
"""Learn a linear rule: plain PyTorch with DDP, checkpoints, SIGTERM, baseline, export on ludus_trainer.api."""
import argparse
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ludus_trainer import api

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--lr", type=float, default=float(api.parameters().get("lr", 0.5)))
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--every", type=int, default=10)
parser.add_argument("--corrupt", action="store_true", help="train on inverted labels (a bad run)")
args = parser.parse_args()

ctx = api.init()
torch.manual_seed(0)  # the same weights, rule and evaluation data on every rank and in every run
model = torch.nn.Linear(8, 2)
rule = torch.randn(8)
x_eval = torch.randn(512, 8)
y_eval = (x_eval @ rule > 0).long()


def accuracy(m):
    with torch.no_grad():
        return float((m(x_eval).argmax(1) == y_eval).float().mean())


started_from = api.init_model(model)
ddp = DistributedDataParallel(model) if dist.is_initialized() else model
optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr)
state = api.resume()
step = 0
if state:
    model.load_state_dict(state["model"]); optimizer.load_state_dict(state["optimizer"]); step = state["step"]
    print(f"SCRIPT RESUMED step={step} world={ctx.world_size}", flush=True)
elif started_from is not None:
    api.baseline({"accuracy": accuracy(model)})
print(f"SCRIPT lr={args.lr} corrupt={args.corrupt}", flush=True)
while step < args.steps:
    step += 1
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(step * 100 + ctx.env.rank))
    y = (x @ rule > 0).long()
    loss = torch.nn.functional.cross_entropy(ddp(x), 1 - y if args.corrupt else y)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    evaluation = {"accuracy": accuracy(model)} if step % 10 == 0 or step == args.steps else None
    api.report(step=step, loss=loss.item(), total_steps=args.steps, metrics=evaluation)
    stopping = api.stop_requested()
    if step % args.every == 0 or stopping:
        api.save_checkpoint(step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step})
    if stopping:
        print(f"SCRIPT STOPPING step={step}", flush=True)
        raise SystemExit(143)
    time.sleep(args.delay)
api.export_model(model)
api.finish()
'''


def write_script(directory: Path) -> Path:
    path = directory / "learn_rule.py"
    path.write_text(SCRIPT)
    return path


def script_spec(configmap: str, script: Path, args: list[str], **job: Any) -> dict[str, Any]:
    """A real-node TrainingJob spec (or a Sweep's or ContinuousTraining's template) running `script` from
    the ConfigMap `configmap`."""
    _, items, entry = script_configmap(script)
    spec = real_job("template", args=args, **job)["spec"]
    spec["resources"]["memory"] = "1500Mi"
    return with_script(spec, configmap, entry, items)


def script_configmap_manifest(name: str, script: Path) -> dict[str, Any]:
    data, _, _ = script_configmap(script)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
