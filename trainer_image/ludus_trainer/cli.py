"""`python -m ludus_trainer`: run a built-in workload, or a user's script, under the Ludus harness."""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from ludus_trainer import trial
from ludus_trainer.env import (
    ENV_CHECKPOINT_DIR,
    ENV_CHECKPOINT_INTERVAL,
    ENV_METRICS_PORT,
    InitSettings,
    RunEnv,
)

# bf16 dense peak of the GPUs we report MFU against (FLOP/s), by device-name fragment.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ludus_trainer", description=__doc__)
    p.add_argument("--workload", choices=["digits", "gpt"], default="digits")
    p.add_argument("--script", type=Path, help="run this Python file instead of a built-in workload")
    p.add_argument("--module", help="run this module (like python -m) instead of a built-in workload")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--checkpoint-dir", type=Path, default=Path(os.environ.get(ENV_CHECKPOINT_DIR, "/tmp/ludus-ckpt")))
    p.add_argument("--checkpoint-interval", type=int, default=int(os.environ.get(ENV_CHECKPOINT_INTERVAL, 100)))
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept")
    p.add_argument("--metrics-port", type=int, default=int(os.environ.get(ENV_METRICS_PORT, 0)))
    p.add_argument("--step-delay", type=float, default=0.0, help="sleep per step (slows tests down on purpose)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=256, help="digits: width of the hidden layer")
    p.add_argument("--classes", type=_classes, default=None,
                   help="digits: train on these digits only, e.g. 0-6 or 1,3,5")
    p.add_argument("--fraction", type=float, default=1.0, help="digits: share of the training data used (0-1]")
    i = p.add_argument_group("transfer learning (weights only: a new optimizer, from step 0)")
    init = InitSettings.from_environ()
    i.add_argument("--init-from", default=None,
                   help="an exported model to start from: a finished job's <checkpoint dir>/model, or its "
                   "<checkpoint.uri>/model in object storage (default: spec.init)")
    i.add_argument("--no-init-strict", dest="init_strict", action="store_false",
                   default=init.strict,
                   help="load the tensors that fit and re-initialise the rest (a new head)")
    i.add_argument("--freeze", action="append", default=list(init.freeze),
                   help="keep parameters under this module prefix fixed (repeatable), e.g. 0 for the first layer")
    g = p.add_argument_group("gpt")
    g.add_argument("--d-model", type=int, default=256)
    g.add_argument("--n-layers", type=int, default=4)
    g.add_argument("--n-heads", type=int, default=4)
    g.add_argument("--seq-len", type=int, default=256)
    g.add_argument("--vocab-size", type=int, default=4096)
    g.add_argument("--no-bf16", action="store_true")
    g.add_argument("--compile", action="store_true")
    g.add_argument("--samples", type=int, default=1_000_000, help="sequences per epoch")
    return p


def _classes(text: str) -> list[int]:
    """`0-6` or `1,3,5` (or both: `0-2,7`)."""
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out += list(range(int(low), int(high or low) + 1))
    if not out or any(not 0 <= c <= 9 for c in out):
        raise argparse.ArgumentTypeError(f"digits are 0-9: {text!r}")
    return sorted(set(out))


def _peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def _own_code(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """--script/--module, and every other argument left for that code: a script's own --lr or --epochs
    are its own, never taken (or abbreviated into) the built-in workloads' options."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--script", type=Path)
    p.add_argument("--module")
    return p.parse_known_args(argv)


# Options that say where the harness runs, not how it trains: not recorded as the run's parameters.
_NOT_PARAMETERS = ("checkpoint_dir", "metrics_port")


def main(argv: list[str] | None = None) -> int:
    env = RunEnv.from_environ()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank{env.rank} %(name)s: %(message)s")
    code, rest = _own_code(argv)
    if code.script or code.module:
        # A user's own code: it gets the environment and uses ludus_trainer.api itself.
        sys.argv = [str(code.script or code.module), *rest]
        if code.script:
            runpy.run_path(str(code.script), run_name="__main__")
        else:
            runpy.run_module(code.module, run_name="__main__", alter_sys=True)
        return 0
    parser = _parser()
    # A Sweep trial's values (lr, width, batch_size, ...) set the options; flags given still win.
    parser.set_defaults(**trial.option_defaults(trial.parameters()))
    args = parser.parse_args(argv)
    # The built-in workloads are scripts on the public API, like a user's.
    os.environ[ENV_CHECKPOINT_DIR] = str(args.checkpoint_dir)
    os.environ[ENV_METRICS_PORT] = str(args.metrics_port)
    from ludus_trainer import api

    ctx = api.init()

    def init(model: Any) -> None:  # --init-from and its flags default to spec.init
        api.init_model(model, source=args.init_from, strict=args.init_strict, freeze=args.freeze)

    workload: Any
    if args.workload == "digits":
        from ludus_trainer.workloads.digits import DigitsWorkload

        workload = DigitsWorkload(ctx, lr=args.lr or 1e-3, hidden=args.hidden, seed=args.seed,
                                  classes=args.classes, fraction=args.fraction, init=init)
        logging.getLogger("ludus_trainer").info("digits: lr=%s hidden=%s batch_size=%s epochs=%s%s",
                                                args.lr or 1e-3, args.hidden, args.batch_size, args.epochs,
                                                f" (sweep trial: {trial.parameters()})" if trial.parameters() else "")
    else:
        from ludus_trainer.workloads.gpt import GPTWorkload
        from ludus_trainer.workloads.gpt_model import GPTConfig

        cfg = GPTConfig(args.vocab_size, args.seq_len, args.d_model, args.n_layers, args.n_heads)
        workload = GPTWorkload(ctx, cfg, lr=args.lr or 3e-4, bf16=not args.no_bf16, compile_model=args.compile,
                               samples=args.samples, seed=args.seed)
    api.log_params({k: v for k, v in vars(args).items() if v is not None and k not in _NOT_PARAMETERS})
    ended: str | None = "FAILED"
    try:
        api.train(workload, epochs=args.epochs, batch_size=args.batch_size,
                  checkpoint_interval=args.checkpoint_interval, keep=args.keep, max_steps=args.max_steps,
                  log_every=args.log_every, seed=args.seed, step_delay=args.step_delay, peak_flops=_peak_flops())
        ended = "FINISHED"
    except SystemExit as stop:
        ended = None if stop.code == 143 else "FAILED"  # stopped by SIGTERM: resumed later, the run goes on
        raise
    finally:
        api.finish(tracking_status=ended)
    return 0
