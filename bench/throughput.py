"""GPT throughput under the Ludus harness versus a bare training loop: `make bench-throughput`.

Both arms train the same model (ludus_trainer.workloads.gpt_model) on the same synthetic
batches; the bare arm has no Ludus code at all (no checkpoints, metrics or progress). Reports
tokens/s, model FLOPs utilisation on a GPU (bf16), and harness overhead = 1 - harness/bare.
On a machine without CUDA it runs a small model on the CPU, where only the ratio means much.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "trainer_image"))

from ludus_trainer.cli import PEAK_BF16_FLOPS  # noqa: E402
from ludus_trainer.dist import DistContext  # noqa: E402
from ludus_trainer.env import RunEnv  # noqa: E402
from ludus_trainer.goodput import PhaseClock  # noqa: E402
from ludus_trainer.loop import LoopConfig, run  # noqa: E402
from ludus_trainer.metrics import TrainerMetrics  # noqa: E402
from ludus_trainer.session import Session  # noqa: E402
from ludus_trainer.workloads.gpt import GPTWorkload  # noqa: E402
from ludus_trainer.workloads.gpt_model import GPT, GPTConfig, lm_loss, synthetic_batch  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(cfg: GPTConfig, device: torch.device, batch: int, warmup: int, steps: int, bf16: bool,
              compile_model: bool) -> float:
    """Tokens/s of the plainest loop we can write."""
    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    step_model = torch.compile(model) if compile_model else model
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=device.type == "cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
    started = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            started = time.perf_counter()
        tokens = synthetic_batch(list(range(step * batch, (step + 1) * batch)), cfg, device)
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = lm_loss(step_model, tokens)
        loss.backward()
        opt.step()
    sync(device)
    return steps * batch * cfg.seq_len / (time.perf_counter() - started)


def harness(cfg: GPTConfig, device: torch.device, batch: int, warmup: int, steps: int, bf16: bool,
            compile_model: bool) -> float:
    """Tokens/s the harness itself reports over the measured steps (its own metrics gauge)."""
    ctx = DistContext(env=RunEnv.from_environ(), device=device, backend="none")
    workload = GPTWorkload(ctx, cfg, bf16=bf16, compile_model=compile_model)
    metrics = TrainerMetrics(job="bench", rank=0)
    with tempfile.TemporaryDirectory() as ckpt:
        config = LoopConfig(epochs=1, batch_size=batch, checkpoint_dir=Path(ckpt), checkpoint_interval=10**9,
                            max_steps=warmup + steps, log_every=steps)  # the window after warm-up is measured
        run(Session(ctx, PhaseClock(), metrics, Path(ckpt)), workload, config)
    return float(metrics._l(metrics._tokens)._value.get())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--n-layers", type=int, default=None)
    parser.add_argument("--n-heads", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="measured steps (the same number warm up first)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each arm; medians reported")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    # A GPU gets a model that fills it; the CPU a small one that finishes in a minute.
    cfg = GPTConfig(
        vocab_size=32768 if cuda else 4096,
        seq_len=args.seq_len or (2048 if cuda else 128),
        d_model=args.d_model or (2048 if cuda else 128),
        n_layers=args.n_layers or (16 if cuda else 2),
        n_heads=args.n_heads or (16 if cuda else 4),
    )
    batch = args.batch_size or (8 if cuda else 8)
    steps = args.steps or (50 if cuda else 60)
    bf16 = cuda
    if not cuda:
        torch.set_num_threads(1)
    bares, ludi = [], []
    for _ in range(args.repeats):  # alternate the arms so drift on the machine hits both alike
        bares.append(bare_loop(cfg, device, batch, steps, steps, bf16, args.compile))
        ludi.append(harness(cfg, device, batch, steps, steps, bf16, args.compile))
    bare, ludus = statistics.median(bares), statistics.median(ludi)
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if cuda and k in torch.cuda.get_device_name()), None)
    report = {
        "command": "make bench-throughput" + (" (with --compile)" if args.compile else ""),
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "model": cfg.__dict__ | {"batch_size": batch, "params_millions": round(
            sum(p.numel() for p in GPT(cfg).parameters()) / 1e6, 1), "dtype": "bf16" if bf16 else "fp32"},
        "bare_tokens_per_s": round(bare, 1),
        "ludus_tokens_per_s": round(ludus, 1),
        "harness_overhead": round(1 - ludus / bare, 4),
        "runs": {"bare": [round(v, 1) for v in bares], "ludus": [round(v, 1) for v in ludi]},
        "mfu_bare": round(bare * cfg.flops_per_token() / peak, 4) if peak else None,
        "mfu_ludus": round(ludus * cfg.flops_per_token() / peak, 4) if peak else None,
    }
    output = args.output or REPO / "docs" / "benchmarks" / f"throughput-{'gpu' if cuda else 'cpu'}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
