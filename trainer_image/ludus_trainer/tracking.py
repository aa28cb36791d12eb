"""Experiment tracking (spec.tracking): rank 0 records the run in an MLflow tracking server.

Training never waits for the tracker. The training thread only appends to a local buffer; one background
thread creates (or finds again, after a restart) the run and sends the buffer every few seconds. What a
server that is down or refusing could not take stays in the buffer for the next try and for the end of the
run, and the tracker's state (recorded, or why not) is reported to the operator on the metrics page and in
the termination message: the job goes on either way.

One run per TrainingJob, found by its UID tag (`ludus.uid`), so a restarted or rescheduled worker 0 goes on
writing the same run; a Sweep's trials are children of one parent run found by the Sweep's tag
(`ludus.parent`). MLflow's client is imported in the background thread, never on the start-up path.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ludus_trainer.env import (
    ENV_EXPERIMENT,
    ENV_IMAGE,
    ENV_JOB_NAME,
    ENV_JOB_NAMESPACE,
    ENV_JOB_UID,
    ENV_PARENT,
    ENV_REGISTERED_MODEL,
    ENV_TRACKING_URI,
)

logger = logging.getLogger("ludus_trainer.tracking")

CHAMPION_ALIAS: Final = "champion"
GIT_COMMIT_VARIABLES: Final = ("LUDUS_GIT_COMMIT", "GIT_COMMIT", "SOURCE_COMMIT")

TAG_UID: Final = "ludus.uid"
TAG_PARENT: Final = "ludus.parent"
# MLflow's own tags: its UI nests a run under its parent and shows the name and source commit.
TAG_PARENT_RUN: Final = "mlflow.parentRunId"
TAG_RUN_NAME: Final = "mlflow.runName"
TAG_GIT_COMMIT: Final = "mlflow.source.git.commit"

# Reasons the operator shows in the Tracked condition (one CamelCase word each).
RECORDED: Final = "Recorded"
UNAVAILABLE: Final = "TrackerUnavailable"
REFUSED: Final = "TrackerRefused"

FLUSH_SECONDS: Final = 5.0
# What one request of MLflow's log-batch may carry (its own limits).
BATCH_METRICS: Final = 1000
BATCH_PARAMS: Final = 100
BATCH_TAGS: Final = 100
MAX_PARAM_VALUE: Final = 6000
MAX_TAG_VALUE: Final = 5000
# The buffer keeps at most this many metric values; beyond it the oldest go (and the loss is counted).
MAX_BUFFERED_METRICS: Final = 200_000
# How long finish() keeps trying to send what is left (a server back within it gets the whole run);
# LUDUS_TRACKING_FINISH_SECONDS sets another.
FINAL_FLUSH_SECONDS: Final = 60.0
ENV_FINISH_SECONDS: Final = "LUDUS_TRACKING_FINISH_SECONDS"


@dataclass(frozen=True)
class TrackingSettings:
    """spec.tracking as the operator hands it to the workers."""

    uri: str
    experiment: str
    job: str
    namespace: str
    uid: str
    parent: str | None = None
    image: str | None = None
    git_commit: str | None = None
    registered_model: str | None = None

    @classmethod
    def from_environ(cls) -> TrackingSettings | None:
        env = os.environ
        uri = env.get(ENV_TRACKING_URI, "")
        if not uri:
            return None
        namespace = env.get(ENV_JOB_NAMESPACE, "default")
        job = env.get(ENV_JOB_NAME, "local")
        commit = next((env[v] for v in GIT_COMMIT_VARIABLES if env.get(v)), None)
        return cls(uri=uri, experiment=env.get(ENV_EXPERIMENT) or namespace, job=job, namespace=namespace,
                   uid=env.get(ENV_JOB_UID) or f"{namespace}/{job}", parent=env.get(ENV_PARENT) or None,
                   image=env.get(ENV_IMAGE) or None, git_commit=commit,
                   registered_model=env.get(ENV_REGISTERED_MODEL) or None)

    def tags(self) -> dict[str, str]:
        tags = {TAG_UID: self.uid, "ludus.job": self.job, "ludus.namespace": self.namespace,
                TAG_RUN_NAME: self.job}
        if self.image:
            tags["ludus.image"] = self.image
        if self.git_commit:
            tags[TAG_GIT_COMMIT] = self.git_commit
        if self.parent:
            tags[TAG_PARENT] = self.parent
        return tags


@dataclass(frozen=True)
class TrackingState:
    """What the operator reads: the run, and whether everything so far reached it."""

    ok: bool
    reason: str
    run_id: str | None = None
    experiment_id: str | None = None
    pending: int = 0  # values still in the buffer

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "reason": self.reason, "pending": self.pending}
        if self.run_id:
            out.update(runId=self.run_id, experimentId=self.experiment_id)
        return out


@dataclass
class _Buffer:
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, ms, step
    artifacts: list[tuple[Path, str]] = field(default_factory=list)  # local directory, artifact path
    register: str | None = None  # an artifact path to register as a version of the registered model
    finished: str | None = None  # the run's final status, once the script has ended

    def empty(self) -> bool:
        return not (self.params or self.tags or self.metrics or self.artifacts or self.finished or self.register)

    def size(self) -> int:
        return len(self.params) + len(self.tags) + len(self.metrics) + len(self.artifacts)


def metric_key(name: str) -> str:
    """A metric or parameter name MLflow takes (letters, digits, _ - . space : /), at most 250 characters."""
    kept = "".join(ch if ch.isalnum() or ch in "_-. :/" else "_" for ch in name.strip())[:250]
    return kept.strip("/") or "_"


# MLflow's client says an HTTP refusal as "... failed with error code 401 != 200"; requests' HTTPError as
# "401 Client Error". A bare "401" or "403" anywhere would also match an address (port 40341 did).
_HTTP_REFUSAL: Final = re.compile(r"error code (?:401|403)\b|\b(?:401|403) Client Error\b")


def _refused(err: BaseException) -> bool:
    """A server that answered no (credentials, permissions) rather than not at all."""
    code = getattr(err, "error_code", "") or ""
    status = getattr(getattr(err, "response", None), "status_code", None)
    return code in {"UNAUTHENTICATED", "PERMISSION_DENIED"} or status in (401, 403) \
        or _HTTP_REFUSAL.search(str(err)[:500]) is not None


def _invalid(err: BaseException) -> bool:
    """A request the server will never take (a parameter logged before with another value): not retried."""
    return (getattr(err, "error_code", "") or "") in {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS"}


class Tracker:
    """Rank 0's MLflow run: a buffer the training thread fills and a thread that sends it."""

    def __init__(self, settings: TrackingSettings, on_state: Callable[[TrackingState], None] | None = None,
                 flush_seconds: float = FLUSH_SECONDS, client: Any = None) -> None:
        self.settings, self.on_state, self.flush_seconds = settings, on_state, flush_seconds
        self._client = client
        self._lock = threading.Lock()
        self._buffer = _Buffer(tags=settings.tags())
        self._sent_params: dict[str, str] = {}
        self._dropped = 0
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.state = TrackingState(ok=True, reason=RECORDED)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ludus-tracking", daemon=True)
        self._thread.start()

    # --- what the training thread calls (never blocks on the server) ---------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        with self._lock:
            for name, value in params.items():
                key, text = metric_key(str(name)), str(value)[:MAX_PARAM_VALUE]
                if self._sent_params.get(key, text) != text or self._buffer.params.get(key, text) != text:
                    logger.warning("parameter %s was logged as %r before; MLflow keeps the first", key,
                                   self._sent_params.get(key) or self._buffer.params.get(key))
                    continue
                if key not in self._sent_params:
                    self._buffer.params[key] = text

    def set_tags(self, tags: dict[str, Any]) -> None:
        with self._lock:
            self._buffer.tags.update({str(k)[:250]: str(v)[:MAX_TAG_VALUE] for k, v in tags.items()})

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        with self._lock:
            for name, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    self._buffer.metrics.append((metric_key(name), float(value), now, int(step)))
            excess = len(self._buffer.metrics) - MAX_BUFFERED_METRICS
            if excess > 0:
                del self._buffer.metrics[:excess]
                self._dropped += excess

    def log_artifacts(self, directory: Path, artifact_path: str) -> None:
        with self._lock:
            self._buffer.artifacts.append((Path(directory), artifact_path))
        self._wake.set()

    def log_model(self, directory: Path) -> None:
        """The exported model as the run's `model` artifact, and a version of the registered model when this run
        belongs to a ContinuousTraining."""
        with self._lock:
            self._buffer.artifacts.append((Path(directory), "model"))
            if self.settings.registered_model:
                self._buffer.register = "model"
        self._wake.set()

    def finish(self, status: str | None = "FINISHED", timeout: float | None = None) -> TrackingState:
        """End the run: send what is left, trying for up to `timeout` seconds, and mark it `status` (None: a
        run interrupted, to be resumed, stays as it is)."""
        if timeout is None:
            timeout = float(os.environ.get(ENV_FINISH_SECONDS) or FINAL_FLUSH_SECONDS)
        with self._lock:
            self._buffer.finished = status
        deadline = time.monotonic() + timeout
        while True:
            self._wake.set()
            with self._lock:
                done = self._buffer.empty()
            if done or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        if not done or self._dropped:
            logger.warning("tracking: %d values never reached %s (%d more dropped from a full buffer)",
                           self._buffer.size(), self.settings.uri, self._dropped)
        return self.state

    # --- the sending thread -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Send the buffer once; what fails is put back for the next time."""
        with self._lock:
            if self._buffer.empty():
                return
            batch, self._buffer = self._buffer, _Buffer()
        try:
            self._send(batch)
        except Exception as err:  # noqa: BLE001 - any failure of the tracker must leave training alone
            self._put_back(batch)
            reason = REFUSED if _refused(err) else UNAVAILABLE
            if self.state.ok or self.state.reason != reason:
                logger.warning("tracking: %s at %s: %s", reason, self.settings.uri, str(err)[:300])
            self._report(False, reason)
            return
        self._report(True, RECORDED)

    def _put_back(self, batch: _Buffer) -> None:
        """A failed batch goes before what arrived meanwhile (metrics keep their order)."""
        with self._lock:
            newer = self._buffer
            batch.params.update(newer.params)
            batch.tags.update(newer.tags)
            batch.metrics.extend(newer.metrics)
            batch.artifacts.extend(newer.artifacts)
            batch.finished = newer.finished or batch.finished
            batch.register = newer.register or batch.register
            self._buffer = batch

    def _report(self, ok: bool, reason: str) -> None:
        with self._lock:
            pending = self._buffer.size()
        state = TrackingState(ok=ok, reason=reason, run_id=self.run_id, experiment_id=self.experiment_id,
                              pending=pending)
        if state != self.state:
            self.state = state
            if self.on_state is not None:
                self.on_state(state)

    def _mlflow(self) -> Any:
        if self._client is None:
            # One retry and a short timeout: a tracker that is down costs the thread seconds, not minutes.
            self._client = client_for(self.settings.uri)
        return self._client

    def _send(self, batch: _Buffer) -> None:
        client = self._mlflow()
        if self.run_id is None:
            self.experiment_id = ensure_experiment(client, self.settings.experiment)
            parent = ensure_parent(client, self.experiment_id, self.settings.parent) if self.settings.parent else None
            self.run_id = ensure_run(client, self.experiment_id, self.settings.uid, parent)
        self._send_batch(client, batch)
        while batch.artifacts:
            directory, path = batch.artifacts[0]
            client.log_artifacts(self.run_id, str(directory), path)
            batch.artifacts.pop(0)
        if batch.register and self.settings.registered_model:
            register_version(client, self.settings.registered_model, self.run_id, batch.register,
                             {"ludus.job": self.settings.job, "ludus.uid": self.settings.uid})
        batch.register = None
        if batch.finished:
            client.set_terminated(self.run_id, batch.finished)
            batch.finished = None

    def _send_batch(self, client: Any, batch: _Buffer) -> None:
        """Params, tags and metrics in MLflow's batch sizes; each part leaves the batch once it is sent."""
        from mlflow.entities import Metric, Param, RunTag

        while batch.params or batch.tags:
            params = dict(list(batch.params.items())[:BATCH_PARAMS])
            tags = dict(list(batch.tags.items())[:BATCH_TAGS])
            try:
                client.log_batch(self.run_id, params=[Param(k, v) for k, v in params.items()],
                                 tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)
            except Exception as err:
                if not _invalid(err):
                    raise
                logger.warning("tracking: the server refused parameters %s: %s", sorted(params), str(err)[:200])
            for key in params:
                self._sent_params[key] = batch.params.pop(key)
            for key in tags:
                batch.tags.pop(key)
        while batch.metrics:
            chunk = batch.metrics[:BATCH_METRICS]
            client.log_batch(self.run_id, metrics=[Metric(k, v, ms, step) for k, v, ms, step in chunk],
                             synchronous=True)
            del batch.metrics[:len(chunk)]


def _search(client: Any, experiment_id: str, filter_string: str) -> list[Any]:
    return list(client.search_runs([experiment_id], filter_string=filter_string, max_results=50,
                                   order_by=["attributes.start_time ASC"]))


def ensure_experiment(client: Any, name: str) -> str:
    """The experiment's ID, created when it does not exist yet (two creators: the loser reads the winner's)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ensure_run(client: Any, experiment_id: str, uid: str, parent_run_id: str | None) -> str:
    """This job's run: the one tagged with its UID (a restarted worker goes on with it), or a new one."""
    runs = _search(client, experiment_id, f"tags.`{TAG_UID}` = {_quoted(uid)}")
    if runs:
        run_id = str(runs[0].info.run_id)
        if runs[0].info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        return run_id
    tags = {TAG_UID: uid}
    if parent_run_id:
        tags[TAG_PARENT_RUN] = parent_run_id
    return str(client.create_run(experiment_id, tags=tags).info.run_id)


def ensure_parent(client: Any, experiment_id: str, parent: str) -> str:
    """The parent run every trial of one Sweep shares. Trials starting together may each create one: all keep
    the oldest, and a trial deletes the one it created when it is not that."""
    query = f"tags.`{TAG_PARENT}` = {_quoted(parent)} and tags.`{TAG_UID}` = {_quoted(parent)}"
    runs = _search(client, experiment_id, query)
    if runs:
        return str(runs[0].info.run_id)
    kind, _, name = parent.partition(":")
    created = client.create_run(experiment_id, tags={TAG_PARENT: parent, TAG_UID: parent,
                                                     TAG_RUN_NAME: name.rsplit("/", 1)[-1] or parent,
                                                     "ludus.kind": kind})
    runs = sorted(_search(client, experiment_id, query), key=lambda r: (r.info.start_time, r.info.run_id))
    oldest = str(runs[0].info.run_id) if runs else str(created.info.run_id)
    if oldest != created.info.run_id:
        client.delete_run(created.info.run_id)
    return oldest



def _exists(call: Callable[[], Any]) -> None:
    """Create something that may exist already (another run made it first)."""
    try:
        call()
    except Exception as err:
        if (getattr(err, "error_code", "") or "") != "RESOURCE_ALREADY_EXISTS":
            raise


def version_of(client: Any, name: str, run_id: str) -> Any | None:
    """The registered model's version made from this run, if any."""
    found = list(client.search_model_versions(f"name = {_quoted(name)} and run_id = {_quoted(run_id)}"))
    return min(found, key=lambda v: int(v.version)) if found else None


def register_version(client: Any, name: str, run_id: str, artifact_path: str, tags: dict[str, str]) -> str:
    """One version per run: a restarted run that exports again finds the version it made before."""
    _exists(lambda: client.create_registered_model(name, tags={"ludus.kind": "ContinuousTraining"}))
    existing = version_of(client, name, run_id)
    if existing is not None:
        return str(existing.version)
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
    return str(client.create_model_version(name, source, run_id=run_id, tags=tags).version)


def promote_version(client: Any, name: str, run_id: str, reason: str) -> str:
    """Move the registered model's `champion` alias to this run's version (idempotent: a publication run
    again after an operator restart leaves it where it is); the version is tagged with why."""
    version = version_of(client, name, run_id)
    if version is None:
        raise LookupError(f"registered model {name} has no version of run {run_id}")
    number = str(version.version)
    client.set_model_version_tag(name, number, "ludus.reason", reason[:MAX_TAG_VALUE])
    client.set_model_version_tag(name, number, "ludus.promoted", "true")
    client.set_registered_model_alias(name, CHAMPION_ALIAS, number)
    return number


def reject_version(client: Any, name: str, run_id: str, reason: str, message: str) -> str | None:
    """Tag a rejected run's version with why it was not promoted (None: the run registered no version).
    The verdict is written after its reason, so whoever reads `ludus.promoted` also finds why."""
    version = version_of(client, name, run_id)
    if version is None:
        return None
    number = str(version.version)
    for key, value in (("ludus.reason", reason), ("ludus.message", message), ("ludus.promoted", "false")):
        client.set_model_version_tag(name, number, key, value[:MAX_TAG_VALUE])
    return number


def mark_stopped_early(client: Any, run_id: str, reason: str, message: str) -> None:
    """A Sweep trial stopped early: its run tagged with why and ended KILLED (a trainer stopped by SIGTERM
    leaves its run RUNNING, since a suspended job resumes; a trial stopped early never does)."""
    for key, value in (("ludus.stop_reason", reason), ("ludus.stop_message", message),
                       ("ludus.stopped_early", "true")):
        client.set_tag(run_id, key, value[:MAX_TAG_VALUE])
    client.set_terminated(run_id, "KILLED")


def client_for(uri: str) -> Any:
    """MLflow's client with the short retry and timeout the trainer uses."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)
