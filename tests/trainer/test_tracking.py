"""The trainer's experiment tracking on a real MLflow tracking server (devcluster.tracking), read back through
its REST API: a server that is down and comes back, a Sweep's parent run, a ContinuousTraining's registered
model. A digits run on real pods, read back the same way, is tests/e2e/test_real_pods.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.agents import Store, start_agent
from devcluster.kubectl import wait_for
from devcluster.paths import binary, free_port
from devcluster.tracking import TrackingServer

pytestmark = pytest.mark.skipif(not binary("venv/bin/python").exists(),
                                reason="MLflow's server is not built (make cluster-binaries)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    tracker = TrackingServer(tmp_path_factory.mktemp("mlflow"))
    tracker.up()
    yield tracker
    tracker.down()


def _env(server: TrackingServer, uid: str, experiment: str, **extra: str) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": server.url(), "LUDUS_TRACKING_EXPERIMENT": experiment, "LUDUS_JOB_UID": uid,
            "LUDUS_IMAGE": "ludus-trainer:test", "LUDUS_GIT_COMMIT": "0123abc", **extra}


def _run_of(server: TrackingServer, experiment: str, uid: str) -> dict[str, Any]:
    runs = server.runs(experiment, f"tags.`ludus.uid` = '{uid}'")
    assert len(runs) == 1, runs
    return runs[0]


GATED_SCRIPT = '''
"""Steps while the tracker may be down; the last step waits for a gate file (the test's signal)."""
import os, time
from pathlib import Path
from ludus_trainer import api

api.init()
api.log_params({"width": 64})
for step in range(1, 31):
    if step == 30:
        while not Path(os.environ["GATE"]).exists():
            time.sleep(0.2)
    api.report(step=step, loss=1.0 / step, total_steps=30, metrics={"accuracy": step / 30} if step % 10 == 0 else None)
    time.sleep(0.05)
api.finish()
'''


def _tracking_info(port: int) -> dict[str, str] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as page:
            text = page.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("ludus_trainer_tracking_info{") and line.endswith(" 1.0"):
            return dict(part.split("=", 1) for part in line[line.index("{") + 1:line.rindex("}")]
                        .replace('"', "").split(","))
    return None


def test_a_tracker_that_is_down_costs_the_run_nothing_and_gets_everything_once_back(server: TrackingServer,
                                                                                     tmp_path: Path) -> None:
    """With the server stopped the script trains on and reports TrackerUnavailable; a run whose server stays
    down to the end still exits 0 and says so in its termination message. Once the server is back, the
    buffered steps arrive: the run is complete, every step in order."""
    script = tmp_path / "gated.py"
    script.write_text(GATED_SCRIPT)
    server.down()
    try:
        gate, port = tmp_path / "gate", free_port()
        env = _env(server, "uid-gated", "gated-exp", GATE=str(gate), LUDUS_TRACKING_FINISH_SECONDS="2")
        (tmp_path / "down").mkdir()
        with Store() as store:
            down = start_agent("down", store=store, tmp=tmp_path / "down", nnodes=(1, 1), nproc=1,
                               checkpoint_dir=tmp_path / "ckpt-down", trainer_args=["--script", str(script)],
                               extra_env={**env, "LUDUS_JOB_UID": "uid-down"})
            gate.touch()
            assert down.wait(timeout=300) == 0, down.text()[-3000:]
        message = json.loads((tmp_path / "down" / "down.termination-log").read_text())["ludusEvaluation"]
        assert message["tracking"]["ok"] is False and message["tracking"]["reason"] == "TrackerUnavailable"
        assert message["tracking"]["pending"] > 30 and "runId" not in message["tracking"]
        gate.unlink()
        with Store() as store:
            agent = start_agent("a", store=store, tmp=tmp_path, nnodes=(1, 1), nproc=1, checkpoint_dir=tmp_path / "c",
                                trainer_args=["--script", str(script)], metrics_port=port,
                                extra_env={**env, "LUDUS_TRACKING_FINISH_SECONDS": "120"})
            seen = wait_for(lambda: (_tracking_info(port) or {}).get("state") == "failing" and _tracking_info(port),
                            timeout=120, what="the trainer reporting the tracker down")
            assert seen["reason"] == "TrackerUnavailable" and seen["run_id"] == "", seen
            server.up()
            gate.touch()
            assert agent.wait(timeout=300) == 0, agent.text()[-3000:]
    finally:
        server.up()
    run = _run_of(server, "gated-exp", "uid-gated")
    assert run["info"]["status"] == "FINISHED"
    assert [s for s, _ in server.history(run["info"]["run_id"], "loss")] == list(range(1, 31))
    assert server.history(run["info"]["run_id"], "accuracy") == [(10, pytest.approx(1 / 3)),
                                                                  (20, pytest.approx(2 / 3)), (30, 1.0)]
    assert run["params"]["width"] == "64"
    message = json.loads((tmp_path / "a.termination-log").read_text())["ludusEvaluation"]
    assert message["tracking"]["ok"] is True and message["tracking"]["runId"] == run["info"]["run_id"]


LRS = ["0.001", "0.002", "0.003", "0.004", "0.005", "0.006"]
TRIAL_SCRIPT = '''
from ludus_trainer import api

api.init()
for step in range(1, 4):
    api.report(step=step, loss=1.0 / step, total_steps=3, metrics={"accuracy": 0.1 * step} if step == 3 else None)
api.finish()
'''


def test_six_trials_started_together_are_children_of_one_parent_run(server: TrackingServer, tmp_path: Path) -> None:
    """A Sweep's trials start at once and each may create the parent run: one parent is left, with all six
    trials as its children (MLflow's parentRunId tag), each with its own parameters."""
    script = tmp_path / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    procs = []
    for n in range(6):
        env = {**os.environ, **_env(server, f"uid-trial-{n}", "sweep-exp"), "OMP_NUM_THREADS": "1",
               "LUDUS_JOB_NAME": f"trial-{n}", "LUDUS_TRACKING_PARENT": "Sweep:ns/search",
               "LUDUS_TRIAL_PARAMETERS": json.dumps({"lr": LRS[n], "width": "32"}),
               "LUDUS_TERMINATION_LOG": str(tmp_path / f"{n}.termination-log"), "LUDUS_METRICS_PORT": "0",
               "LUDUS_CHECKPOINT_DIR": str(tmp_path / f"ckpt-{n}")}
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outputs
    runs = server.runs("sweep-exp")
    parents = [r for r in runs if r["tags"].get("ludus.uid") == "Sweep:ns/search"]
    assert len(parents) == 1, [r["data"] for r in parents]
    children = [r for r in runs if r["tags"].get("mlflow.parentRunId") == parents[0]["info"]["run_id"]]
    assert len(children) == 6
    assert sorted(r["params"]["lr"] for r in children) == LRS
    assert all(r["info"]["status"] == "FINISHED" for r in children)


def test_a_trial_stopped_early_is_tagged_and_its_run_ended_killed(
        server: TrackingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's record pod for a Sweep trial stopped early: the trainer, stopped by SIGTERM, left its run
    RUNNING (a suspended job resumes); the record tags the run with why and ends it KILLED, its metrics kept."""
    from ludus_trainer import registry
    from ludus_trainer.tracking import Tracker, TrackingSettings

    settings = TrackingSettings(uri=server.url(), experiment="stopped-exp", job="search-3", namespace="team-a",
                                uid="uid-search-3")
    tracker = Tracker(settings, flush_seconds=0.2)
    tracker.log_metrics({"accuracy": 0.1}, step=10)
    assert tracker.finish(None).ok  # as after SIGTERM
    assert _run_of(server, "stopped-exp", "uid-search-3")["info"]["status"] == "RUNNING"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url())
    monkeypatch.setenv("LUDUS_TERMINATION_LOG", str(tmp_path / "record.log"))
    assert registry.main(["--stopped-early", "--tracking-run", str(tracker.run_id), "--reason", "StoppedEarly",
                          "--message", "accuracy 0.1 is worse than the median of earlier trials at step 10"]) == 0
    assert json.loads((tmp_path / "record.log").read_text()) == {"stoppedRun": tracker.run_id}
    run = _run_of(server, "stopped-exp", "uid-search-3")
    assert run["info"]["status"] == "KILLED"
    assert (run["tags"]["ludus.stopped_early"], run["tags"]["ludus.stop_reason"]) == ("true", "StoppedEarly")
    assert run["tags"]["ludus.stop_message"].startswith("accuracy 0.1 is worse")
    assert server.history(str(tracker.run_id), "accuracy") == [(10, 0.1)]
    # An unknown run: the pod says why and fails (the operator turns that into a Warning).
    assert registry.main(["--stopped-early", "--tracking-run", "0" * 32, "--reason", "StoppedEarly"]) == 1
    assert "error" in json.loads((tmp_path / "record.log").read_text())


def _exported(root: Path, run: str) -> Path:
    """A run's exported model where a ContinuousTraining keeps it (runs/<run>/model on its claim)."""
    import torch

    from ludus_trainer.model_io import export_model

    torch.manual_seed(len(run))
    return export_model(root / "runs" / run, torch.nn.Linear(4, 2), {"job": run})


def test_continuous_training_runs_are_versions_and_publication_moves_the_champion_alias_once(
        server: TrackingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run's model is one version of the ContinuousTraining's registered model, even when the run exports
    again after a restart; publishing a run (on the claim, then in MLflow) puts the `champion` alias on its
    version, a publication repeated after an operator restart leaves it there, and a rejected run's version
    is tagged with the reason."""
    from ludus_trainer import publish
    from ludus_trainer.tracking import Tracker, TrackingSettings

    name, runs = "team-a.nightly", {}
    for run in ("nightly-0", "nightly-1", "nightly-0", "nightly-2"):  # nightly-0 twice: a restart exports again
        settings = TrackingSettings(uri=server.url(), experiment="ct-exp", job=run, namespace="team-a",
                                    uid=f"uid-{run}", registered_model=name)
        tracker = Tracker(settings, flush_seconds=0.2)
        tracker.log_model(_exported(tmp_path, run))
        assert tracker.finish("FINISHED").ok
        runs[run] = tracker.run_id
    query = urllib.parse.quote(f"name = '{name}'")
    found = server.api("GET", f"model-versions/search?filter={query}")["model_versions"]
    assert sorted((v["version"], v["run_id"]) for v in found) == [
        ("1", runs["nightly-0"]), ("2", runs["nightly-1"]), ("3", runs["nightly-2"])]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url())
    monkeypatch.setenv("LUDUS_TERMINATION_LOG", str(tmp_path / "publish.log"))

    def publish_run(run: str, reason: str) -> dict[str, Any]:
        assert publish.main(["--root", str(tmp_path), "--run", run, "--registered-model", name,
                             "--tracking-run", runs[run], "--reason", reason]) == 0
        return dict(json.loads((tmp_path / "publish.log").read_text()))

    assert publish_run("nightly-0", "FirstModel")["registryVersion"] == "1"
    assert publish_run("nightly-1", "Better")["registryVersion"] == "2"
    assert publish_run("nightly-1", "Better")["registryVersion"] == "2"  # the same publication, once more
    model = server.api("GET", f"registered-models/get?name={name}")["registered_model"]
    assert {a["alias"]: a["version"] for a in model.get("aliases", [])} == {"champion": "2"}
    version = server.api("GET", f"model-versions/get?name={name}&version=2")["model_version"]
    assert {t["key"]: t["value"] for t in version["tags"]}["ludus.reason"] == "Better"
    assert os.readlink(tmp_path / "champion") == "runs/nightly-1/model"
    # nightly-2 is rejected: the operator's record pod tags its version with why; the alias stays.
    from ludus_trainer import registry

    assert registry.main(["--registered-model", name, "--tracking-run", runs["nightly-2"], "--reason", "NotBetter",
                          "--message", "accuracy 0.91 is not above 0.95"]) == 0
    rejected = server.api("GET", f"model-versions/get?name={name}&version=3")["model_version"]
    tags = {t["key"]: t["value"] for t in rejected["tags"]}
    assert (tags["ludus.promoted"], tags["ludus.reason"]) == ("false", "NotBetter")
    assert tags["ludus.message"] == "accuracy 0.91 is not above 0.95"
    model = server.api("GET", f"registered-models/get?name={name}")["registered_model"]
    assert {a["alias"]: a["version"] for a in model.get("aliases", [])} == {"champion": "2"}


def test_a_refusal_is_told_from_a_server_that_is_not_there_by_its_status_not_by_digits_in_the_address() -> None:
    """CI saw Tracked=False TrackerRefused for a stopped server on port 40341: '403' matched the address."""
    from mlflow.exceptions import MlflowException

    from ludus_trainer.tracking import _refused

    down = MlflowException("API request to http://10.244.0.1:40341/api/2.0/mlflow/runs/log-batch failed with "
                           "exception HTTPConnectionPool(host='10.244.0.1', port=40341): Max retries exceeded")
    assert not _refused(down)
    assert _refused(MlflowException("API request to endpoint /api/2.0/mlflow/runs/create failed with error code "
                                    "401 != 200. Response body: 'You are not authenticated'"))
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

    assert _refused(MlflowException("denied", error_code=PERMISSION_DENIED))
