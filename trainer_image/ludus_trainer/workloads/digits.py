"""A classifier on scikit-learn's bundled handwritten digits, with a held-out split."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ludus_trainer.dist import DistContext
from ludus_trainer.evaluation import Objective
from ludus_trainer.workloads import ModelOptimizerState


class DigitsWorkload(ModelOptimizerState):
    name = "digits"
    tokens_per_sample = 0
    objective = Objective("accuracy", "maximize")

    def __init__(self, ctx: DistContext, *, lr: float = 1e-3, hidden: int = 256, seed: int = 0) -> None:
        self.ctx = ctx
        features, labels = load_digits(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(
            features / 16.0, labels, test_size=0.2, random_state=seed, stratify=labels
        )
        device = ctx.device
        self.x_train = torch.tensor(x_train, dtype=torch.float32, device=device)
        self.y_train = torch.tensor(y_train, dtype=torch.long, device=device)
        self.x_test = torch.tensor(x_test, dtype=torch.float32, device=device)
        self.y_test = y_test
        torch.manual_seed(seed)  # every rank starts from the same weights; DDP checks it
        model = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU(), nn.Linear(hidden // 2, 10)
        ).to(device)
        self.model = model
        self.ddp = DistributedDataParallel(model) if torch.distributed.is_initialized() else model
        self.optimizer = torch.optim.Adam(self.ddp.parameters(), lr=lr)
        self.loss_fn = nn.CrossEntropyLoss()

    def train_size(self) -> int:
        return len(self.x_train)

    def train_step(self, indices: list[int]) -> torch.Tensor:
        idx = torch.tensor(indices, device=self.ctx.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss: torch.Tensor = self.loss_fn(self.ddp(self.x_train[idx]), self.y_train[idx])
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        logits = self.model(self.x_test)
        eval_loss = float(self.loss_fn(logits, torch.as_tensor(self.y_test, device=logits.device)))
        predictions = logits.argmax(dim=1).cpu().numpy()
        precision, recall, f1, _ = precision_recall_fscore_support(
            self.y_test, predictions, average="macro", zero_division=0
        )
        return {
            "accuracy": float(accuracy_score(self.y_test, predictions)),
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "eval_loss": eval_loss,
        }

    def flops_per_token(self) -> float:
        return 0.0
