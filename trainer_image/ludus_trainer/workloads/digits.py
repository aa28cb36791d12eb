"""A classifier on scikit-learn's bundled handwritten digits, with a held-out stratified split.

The data file is read straight from scikit-learn's package directory and the metrics are computed
in torch: importing scikit-learn (and SciPy under it) costs every worker process about a second
before its first step, four times over on the demo's 2 CPUs.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ludus_trainer.dist import DistContext
from ludus_trainer.evaluation import Objective
from ludus_trainer.workloads import ModelOptimizerState

CLASSES = 10


def digits_file() -> Path:
    """scikit-learn's bundled digits.csv.gz, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the digits workload needs scikit-learn's bundled data (pip install scikit-learn)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 64, in 0..16) and labels (n,), as sklearn.datasets.load_digits returns them."""
    with gzip.open(digits_file(), "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1], data[:, -1].astype(np.int64)


def stratified_split(labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with each class split in the same proportion, reproducible by seed."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        cut = int(round(len(members) * test_size))
        test.append(members[:cut])
        train.append(members[cut:])
    return rng.permutation(np.concatenate(train)), np.sort(np.concatenate(test))


def subset(indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """That share of `indices`, the same share of each class (at least one each), reproducible by seed."""
    rng = np.random.default_rng(seed + 1)
    kept = []
    for cls in np.unique(labels[indices]):
        members = rng.permutation(indices[labels[indices] == cls])
        kept.append(members[: max(1, int(round(len(members) * fraction)))])
    return rng.permutation(np.concatenate(kept))


def classification_metrics(labels: torch.Tensor, predictions: torch.Tensor, classes: int) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1 (a class never predicted has precision 0)."""
    confusion = torch.zeros(classes, classes, dtype=torch.float64)
    confusion.index_put_((labels.cpu(), predictions.cpu()), torch.ones(len(labels), dtype=torch.float64),
                         accumulate=True)
    true_positive = confusion.diag()
    predicted, actual = confusion.sum(0), confusion.sum(1)
    precision = torch.where(predicted > 0, true_positive / predicted.clamp(min=1), torch.zeros_like(predicted))
    recall = torch.where(actual > 0, true_positive / actual.clamp(min=1), torch.zeros_like(actual))
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp(min=1e-12),
                     torch.zeros_like(denominator))
    present = (actual + predicted) > 0
    return {
        "accuracy": float(true_positive.sum() / max(len(labels), 1)),
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "f1": float(f1[present].mean()),
    }


class DigitsWorkload(ModelOptimizerState):
    name = "digits"
    tokens_per_sample = 0
    objective = Objective("accuracy", "maximize")

    def __init__(self, ctx: DistContext, *, lr: float = 1e-3, hidden: int = 256, seed: int = 0,
                 classes: Sequence[int] | None = None, fraction: float = 1.0,
                 init: Callable[[nn.Module], object] | None = None) -> None:
        """`classes`: train and evaluate on these digits only (the head has one output per class);
        `fraction`: keep that share of the training data (stratified); `init`: initialise the
        model (transfer learning) before it is wrapped for data parallelism."""
        self.ctx = ctx
        features, labels = load_digits()
        chosen = sorted(set(classes)) if classes else list(range(CLASSES))
        keep = np.isin(labels, chosen)
        features, labels = features[keep], np.searchsorted(chosen, labels[keep])  # labels 0..len(chosen)-1
        self.classes = len(chosen)
        train, test = stratified_split(labels, 0.2, seed)
        if fraction < 1.0:
            train = subset(train, labels, fraction, seed)
        device = ctx.device
        self.x_train = torch.tensor(features[train] / 16.0, dtype=torch.float32, device=device)
        self.y_train = torch.tensor(labels[train], dtype=torch.long, device=device)
        self.x_test = torch.tensor(features[test] / 16.0, dtype=torch.float32, device=device)
        self.y_test = torch.tensor(labels[test], dtype=torch.long, device=device)
        torch.manual_seed(seed)  # every rank starts from the same weights; DDP checks it
        model = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU(),
            nn.Linear(hidden // 2, self.classes),
        ).to(device)
        if init is not None:  # before DDP: it broadcasts rank 0's weights and registers what trains
            init(model)
        self.model = model
        self.ddp = DistributedDataParallel(model) if torch.distributed.is_initialized() else model
        self.optimizer = torch.optim.Adam([p for p in self.ddp.parameters() if p.requires_grad], lr=lr)
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
        eval_loss = float(self.loss_fn(logits, self.y_test))
        return {**classification_metrics(self.y_test, logits.argmax(dim=1), self.classes), "eval_loss": eval_loss}

    def flops_per_token(self) -> float:
        return 0.0
