"""PyTorch Lightning on Ludus: `LudusCallback` and `fit(trainer, model, ...)`.

```python
import lightning.pytorch as pl
from ludus_trainer import api
from ludus_trainer.frameworks import lightning as ludus_lightning

api.init()
trainer = pl.Trainer(max_epochs=5, accelerator="cpu", callbacks=[ludus_lightning.LudusCallback()])
ludus_lightning.fit(trainer, model, train_loader, val_loader)  # resume, baseline, SIGTERM checkpoint, export
```

The callback reports training steps (the loss the module returns), each validation (its logged
metrics: `val_accuracy` becomes `accuracy`, `val_loss` stays) with its time as the evaluation phase,
checkpoint writes as the checkpoint phase, and on SIGTERM stops the Trainer; `fit` then saves
`last.ckpt` in the run's checkpoint directory and ends the process. `fit` resumes from `last.ckpt`
when every rank can read it, validates a model `api.init_model` loaded before training (the
baseline), and exports the module at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package's name
    import pytorch_lightning as pl  # type: ignore[no-redef]

from ludus_trainer import api
from ludus_trainer.frameworks import DEFAULT_OBJECTIVE, evaluation_results, newest_common

logger = logging.getLogger("ludus_trainer")
LAST = "last.ckpt"


def _loss(outputs: Any) -> float | None:
    value = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    return float(value.detach()) if isinstance(value, torch.Tensor) else None


class LudusCallback(pl.Callback):
    """Lightning's events as the run's progress, evaluation, goodput phases and SIGTERM stop."""

    def __init__(self, log_every: int = 10) -> None:
        self.session = api.session()
        self.session.use_objective_default(DEFAULT_OBJECTIVE)
        self.log_every = log_every
        self.stopping = False
        self.baseline_pending = False  # the next validation is the starting model's (fit() sets it)
        self._validation_started: float | None = None
        self._window = (time.perf_counter(), 0)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.session.begin_training()
        total = int(trainer.estimated_stepping_batches)
        self.session.plan(trainer.global_step, total if total > 0 else None)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        started, samples = self._window
        self._window = (started, samples + 1)
        loss = _loss(outputs)
        if loss is not None and (step % self.log_every == 0 or step == trainer.estimated_stepping_batches):
            elapsed = time.perf_counter() - started
            rate = self._window[1] / elapsed if elapsed > 0 else None  # batches per second on this rank
            self.session.report(step=step, loss=loss, epoch=trainer.current_epoch,
                                total_steps=int(trainer.estimated_stepping_batches), samples_per_second=rate,
                                log=True)
            self._window = (time.perf_counter(), 0)
        if self.session.stop_requested():  # collective: every rank asks at every batch
            logger.info("SIGTERM: stopping at step %d to save a checkpoint", step)
            self.stopping = True
            trainer.should_stop = True

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validation_started = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._validation_started is not None:
            self.session.clock.add("evaluation", time.perf_counter() - self._validation_started)
            self._validation_started = None
        if trainer.sanity_checking:
            return
        results = evaluation_results(
            {k: v for k, v in trainer.callback_metrics.items() if not k.startswith("train")}, prefix="val_")
        if self.baseline_pending:
            self.baseline_pending = False
            self.session.baseline(results)
        elif results:
            self.session.evaluated(results, trainer.global_step, trainer.current_epoch)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        # What the harness keeps (the evaluation and the baseline) travels in Lightning's checkpoint too.
        checkpoint["ludus"] = {"evaluation": self.session.evaluation.as_dict()}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        from ludus_trainer.evaluation import EvaluationRecord

        kept = checkpoint.get("ludus") or {}
        if isinstance(kept, Mapping) and kept.get("evaluation"):
            record = EvaluationRecord.from_dict(dict(kept["evaluation"]), self.session.evaluation.objective)
            self.session.evaluation = record


def _callback(trainer: pl.Trainer) -> LudusCallback:
    callbacks: list[Any] = getattr(trainer, "callbacks", [])
    found = next((c for c in callbacks if isinstance(c, LudusCallback)), None)
    if found is None:
        raise ValueError("add ludus_trainer.frameworks.lightning.LudusCallback() to the Trainer's callbacks")
    return found


def resume_checkpoint(directory: Path | None = None) -> Path | None:
    """`last.ckpt` in the run's checkpoint directory when every rank can read it (collective)."""
    path = (directory or api.checkpoint_dir()) / LAST
    step = newest_common([0] if path.is_file() else [])
    return path if step is not None else None


def fit(trainer: pl.Trainer, model: pl.LightningModule, train_dataloaders: Any = None,
        val_dataloaders: Any = None, datamodule: Any = None, export: bool = True) -> None:
    """`trainer.fit(...)` with Ludus's resume, baseline, SIGTERM checkpoint and export around it."""
    callback = _callback(trainer)
    session = callback.session
    directory = api.checkpoint_dir()
    resume = resume_checkpoint(directory)
    if resume is not None:
        print(f"LUDUS_RESUME {resume}", flush=True)
    elif session.lineage and (val_dataloaders is not None or datamodule is not None):
        # Started from a model (spec.init): how good it is on this run's validation data, before training.
        callback.baseline_pending = True
        trainer.validate(model, dataloaders=val_dataloaders, datamodule=datamodule, verbose=False)
    trainer.fit(model, train_dataloaders=train_dataloaders, val_dataloaders=val_dataloaders,
                datamodule=datamodule, ckpt_path=resume)
    if callback.stopping:
        with session.phase("checkpoint"):
            trainer.save_checkpoint(directory / LAST)  # collective; rank 0 writes
        session.publish_final()
        raise SystemExit(143)
    with session.phase("checkpoint"):
        trainer.save_checkpoint(directory / LAST)
    if export:
        session.export_model(model, {"framework": "lightning"})
