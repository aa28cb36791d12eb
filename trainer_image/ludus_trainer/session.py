"""One training run's harness: what every script gets, the built-in workloads and a user's own alike.

A `Session` holds what a run keeps from its start to its end (the process group, the metrics page,
the phase clock, the evaluation record, rank 0's progress file, the model it started from) and
turns the script's calls into what the operator reads: Prometheus metrics on every rank, rank 0's
progress record and termination message. `ludus_trainer.api` is its public face and
`ludus_trainer.loop` a helper on top of it; `digits` and `gpt` go through the same API a user's
script calls.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from multiprocessing.util import Finalize
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from torch import nn

from ludus_trainer import dist as _dist
from ludus_trainer.checkpoint import CheckpointManager
from ludus_trainer.coordination import (
    StopSignal,
    agree_on_checkpoint,
    agree_on_object_checkpoint,
    any_rank_asked_to_stop,
)
from ludus_trainer.digest import WEIGHTS
from ludus_trainer.dist import DistContext
from ludus_trainer.env import ENV_CHECKPOINT_DIR, ENV_METRICS_PORT, ENV_OBJECTIVE, InitSettings, RunEnv
from ludus_trainer.evaluation import EvaluationRecord, Objective, objective_from_env, publish_error
from ludus_trainer.goodput import PHASES, PhaseClock, process_started_at, startup_origin
from ludus_trainer.metrics import TrainerMetrics
from ludus_trainer.model_io import InitError, InitReport, load_into
from ludus_trainer.model_io import export_model as _export
from ludus_trainer.s3 import ENV_CHECKPOINT_URI
from ludus_trainer.storage import open_checkpoints
from ludus_trainer.tracking import Tracker, TrackingSettings, TrackingState
from ludus_trainer.trial import parameters as trial_parameters

if TYPE_CHECKING:
    from ludus_trainer.objectstore import ObjectCheckpoints
from ludus_trainer.progress import ProgressReporter

logger = logging.getLogger("ludus_trainer")

# Rank 0 rewrites its termination message (what the operator reads once the pod ends) at most this often
# while training; an evaluation, `finish()` and the interpreter's exit write it whatever the time.
PUBLISH_INTERVAL_SECONDS: Final = 1.0
# The exit code of a run that cannot load the model it was told to start from (no restart mends it).
EXIT_INIT_FAILED: Final = 3
# Where the harness keeps its own part of a checkpoint (the evaluation record, the baseline).
CHECKPOINT_KEY: Final = "ludus"
DEFAULT_CHECKPOINT_DIR: Final = "/tmp/ludus-ckpt"


def checkpoint_dir() -> Path:
    path = Path(os.environ.get(ENV_CHECKPOINT_DIR, DEFAULT_CHECKPOINT_DIR))
    path.mkdir(parents=True, exist_ok=True)
    return path


class Session:
    """One run of a training script on one rank."""

    def __init__(self, ctx: DistContext, clock: PhaseClock, metrics: TrainerMetrics, directory: Path) -> None:
        self.ctx, self.clock, self.metrics, self.directory = ctx, clock, metrics, directory
        self.evaluation = EvaluationRecord(objective_from_env())
        self.progress = ProgressReporter(directory / "progress.json" if ctx.is_main else None)
        self.lineage: list[dict[str, Any]] = []  # what init_model loaded (the exported model's lineage)
        self.step: int | None = None
        self.epoch = 0
        self.total_steps: int | None = None
        self.start_step: int | None = None
        self._published_at = 0.0
        self._training = False
        self._polls_stop = False
        self._failed = False  # the termination message holds an error no later publish may overwrite
        self._uploading: list[ObjectCheckpoints] = []  # object stores this run saved to: flushed by finish()
        self.tracker: Tracker | None = None  # rank 0's experiment-tracker run (spec.tracking)
        metrics.objective(self.evaluation.objective.metric, self.evaluation.objective.goal)

    @classmethod
    def start(cls, directory: Path | None = None, metrics_port: int | None = None) -> Session:
        """Join torchrun's group and serve the metrics page (local rank 0); the start-up breakdown's marks."""
        env = RunEnv.from_environ()
        clock = PhaseClock(origin=startup_origin(env.restart_count))
        started = process_started_at()
        if started is not None:
            clock.marks["process"] = round(max(0.0, started - clock.origin), 3)
        clock.mark("imports")
        with clock.phase("rendezvous"):
            ctx = _dist.init()
        clock.mark("rendezvous")
        metrics = TrainerMetrics(job=env.job, rank=env.rank)
        if env.local_rank == 0:
            metrics.serve(int(os.environ.get(ENV_METRICS_PORT, 0)) if metrics_port is None else metrics_port)
        metrics.started(env.world_size, env.restart_count)
        session = cls(ctx, clock, metrics, directory or checkpoint_dir())
        if ctx.is_main:
            # A script that never calls finish() still leaves its last step: at the interpreter's exit, and
            # at a forked worker's (ludus_trainer.launch), where multiprocessing runs its finalizers, not atexit.
            Finalize(None, session._at_exit, exitpriority=10)
            session.start_tracking(TrackingSettings.from_environ())
        return session

    # --- the experiment tracker (rank 0) -------------------------------------------------------------
    def start_tracking(self, settings: TrackingSettings | None) -> None:
        """Open the run in the experiment tracker (spec.tracking) with what is known at the start."""
        if settings is None or not self.ctx.is_main:
            return
        self.tracker = Tracker(settings, on_state=self._tracking_state)
        self._tracking_state(self.tracker.state)
        self.tracker.log_params({"world_size": self.ctx.world_size,
                                 "nproc_per_node": os.environ.get("LOCAL_WORLD_SIZE", "1"), **trial_parameters()})
        self._track_objective()

    def _track_objective(self) -> None:
        """A tag, not a parameter: a workload may name its own objective after the start."""
        if self.tracker is not None:
            objective = self.evaluation.objective
            self.tracker.set_tags({"ludus.objective": f"{objective.metric}:{objective.goal}"})

    def _tracking_state(self, state: TrackingState) -> None:
        """The tracker's run and health, for the operator (status.tracking, the Tracked condition)."""
        self.metrics.tracking(state.run_id or "", state.experiment_id or "", state.ok, state.reason, state.pending)
        self.evaluation.tracking = state.as_dict()

    def log_params(self, params: dict[str, Any]) -> None:
        """The script's own parameters, recorded once in the tracker's run (a no-op without spec.tracking)."""
        if self.tracker is not None:
            self.tracker.log_params(params)

    def _track_goodput(self) -> None:
        if self.tracker is None:
            return
        phases = {name: float(v) for name, v in (self.evaluation.goodput.get("phases") or {}).items()}
        values = {f"goodput_{name}_seconds": v for name, v in phases.items()}
        if sum(phases.values()) > 0:
            values["goodput"] = phases.get("train", 0.0) / sum(phases.values())
        self.tracker.log_metrics(values, self.step or 0)

    def _close_tracker(self, status: str | None, timeout: float | None = None) -> None:
        """The last goodput, then the run ended with `status` (None: left running, to be resumed)."""
        if self.tracker is None:
            return
        self._phases()
        self._track_goodput()
        tracker, self.tracker = self.tracker, None
        self._tracking_state(tracker.finish(status, timeout))

    # --- the objective and the clock ---------------------------------------------------------------
    def use_objective_default(self, objective: Objective) -> None:
        """A workload's own objective, where the job's spec names none."""
        if os.environ.get(ENV_OBJECTIVE) or objective == self.evaluation.objective:
            return
        self.evaluation.objective = objective
        self.metrics.objective(objective.metric, objective.goal)
        self._track_objective()

    def begin_training(self) -> None:
        """Start-up ends here (once): from now on, time not in another phase is training."""
        if self._training:
            return
        self._training = True
        self.clock.close_startup()
        self.clock.start_training()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time that is not training (checkpoint, restore, evaluation, rendezvous), for status.goodput."""
        if name not in PHASES or name in ("startup", "train"):
            raise ValueError(f"phase must be one of checkpoint, restore, evaluation, rendezvous, not {name!r}")
        with self.clock.phase(name):
            yield
        self._phases()

    def plan(self, start_step: int, total_steps: int | None, previous_step: int | None = None) -> None:
        """Where this run starts and ends (the steps an earlier run reached: the steps it redoes)."""
        self.start_step, self.total_steps = start_step, total_steps
        self.metrics.plan(start_step, total_steps, self.clock.origin, previous_step)

    def _phases(self) -> None:
        self.clock.train_until_now()
        phases = self.clock.as_dict()
        self.metrics.phases(phases)
        goodput: dict[str, Any] = {"startStep": self.start_step or 0, "phases": phases,
                                   "startedAt": round(self.clock.origin, 1)}
        if self.step is not None:  # the final progress, for a job that ends between two of the operator's polls
            goodput.update(step=self.step, totalSteps=self.total_steps)
        self.evaluation.goodput = goodput

    # --- what the operator reads ---------------------------------------------------------------------
    def publish(self, final: bool = False) -> None:
        """Rank 0's termination message (the evaluation, the phases, the last step), at most once a second
        unless `final`."""
        if not self.ctx.is_main or self._failed:
            return
        now = time.monotonic()
        if final or now - self._published_at >= PUBLISH_INTERVAL_SECONDS:
            self.evaluation.publish()
            self._published_at = now

    def publish_final(self) -> None:
        self._phases()
        self.publish(final=True)

    def _at_exit(self) -> None:
        """The interpreter's exit without finish(): what is left goes to the tracker (the run is not ended: a
        restart goes on with it), and the last step to the operator."""
        self._close_tracker(None, timeout=10.0)
        self.publish_final()

    def report(self, *, step: int, loss: float, epoch: int = 0, total_steps: int | None = None,
               samples_per_second: float | None = None, tokens_per_second: float | None = None,
               metrics: dict[str, float] | None = None, log: bool = False) -> None:
        """A step: Prometheus metrics on every rank, the progress record on rank 0 (and its log line with
        `log`); `metrics` are evaluation results. With no objective in the spec, the loss is it."""
        self.begin_training()
        if self.start_step is None:
            self.plan(max(step - 1, 0), total_steps)
        elif total_steps is not None and total_steps != self.total_steps:
            self.plan(self.start_step, total_steps)
        self.metrics.step(step, epoch, loss, samples_per_second, tokens_per_second)
        self.step, self.epoch = step, epoch
        if self.tracker is not None:  # every step: nothing is built for a job without spec.tracking
            rates = {k: v for k, v in (("samples_per_second", samples_per_second),
                                       ("tokens_per_second", tokens_per_second)) if v is not None}
            self.tracker.log_metrics({"loss": loss, **rates, **(metrics or {})}, step)
        self._phases()
        evaluated = dict(metrics or {})
        if self.evaluation.objective.metric == "loss" and "loss" not in evaluated:
            evaluated["loss"] = loss  # the default objective (loss, minimized) is the loss the script reports
        if evaluated:
            self.metrics.evaluation(evaluated, step)
            self.evaluation.update(evaluated, step, epoch)
        self.publish(final=bool(metrics))
        if self.ctx.is_main:
            latest = {m: e["value"] for m, e in self.evaluation.latest.items()}
            record = self.progress.record(step=step, total_steps=self.total_steps, epoch=epoch, loss=loss,
                                          samples_per_second=samples_per_second, metrics=latest)
            if log:
                print(f"LUDUS_PROGRESS {json.dumps(record)}", flush=True)

    def evaluated(self, results: dict[str, float], step: int | None = None, epoch: int | None = None) -> None:
        """An evaluation of the model being trained (at the current step unless told)."""
        step = (self.step or 0) if step is None else step
        epoch = self.epoch if epoch is None else epoch
        self.metrics.evaluation(results, step)
        self.evaluation.update(results, step, epoch)
        self._phases()
        if self.tracker is not None:
            self.tracker.log_metrics(results, step)
            self._track_goodput()
        self.publish(final=True)
        if self.ctx.is_main:
            print(f"LUDUS_EVAL epoch={epoch} step={step} " + " ".join(f"{k}={v:.4f}" for k, v in results.items()),
                  flush=True)

    def baseline(self, results: dict[str, float]) -> None:
        """The starting weights (spec.init: a ContinuousTraining's champion) evaluated on this run's own
        data before training: promotion compares the run's final evaluation with it, on the same data."""
        self.evaluation.set_baseline(results)
        if self.tracker is not None:
            self.tracker.log_metrics({f"baseline_{k}": v for k, v in results.items()}, self.step or 0)
        self.publish(final=True)
        if self.ctx.is_main:
            print("LUDUS_BASELINE " + json.dumps(self.evaluation.baseline, sort_keys=True), flush=True)

    # --- checkpoints -----------------------------------------------------------------------------------
    def checkpoints(self, keep: int = 3) -> CheckpointManager | ObjectCheckpoints:
        return open_checkpoints(self.directory, keep=keep)

    def resume(self, manager: CheckpointManager | ObjectCheckpoints | None = None) -> dict[str, Any] | None:
        """The newest checkpoint any rank can read, loaded from that rank on every rank (None: start fresh).
        Collective. What the harness kept in it (the evaluation, the baseline) comes back too."""
        manager = manager or self.checkpoints()
        with self.phase("restore"):
            if isinstance(manager, CheckpointManager):
                state = agree_on_checkpoint(self.ctx, manager)
            else:
                state = agree_on_object_checkpoint(self.ctx, manager)
        if state is not None:
            kept = state.get(CHECKPOINT_KEY) or {}
            # Checkpoints written before the harness had its own key kept the evaluation at the top level.
            record = kept.get("evaluation") if isinstance(kept, dict) else None
            tracking = self.evaluation.tracking
            self.evaluation = EvaluationRecord.from_dict(record or state.get("evaluation"), self.evaluation.objective)
            self.evaluation.tracking = tracking
            self._newest_checkpoint(manager, state.get("step"))
        return state

    def save_checkpoint(self, step: int, state: dict[str, Any],
                        manager: CheckpointManager | ObjectCheckpoints | None = None, wait: bool = False) -> None:
        """Save `state` with the harness' own part (timed as the checkpoint phase): every rank calls it.
        In a directory rank 0 writes it atomically. In object storage every rank writes its shard to local
        disk and uploads it in the background, and rank 0 commits it once all are up; `wait` (the last save,
        a SIGTERM's) returns once it is committed. `finish()` waits for any upload still in flight."""
        manager = manager or self.checkpoints()
        whole = {**state, CHECKPOINT_KEY: {"evaluation": self.evaluation.as_dict()}}
        if not isinstance(manager, CheckpointManager):
            if manager.on_commit is None and self.ctx.is_main:
                manager.on_commit = self._committed
            if not any(m is manager for m in self._uploading):
                self._uploading.append(manager)
            with self.phase("checkpoint"):
                manager.save(step, whole, score=self._score(), wait=wait)
            self.metrics.checkpoint(manager.last_duration or 0.0)
            return
        if not self.ctx.is_main:
            return
        with self.phase("checkpoint"):
            manager.save(step, whole)
        self.metrics.checkpoint(manager.last_duration or 0.0)
        self._newest_checkpoint(manager, step)

    def _committed(self, marker: dict[str, Any]) -> None:
        """An object-store checkpoint committed (rank 0, from its upload thread)."""
        self._report_checkpoint(int(marker["step"]), int(marker.get("sizeBytes") or 0),
                                float(marker.get("time") or time.time()))

    def _report_checkpoint(self, step: int, size: int, committed_at: float) -> None:
        """Where the job can resume from: on the metrics page, and in the termination message (read once the
        pods are gone: the last save is often after the last poll)."""
        self.metrics.newest_checkpoint(step, size, committed_at)
        self.evaluation.checkpoint = {"step": step, "sizeBytes": size, "time": round(committed_at, 3)}

    def flush_checkpoints(self) -> None:
        """Wait for the uploads still in flight (rank 0: their commits)."""
        while self._uploading:
            self._uploading.pop().flush()

    def _newest_checkpoint(self, manager: CheckpointManager | ObjectCheckpoints, step: object) -> None:
        """Rank 0 tells the operator where the job can resume from (status.checkpoint)."""
        if not self.ctx.is_main or not isinstance(step, int) or isinstance(step, bool):
            return
        try:
            size, committed_at = manager.describe(step)
        except (OSError, ValueError) as err:  # pruned meanwhile, or a store that did not answer: next save
            logger.warning("cannot describe checkpoint %d: %s", step, err)
            return
        self._report_checkpoint(step, size, committed_at)

    def _score(self) -> float | None:
        """The objective's latest value, larger is better: what retention keeps the best checkpoint by."""
        objective = self.evaluation.objective
        value = self.evaluation.latest.get(objective.metric, {}).get("value")
        if value is None:
            return None
        return float(value) if objective.goal == "maximize" else -float(value)

    def stop_requested(self) -> bool:
        """Whether any rank got SIGTERM (collective). From the first call on, SIGTERM only sets the flag."""
        if not self._polls_stop:
            StopSignal.install()
            self._polls_stop = True
        return any_rank_asked_to_stop(self.ctx)

    # --- models in and out ---------------------------------------------------------------------------
    def init_model(self, model: nn.Module, settings: InitSettings | None = None) -> InitReport | None:
        """Load spec.init's model into `model` (strict, frozen prefixes) on every rank; None without one. A
        model that cannot be loaded ends the run with InitFailed (no restart mends it)."""
        settings = settings or InitSettings.from_environ()
        if settings.source is None and settings.uri is None:
            return None
        try:
            report = self._load_init(model, settings)
        except InitError as err:
            logger.error("cannot start from the model: %s", err)
            if self.ctx.is_main:
                publish_error("InitFailed", str(err))
            self._failed = True
            _dist.shutdown()
            raise SystemExit(EXIT_INIT_FAILED) from err
        logger.info("initialised from %s (step %s, sha256 %s): %d tensors loaded, re-initialised %s, frozen %s",
                    report.source, report.step, report.sha256[:12], len(report.loaded),
                    report.reinitialized or "none", report.frozen or "none")
        self.lineage = [report.as_dict()]
        self.evaluation.init = {k: report.as_dict().get(k) for k in ("source", "step", "sha256", "reinitialized")}
        self.metrics.initialized(report.source, report.step, report.sha256, report.reinitialized)
        if self.ctx.is_main:
            print(f"LUDUS_INIT {json.dumps(report.as_dict())}", flush=True)
            self.publish(final=True)
        return report

    def _load_init(self, model: nn.Module, settings: InitSettings) -> InitReport:
        """From a path, or from object storage (every rank downloads it to its own disk, then loads it)."""
        if settings.uri is None:
            assert settings.source is not None
            return load_into(model, settings.source, strict=settings.strict, freeze=list(settings.freeze))
        from ludus_trainer.remote_model import fetch_model

        local = fetch_model(settings.uri, self.directory / f".init-model-{self.ctx.env.rank}")
        report = load_into(model, local, strict=settings.strict, freeze=list(settings.freeze))
        return replace(report, source=f"{settings.uri.rstrip('/')}/{WEIGHTS}")

    def export_model(self, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path | None:
        """Rank 0 writes `model` where a ContinuousTraining promotes from and `init.fromJob` reads
        (`<checkpoint dir>/model`, and `<checkpoint.uri>/model` with object storage); returns its local
        directory (None on other ranks)."""
        if not self.ctx.is_main:
            return None
        exported = _export(self.directory, model, {
            "job": self.ctx.env.job, "step": self.step, "epoch": self.epoch, "world_size": self.ctx.world_size,
            "evaluation": {m: e["value"] for m, e in self.evaluation.latest.items()},
            "baseline": {m: e["value"] for m, e in self.evaluation.baseline.items()},
            "objective": {"metric": self.evaluation.objective.metric, "goal": self.evaluation.objective.goal},
            "initializedFrom": self.lineage, "workload": "script", **(metadata or {})})
        uri = os.environ.get(ENV_CHECKPOINT_URI)
        if uri:  # where init.uri and init.fromJob read it: the pod's disk goes with the pod
            from ludus_trainer.remote_model import upload_model

            remote = upload_model(exported, uri.rstrip("/") + "/model")
            print(f"LUDUS_MODEL {remote}", flush=True)
        else:
            print(f"LUDUS_MODEL {exported}", flush=True)
        if self.tracker is not None:
            self.tracker.log_model(exported)
        return exported

    def finish(self, tracking_status: str | None = "FINISHED") -> None:
        """Leave the last step and evaluation for the operator (and the tracker's run, ended with
        `tracking_status`), then the process group."""
        self.flush_checkpoints()
        self._close_tracker(tracking_status)
        self.publish_final()
        _dist.shutdown(together=True)
