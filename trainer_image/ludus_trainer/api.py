"""The API every training script uses to get Ludus's checkpoints, progress, evaluation, goodput and export.

It is the only way in: the built-in `digits` and `gpt` workloads call exactly these functions. Each
delegates to the run's one `Session` (`ludus_trainer.session`), made by the first `init()`; a second
`init()` (a library that also calls it) returns the same one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from ludus_trainer.checkpoint import CheckpointManager
from ludus_trainer.dist import DistContext
from ludus_trainer.env import InitSettings
from ludus_trainer.loop import LoopConfig, Workload
from ludus_trainer.loop import run as _run_loop
from ludus_trainer.model_io import InitReport

if TYPE_CHECKING:
    from ludus_trainer.objectstore import ObjectCheckpoints
from ludus_trainer.session import Session

_sessions: list[Session] = []  # at most one: this process's run


def init() -> DistContext:
    """Join torchrun's process group and start the metrics page (local rank 0). Time the script does not
    mark with `phase(...)` counts as start-up until its first `resume()` or `report()`, then as training."""
    return session().ctx


def session() -> Session:
    """This process's run (started by the first call): for frameworks' callbacks and the built-in loop."""
    if not _sessions:
        _sessions.append(Session.start())
    return _sessions[0]


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Mark time that is not training (`checkpoint`, `restore`, `evaluation`), for status.goodput."""
    with session().phase(name):
        yield


def checkpoint_dir() -> Path:
    return session().directory


def checkpoints(keep: int = 3) -> CheckpointManager | ObjectCheckpoints:
    return session().checkpoints(keep)


def report(*, step: int, loss: float, epoch: int = 0, total_steps: int | None = None,
           samples_per_second: float | None = None, metrics: dict[str, float] | None = None) -> None:
    """Publish a step: Prometheus metrics on every rank, the progress record on rank 0; `metrics` are an
    evaluation's results (status.evaluation)."""
    session().report(step=step, loss=loss, epoch=epoch, total_steps=total_steps,
                     samples_per_second=samples_per_second, metrics=metrics)


def baseline(metrics: dict[str, float]) -> None:
    """The model `init_model` loaded, evaluated on this run's data before training: a ContinuousTraining
    compares the run's final evaluation with it (the same data), not with a score from another day."""
    session().baseline(metrics)


def finish(tracking_status: str | None = "FINISHED") -> None:
    """Leave the last step and evaluation for the operator, then the process group. The experiment-tracker run
    (spec.tracking) ends with `tracking_status` (FINISHED, FAILED; None: left running, to be resumed)."""
    session().finish(tracking_status)


def resume(manager: CheckpointManager | ObjectCheckpoints | None = None) -> dict[str, Any] | None:
    """The newest checkpoint any rank can read, loaded from that rank on every rank (None: start fresh), so
    all ranks resume from the same step. Collective: every rank calls it."""
    state = session().resume(manager)
    session().begin_training()
    return state


def save_checkpoint(step: int, state: dict[str, Any],
                    manager: CheckpointManager | ObjectCheckpoints | None = None) -> None:
    """Every rank calls it: in a directory rank 0 saves `state` atomically (the others return at once), in
    object storage every rank writes its shard; with the evaluation and baseline so a resumed run keeps
    them; timed as the checkpoint phase."""
    session().save_checkpoint(step, state, manager)


def stop_requested() -> bool:
    """Whether the pod was asked to stop on any rank (SIGTERM: a suspend, a scale-down, an eviction, a
    drain): save a checkpoint and return. Collective: every rank calls it at the same step. From the first
    call on, SIGTERM only sets this flag; a script that never asks is ended by SIGTERM at once, as before."""
    return session().stop_requested()


def init_model(model: nn.Module, *, source: Path | str | None = None, strict: bool | None = None,
               freeze: list[str] | None = None) -> InitReport | None:
    """Apply spec.init to `model` (strict, frozen prefixes) on every rank, before wrapping it for data
    parallelism; None without spec.init. What was loaded reaches status.initializedFrom and the exported
    model's lineage. The keywords override spec.init (the built-in workloads' --init-from)."""
    spec = InitSettings.from_environ()
    path, uri = spec.source, spec.uri
    if source is not None:  # a path, or a model in object storage (s3://...)
        remote = str(source).startswith("s3://")
        path, uri = (None, str(source)) if remote else (Path(source), None)
    settings = InitSettings(path, spec.strict if strict is None else strict,
                            spec.freeze if freeze is None else tuple(freeze), uri)
    return session().init_model(model, settings)


def export_model(model: nn.Module, metadata: dict[str, Any] | None = None) -> Path | None:
    """Rank 0 writes `model` where a ContinuousTraining promotes from and `init.fromJob` reads
    (`<checkpoint dir>/model`), with the job, the last step, the evaluation, the baseline, the objective
    and the lineage; returns its directory (None on other ranks)."""
    return session().export_model(model, metadata)


def train(workload: Workload, *, epochs: int, batch_size: int, checkpoint_interval: int = 100, keep: int = 3,
          max_steps: int | None = None, log_every: int = 10, seed: int = 0, step_delay: float = 0.0,
          peak_flops: float | None = None) -> dict[str, Any]:
    """Your own Workload (its data, `train_step`, `evaluate`, state) in the loop the built-in workloads run:
    a sampler that resumes mid-epoch, checkpoints on an interval and on SIGTERM, the checkpoint every rank
    agrees on, the baseline of a model it started from, progress, evaluation, goodput, and the export of
    `workload.model` at the end. Returns the final evaluation."""
    config = LoopConfig(epochs=epochs, batch_size=batch_size, checkpoint_dir=checkpoint_dir(),
                        checkpoint_interval=checkpoint_interval, keep=keep, max_steps=max_steps,
                        log_every=log_every, seed=seed, step_delay=step_delay, peak_flops=peak_flops)
    return _run_loop(session(), workload, config)


def log_params(params: dict[str, Any]) -> None:
    """Record the script's own parameters (hyper-parameters, data version) in the job's experiment-tracker run
    (spec.tracking), once each; a no-op without one. Rank 0's values are the ones kept."""
    session().log_params(params)


def parameters() -> dict[str, Any]:
    """This Sweep trial's values by parameter name (numbers as numbers); {} outside a sweep."""
    from ludus_trainer.trial import parameters as trial_parameters

    return trial_parameters()
