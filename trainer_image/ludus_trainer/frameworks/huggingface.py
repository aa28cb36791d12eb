"""Hugging Face `transformers.Trainer` on Ludus: `LudusCallback` and `train(trainer)`.

```python
from ludus_trainer import api
from ludus_trainer.frameworks import huggingface

api.init()
args = TrainingArguments(output_dir=str(api.checkpoint_dir()), save_strategy="steps", save_steps=50, ...)
trainer = Trainer(model=model, args=args, train_dataset=..., eval_dataset=..., compute_metrics=...)
huggingface.train(trainer)   # resume, baseline, progress, evaluation, SIGTERM checkpoint, export
```

The callback reports each logged step (loss, throughput), each evaluation (`eval_accuracy` becomes
`accuracy`; `eval_loss` stays), the evaluation and checkpoint time as goodput phases, and on SIGTERM
asks the Trainer to save and stop, then ends the process once the checkpoint is written. `train`
resumes from the newest `checkpoint-N` every rank can read, evaluates a model `api.init_model`
loaded before training (the baseline), and exports the model at the end.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ludus_trainer import api
from ludus_trainer.frameworks import DEFAULT_OBJECTIVE, checkpoint_steps, evaluation_results, newest_common

logger = logging.getLogger("ludus_trainer")
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


class LudusCallback(TrainerCallback):
    """The Trainer's events as the run's progress, evaluation, goodput phases and SIGTERM checkpoint."""

    def __init__(self) -> None:
        self.session = api.session()
        self.session.use_objective_default(DEFAULT_OBJECTIVE)
        self.stopping = False
        self.baseline_pending = False  # the next evaluation is the starting model's (train() sets it)
        self._step_ended: float | None = None
        self._evaluated_for = 0.0  # evaluation seconds since the last step ended

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self.session.begin_training()
        self.session.plan(state.global_step, state.max_steps or None)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" not in logs:
            return  # an evaluation's log line: on_evaluate has it
        self.session.report(step=state.global_step, loss=float(logs["loss"]), epoch=int(state.epoch or 0),
                            total_steps=state.max_steps or None, log=True)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        metrics = metrics or {}
        runtime = float(metrics.get("eval_runtime") or 0.0)
        self.session.clock.add("evaluation", runtime)
        self._evaluated_for += runtime
        results = evaluation_results(metrics, prefix="eval_")
        if self.baseline_pending:
            self.baseline_pending = False
            self.session.baseline(results)
        elif results:
            self.session.evaluated(results, state.global_step, int(state.epoch or 0))

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        self._step_ended, self._evaluated_for = time.perf_counter(), 0.0
        if self.session.stop_requested():  # collective: every rank asks at every step
            logger.info("SIGTERM: saving a checkpoint at step %d and stopping", state.global_step)
            self.stopping = True
            control.should_save = True
            control.should_training_stop = True

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        if self._step_ended is not None:
            saving = time.perf_counter() - self._step_ended - self._evaluated_for
            self.session.clock.add("checkpoint", saving)
            self.session.metrics.checkpoint(saving)
        if self.stopping:
            self.session.publish_final()
            raise SystemExit(143)


def _callback(trainer: Trainer) -> LudusCallback:
    found = next((c for c in trainer.callback_handler.callbacks if isinstance(c, LudusCallback)), None)
    if found is None:
        found = LudusCallback()
        trainer.add_callback(found)
    return found


def resume_checkpoint(output_dir: str | Path) -> str | None:
    """The newest `checkpoint-N` in `output_dir` every rank can read (collective), for
    `trainer.train(resume_from_checkpoint=...)`; None: start fresh."""
    steps = checkpoint_steps(Path(output_dir), _CHECKPOINT)
    step = newest_common(steps)
    return None if step is None else str(Path(output_dir) / f"checkpoint-{step}")


def train(trainer: Trainer, export: bool = True) -> Any:
    """`trainer.train()` with Ludus's resume, baseline and export around it; returns the Trainer's output."""
    callback = _callback(trainer)
    session = callback.session
    resume = resume_checkpoint(trainer.args.output_dir or "trainer_output")
    if resume is not None:
        print(f"LUDUS_RESUME {resume}", flush=True)
    elif session.lineage and trainer.eval_dataset is not None:
        # Started from a model (spec.init): how good it is on this run's evaluation data, before training.
        callback.baseline_pending = True
        trainer.evaluate()
    output = trainer.train(resume_from_checkpoint=resume)
    if export and trainer.model is not None:
        session.export_model(trainer.model, {"framework": "transformers"})
    return output
