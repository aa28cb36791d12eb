"""The GPT workload: throughput (tokens/s) and, on a GPU, model FLOPs utilisation in bf16."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from ludus_trainer.dist import DistContext
from ludus_trainer.evaluation import Objective
from ludus_trainer.workloads import ModelOptimizerState
from ludus_trainer.workloads.gpt_model import GPT, GPTConfig, lm_loss, synthetic_batch


class GPTWorkload(ModelOptimizerState):
    name = "gpt"
    objective = Objective("eval_loss", "minimize")

    def __init__(self, ctx: DistContext, cfg: GPTConfig, *, lr: float = 3e-4, bf16: bool = True,
                 compile_model: bool = False, samples: int = 1_000_000, seed: int = 0) -> None:
        self.ctx, self.cfg, self.samples = ctx, cfg, samples
        self.tokens_per_sample = cfg.seq_len
        torch.manual_seed(seed)
        self.model = GPT(cfg).to(ctx.device)
        self.ddp = DistributedDataParallel(self.model) if torch.distributed.is_initialized() else self.model
        self.step_model = torch.compile(self.ddp) if compile_model else self.ddp
        fused = ctx.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(self.ddp.parameters(), lr=lr, fused=fused)
        self.bf16 = bf16 and ctx.device.type == "cuda"

    def _autocast(self) -> Any:
        if self.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_size(self) -> int:
        return self.samples

    def train_step(self, indices: list[int]) -> torch.Tensor:
        batch = synthetic_batch(indices, self.cfg, self.ctx.device)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = lm_loss(self.step_model, batch)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        batch = synthetic_batch(list(range(self.samples, self.samples + 8)), self.cfg, self.ctx.device)
        with self._autocast():
            loss = float(lm_loss(self.model, batch))
        return {"eval_loss": loss}

    def flops_per_token(self) -> float:
        return self.cfg.flops_per_token()
