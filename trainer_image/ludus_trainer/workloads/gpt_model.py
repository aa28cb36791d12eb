"""A small decoder-only transformer (GPT-style), sized by flags.

Kept free of any Ludus harness code so the bare-loop benchmark trains the
very same model without Ludus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 4096
    seq_len: int = 256
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6·N for the weights plus causal attention's score and value products."""
        params = 12 * self.n_layers * self.d_model**2 + self.vocab_size * self.d_model
        attention = 6 * self.n_layers * self.d_model * self.seq_len  # 12·L·d·T halved by the causal mask
        return 6.0 * params + attention


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=False)
        self.out = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
        out: torch.Tensor = x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))
        return out


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(1, cfg.seq_len, cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied embeddings

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos[:, : tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        logits: torch.Tensor = self.head(self.ln(x))
        return logits


def synthetic_batch(indices: list[int], cfg: GPTConfig, device: torch.device) -> torch.Tensor:
    """Token sequences generated from their index: a learnable pattern, no download, identical on every rank."""
    idx = torch.tensor(indices, device=device, dtype=torch.long).unsqueeze(1)
    pos = torch.arange(cfg.seq_len + 1, device=device, dtype=torch.long).unsqueeze(0)
    return (idx * 7919 + pos * (idx % 13 + 1) + (pos * pos) % 17) % cfg.vocab_size


def lm_loss(model: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
