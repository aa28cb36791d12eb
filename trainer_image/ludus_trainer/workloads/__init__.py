"""Built-in workloads that need no download."""

from __future__ import annotations

from typing import Any

import torch


class ModelOptimizerState:
    """Checkpoint state shared by the built-in workloads: the bare model (not its DDP wrapper) and optimizer."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
