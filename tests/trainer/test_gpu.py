"""The GPT workload in bf16 on a GPU; skips cleanly where CUDA is absent (CI has none)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ludus_trainer.dist import DistContext
from ludus_trainer.env import RunEnv
from ludus_trainer.goodput import PhaseClock
from ludus_trainer.loop import LoopConfig, run
from ludus_trainer.metrics import TrainerMetrics
from ludus_trainer.session import Session
from ludus_trainer.workloads.gpt import GPTWorkload
from ludus_trainer.workloads.gpt_model import GPTConfig

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")]


def test_gpt_trains_in_bf16_and_reports_throughput_and_mfu(tmp_path: Path) -> None:
    device = torch.device("cuda")
    ctx = DistContext(env=RunEnv.from_environ(), device=device, backend="none")
    cfg = GPTConfig(vocab_size=8192, seq_len=512, d_model=512, n_layers=4, n_heads=8)
    workload = GPTWorkload(ctx, cfg, bf16=True)
    metrics = TrainerMetrics(job="gpu-test", rank=0)
    config = LoopConfig(epochs=1, batch_size=8, checkpoint_dir=tmp_path, checkpoint_interval=20, max_steps=40,
                        log_every=20, peak_flops=989e12)
    final = run(Session(ctx, PhaseClock(), metrics, tmp_path), workload, config)
    assert final["step"] == 40 and math.isfinite(final["eval_loss"])
    assert metrics._l(metrics._tokens)._value.get() > 0
    assert metrics._l(metrics._gpu_mem)._value.get() > 0
    assert 0 < metrics._l(metrics._mfu)._value.get() < 1
    assert (tmp_path / "ckpt-000000000040.pt").exists()
