"""Per-pod Prometheus metrics (prefix `ludus_trainer_`), labelled by job and rank."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


@dataclass
class TrainerMetrics:
    job: str
    rank: int
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ["job", "rank"]
        r = self.registry

        def gauge(name: str, doc: str, extra: list[str] | None = None) -> Gauge:
            return Gauge(f"ludus_trainer_{name}", doc, labels + (extra or []), registry=r)

        self._step = gauge("step", "Optimizer steps done")
        self._epoch = gauge("epoch", "Current epoch")
        self._loss = gauge("loss", "Latest training loss")
        self._samples = gauge("samples_per_second", "Training samples per second across all ranks")
        self._tokens = gauge("tokens_per_second", "Training tokens per second across all ranks")
        self._eval = gauge("eval_metric", "Latest evaluation metric (accuracy, precision, recall, f1)", ["metric"])
        self._eval_step = gauge("eval_step", "The optimizer step the latest evaluation was measured at")
        self._objective = gauge("objective", "The job's objective: 1 for its metric and goal", ["metric", "goal"])
        self._init = gauge("init_info", "The model this run started from (transfer learning): 1 for its file, "
                           "the step it was saved at, its weights' SHA-256 and the tensors re-initialised "
                           "(strict: false)", ["source", "step", "sha256", "reinitialized"])
        self._ckpt_time = gauge("checkpoint_last_timestamp_seconds", "When the last checkpoint was written")
        self._ckpt_duration = gauge("checkpoint_duration_seconds", "How long the last checkpoint took to write")
        self._ckpt_step = gauge("checkpoint_step", "The step of the newest complete checkpoint (saved or resumed from)")
        self._ckpt_bytes = gauge("checkpoint_bytes", "The size of the newest complete checkpoint, every shard")
        self._ckpt_committed = gauge("checkpoint_committed_timestamp_seconds",
                                     "When the newest complete checkpoint was completed")
        self._tracking = gauge("tracking_info", "The experiment tracker's run: 1 for its run and experiment IDs, "
                               "whether everything so far reached it and why not", ["run_id", "experiment_id",
                                                                                     "state", "reason"])
        self._tracking_pending = gauge("tracking_pending", "Values waiting in the buffer for the experiment tracker")
        self._world = gauge("world_size", "Processes in the current group")
        self._gpu_mem = gauge("gpu_memory_bytes", "GPU memory allocated by this process")
        self._gpu_util = gauge("gpu_utilization_ratio", "GPU utilisation (0-1) where NVML is available")
        self._mfu = gauge("model_flops_utilization_ratio", "Model FLOPs utilisation (0-1), on a GPU")
        self._start_step = gauge("start_step", "Step this process resumed from (0 on a fresh start)")
        self._total_steps = gauge("total_steps", "Steps the run will take in all")
        self._previous = gauge("previous_run_step", "The furthest step an earlier run of this job recorded")
        self._started = gauge("start_timestamp_seconds", "When this run began: the container's start, or the "
                              "process's after an in-place restart")
        self._phase = gauge("phase_seconds", "Seconds this process spent per phase (startup, rendezvous, restore, "
                            "train, checkpoint, evaluation)", ["phase"])
        self._restarts = Counter(
            "ludus_trainer_restarts", "Worker-group restarts this process has seen", labels, registry=r
        )
        self._steps_total = Counter("ludus_trainer_steps", "Optimizer steps run by this process", labels, registry=r)

    def _l(self, gauge: Any, *extra: str) -> Any:
        return gauge.labels(self.job, str(self.rank), *extra)

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)

    def started(self, world_size: int, restarts: int) -> None:
        self._l(self._world).set(world_size)
        self._l(self._restarts).inc(restarts)  # exported from the start, at 0 on a fresh run

    def step(self, step: int, epoch: int, loss: float, samples_per_s: float | None, tokens_per_s: float | None) -> None:
        self._l(self._step).set(step)
        self._l(self._epoch).set(epoch)
        self._l(self._loss).set(loss)
        self._l(self._steps_total).inc()
        if samples_per_s is not None:
            self._l(self._samples).set(samples_per_s)
        if tokens_per_s is not None:
            self._l(self._tokens).set(tokens_per_s)

    def plan(self, start_step: int, total_steps: int | None, started_at: float | None = None,
             previous_step: int | None = None) -> None:
        self._l(self._start_step).set(start_step)
        if previous_step is not None:
            self._l(self._previous).set(previous_step)
        if started_at is not None:
            self._l(self._started).set(started_at)
        if total_steps is not None:
            self._l(self._total_steps).set(total_steps)

    def phases(self, seconds: dict[str, float]) -> None:
        for phase, value in seconds.items():
            self._l(self._phase, phase).set(value)

    def objective(self, metric: str, goal: str) -> None:
        """Which metric is the objective, and its direction, from the start: the status says it while training."""
        self._l(self._objective, metric, goal).set(1)

    def initialized(self, source: str, step: int | None, sha256: str, reinitialized: list[str]) -> None:
        """What --init-from loaded, for status.initializedFrom (the model's lineage)."""
        self._l(self._init, source, "" if step is None else str(step), sha256, ",".join(reinitialized)).set(1)

    def evaluation(self, results: dict[str, float], step: int) -> None:
        for name, value in results.items():
            self._l(self._eval, name).set(value)
        self._l(self._eval_step).set(step)

    def checkpoint(self, duration: float) -> None:
        self._l(self._ckpt_time).set(time.time())
        self._l(self._ckpt_duration).set(duration)

    def newest_checkpoint(self, step: int, size_bytes: int, committed_at: float) -> None:
        """Where a job can resume from: what status.checkpoint shows (the operator names its location)."""
        self._l(self._ckpt_step).set(step)
        self._l(self._ckpt_bytes).set(size_bytes)
        self._l(self._ckpt_committed).set(committed_at)

    def tracking(self, run_id: str, experiment_id: str, ok: bool, reason: str, pending: int) -> None:
        """The tracker's run and state (status.tracking and the Tracked condition); one series at a time."""
        self._tracking.clear()
        self._l(self._tracking, run_id, experiment_id, "ok" if ok else "failing", reason).set(1)
        self._l(self._tracking_pending).set(pending)

    def gpu(self, memory_bytes: float, utilization: float | None, mfu: float | None) -> None:
        self._l(self._gpu_mem).set(memory_bytes)
        if utilization is not None:
            self._l(self._gpu_util).set(utilization)
        if mfu is not None:
            self._l(self._mfu).set(mfu)
