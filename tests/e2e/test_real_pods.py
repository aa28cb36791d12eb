"""TrainingJobs on real pods: training, a deleted worker (worker 0 and another), scale-up, a user's script."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from devcluster.agents import progress_steps
from devcluster.jobs import (
    StatusWatch,
    events,
    kill_pod_processes,
    now,
    phase,
    progress_step,
    real_job,
    result_from_logs,
    unique,
    wait_phase,
    wait_step,
    worker_logs,
)
from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from devcluster.tracking import TrackingServer

INTERVAL = 20
SLOW = ["--epochs", "30", "--log-every", "1", "--step-delay", "0.1"]


def test_digits_trains_on_real_pods_through_the_headless_service(
    k: Kubectl, operator: OperatorProcess, real_node: object, tracking_server: TrackingServer,
    tracking: dict[str, Any],
) -> None:
    """Two workers of two processes train digits; the status shows the progress, the evaluation and the
    goodput, and the run is in the experiment tracker with the same evaluation and the exported model."""
    name = unique("digits")
    watch = StatusWatch(k)
    try:
        # Slowed down a little so that a 2 s progress interval sees the step move several times.
        body = real_job(name, args=["--epochs", "30", "--log-every", "5", "--step-delay", "0.03"])
        body["spec"]["tracking"] = tracking
        k.apply(body)
        wait_phase(k, name, "Succeeded")
        time.sleep(1)
    finally:
        watch.stop()
    writes = watch.writes(name)
    steps = [w["step"] for w in writes if w["step"] is not None]
    assert len(set(steps)) >= 3 and steps == sorted(steps), writes  # progress moved, never back
    # The end is not batched: no write shows a Running job with fewer workers than it ran with.
    running = [w for w in writes if w["phase"] == "Running"]
    assert running and all(w["workers"] == "2/2" for w in running), writes
    pods = k.items("pods", f"ludus.dev/job-name={name},ludus.dev/role=worker")
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"].startswith("ludus-node-")  # a real node, never a kwok one
        container_id = pod["status"]["containerStatuses"][0]["containerID"]
        assert container_id.startswith("containerd://"), container_id
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["PET_RDZV_ENDPOINT"] == f"{name}-rdzv.{name}.{k.namespace}.svc:29400"
    logs = worker_logs(k, name)
    result = result_from_logs(logs)
    assert result is not None and result["world_size"] == 4
    assert result["accuracy"] >= 0.95 and result["f1"] >= 0.9
    # The evaluation outlives the pods: it reached the status through the trainer's termination
    # message, not over the network, and equals what the trainer logged.
    k.run("delete", "pods", "-l", f"ludus.dev/job-name={name}", "--wait=true")
    evaluation = k.json("tj", name)["status"]["evaluation"]
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert round(evaluation["latest"][metric]["value"], 4) == round(result[metric], 4), metric
        assert evaluation["latest"][metric]["step"] == result["step"]
    assert evaluation["objective"]["metric"] == "accuracy" and evaluation["objective"]["goal"] == "maximize"
    assert evaluation["objective"]["best"] >= evaluation["objective"]["value"] >= 0.95
    assert f"accuracy {result['accuracy']:.4g}" in k.run("get", "tj", name).stdout
    status = k.json("tj", name)["status"]
    assert status["progress"]["step"] == status["progress"]["totalSteps"] == result["step"]
    _check_goodput(status["goodput"])
    assert status["goodput"]["badput"]["recovery"]["seconds"] == 0 and status["goodput"]["stepsRedone"] == 0
    # Nothing counted twice (queued and the trainer's start-up overlap until it says when it started):
    # the parts fit in the job's own wall time.
    job = k.json("tj", name)
    created = datetime.fromisoformat(job["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(status["completionTime"].replace("Z", "+00:00"))
    assert status["goodput"]["wallSeconds"] <= (finished - created).total_seconds() + 1.5, status["goodput"]
    _check_tracked(tracking_server, tracking, job, result, progress_steps(logs))


def _check_tracked(server: TrackingServer, tracking: dict[str, Any], job: dict[str, Any],
                   result: dict[str, Any], reported: list[int]) -> None:
    """The job's run in MLflow, read back through its REST API: named in the status, complete (every reported
    step's loss), rank 0 alone writing it, the same evaluation by step, the goodput, the image, and the
    exported model whose weights match its own checksum."""
    status = job["status"]
    tracked = next(x for x in status["conditions"] if x["type"] == "Tracked")
    assert (tracked["status"], tracked["reason"]) == ("True", "Recorded"), tracked
    [run] = server.runs(tracking["experiment"], f"tags.`ludus.uid` = '{job['metadata']['uid']}'")
    assert status["tracking"]["runId"] == run["info"]["run_id"]
    assert status["tracking"]["url"] == (f"{tracking['uri']}/#/experiments/{run['info']['experiment_id']}"
                                         f"/runs/{run['info']['run_id']}")
    assert run["info"]["status"] == "FINISHED"
    assert run["tags"]["ludus.job"] == job["metadata"]["name"] and run["params"]["world_size"] == "4"
    assert run["tags"]["ludus.image"] == job["spec"]["image"] and run["tags"]["ludus.objective"] == "accuracy:maximize"
    assert run["params"]["epochs"] == "30" and run["params"]["workload"] == "digits"
    assert [step for step, _ in server.history(run["info"]["run_id"], "loss")] == reported
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert server.history(run["info"]["run_id"], metric)[-1] == (result["step"], pytest.approx(result[metric]))
    assert server.history(run["info"]["run_id"], "goodput")[-1][1] > 0
    metadata = json.loads(server.artifact(run, "model/metadata.json"))
    assert hashlib.sha256(server.artifact(run, "model/weights.pt")).hexdigest() == metadata["sha256"]


def _tracked(k: Kubectl, name: str) -> dict[str, Any]:
    conditions = (k.json("tj", name).get("status") or {}).get("conditions") or []
    return next((x for x in conditions if x["type"] == "Tracked"), {})


def test_a_job_trains_on_while_its_tracking_server_is_down_and_its_run_is_complete_once_it_is_back(
    k: Kubectl, operator: OperatorProcess, tracking_server: TrackingServer, tracking: dict[str, Any]
) -> None:
    """The tracker stopped under a running job: Tracked=False TrackerUnavailable while the job goes on; started
    again (same address), what the trainer kept is sent: the job succeeds Tracked=True, its run FINISHED with
    every step's loss."""
    name = unique("untracked")
    k.apply(real_job(name, workers=1, nproc=1, tracking=tracking,
                     args=["--max-steps", "300", "--step-delay", "0.15", "--log-every", "1"]))
    wait_for(lambda: (k.json("tj", name).get("status") or {}).get("tracking"), timeout=300,
             what="the job's run named in its status")
    tracking_server.down()
    try:
        down = wait_for(lambda: _tracked(k, name).get("status") == "False" and _tracked(k, name), timeout=90,
                        what="Tracked=False while the server is down")
        assert down["reason"] == "TrackerUnavailable" and "retries" in down["message"], down
        assert phase(k, name) == "Running"
    finally:
        tracking_server.up()
    wait_phase(k, name, "Succeeded", timeout=300)
    tracked = _tracked(k, name)
    assert (tracked["status"], tracked["reason"]) == ("True", "Recorded"), tracked
    job = k.json("tj", name)
    [run] = tracking_server.runs(tracking["experiment"], f"tags.`ludus.uid` = '{job['metadata']['uid']}'")
    assert run["info"]["run_id"] == job["status"]["tracking"]["runId"] and run["info"]["status"] == "FINISHED"
    reported = progress_steps(worker_logs(k, name))
    assert reported[-1] == 300
    assert [step for step, _ in tracking_server.history(run["info"]["run_id"], "loss")] == reported


def _check_goodput(goodput: dict) -> None:
    """Present, and its parts add up: productive + every badput category = the wall time."""
    parts = goodput["fraction"] + sum(b["fraction"] for b in goodput["badput"].values())
    assert abs(parts - 1) <= 0.01, goodput
    seconds = goodput["productiveSeconds"] + sum(b["seconds"] for b in goodput["badput"].values())
    assert abs(seconds - goodput["wallSeconds"]) <= 1, goodput
    assert goodput["productiveSeconds"] > 0 and goodput["badput"]["startup"]["seconds"] > 0, goodput


def test_a_deleted_worker_is_replaced_and_training_resumes_from_the_shared_checkpoint(
    k: Kubectl, operator: OperatorProcess, shared_volume: tuple[str, Path], record_property
) -> None:
    """Worker 1 here; worker 0's deletion is test_user_script's (the same harness, under a user's script)."""
    victim = 1
    claim, volume = shared_volume
    name = unique("resume")
    k.apply(real_job(name, args=SLOW, claim=claim, interval=INTERVAL))
    wait_step(volume, 2 * INTERVAL + 5)
    old_uid = k.json("pod", f"{name}-worker-{victim}")["metadata"]["uid"]
    deleted_at = now()
    k.run("delete", "pod", f"{name}-worker-{victim}", "--wait=false")
    reached = progress_step(volume)

    def replaced() -> bool:
        pod = k.get_or_none("pod", f"{name}-worker-{victim}")
        return bool(pod and pod["metadata"]["uid"] != old_uid)

    wait_for(replaced, timeout=120, what="the deleted worker replaced")
    wait_phase(k, name, "Succeeded", timeout=400)

    history = events(volume)
    resumes = [e for e in history if e["event"] == "start" and e["step"] > 0 and e["time"] > deleted_at]
    assert resumes, f"training never resumed from a checkpoint: {history}"
    resumed = resumes[0]
    redone = max(reached, 0) - resumed["step"]
    assert redone <= INTERVAL, f"redid {redone} steps: reached {reached}, resumed at {resumed['step']}"
    assert resumed["world_size"] == 4
    status = k.json("tj", name)["status"]
    assert status["restarts"] >= 1
    final = [e for e in history if e["event"] == "result"]
    assert final and final[-1]["accuracy"] >= 0.95
    # The restart shows in the goodput: the time from the restart to the group running again.
    _check_goodput(status["goodput"])
    assert status["goodput"]["badput"]["recovery"]["seconds"] > 0, status["goodput"]
    # A deleted pod gets SIGTERM and the trainer checkpoints first: at most one interval is redone.
    assert 0 <= status["goodput"]["stepsRedone"] <= INTERVAL, status["goodput"]
    record_property("recovery_seconds", round(resumed["time"] - deleted_at, 1))
    record_property("steps_redone", redone)
    (volume / "recovery.json").write_text(json.dumps({"recovery_seconds": resumed["time"] - deleted_at,
                                                      "steps_redone": redone}))


def test_a_crashed_worker_costs_steps_redone_in_the_goodput(
    k: Kubectl, operator: OperatorProcess, shared_volume: tuple[str, Path]
) -> None:
    """A worker's processes SIGKILLed (as a node crash or the OOM killer would): no checkpoint on the way
    out, so the group resumes from the last interval checkpoint and the steps since then are redone."""
    claim, volume = shared_volume
    name = unique("crash")
    k.apply(real_job(name, args=SLOW, claim=claim, interval=INTERVAL, backoffLimit=3))
    # Past a checkpoint and well into the next interval, so that the crash loses steps.
    wait_for(lambda: ((k.json("tj", name).get("status") or {}).get("progress") or {}).get("step", 0)
             >= 2 * INTERVAL + INTERVAL // 2, timeout=300, what="the step in status past 50")
    # The status is a poll behind the trainer: crash on the trainer's own step, well inside an
    # interval, never just after a checkpoint (which would leave nothing to redo).
    wait_for(lambda: INTERVAL // 4 <= progress_step(volume) % INTERVAL <= INTERVAL // 2, timeout=60,
             interval=0.1, what="the trainer inside a checkpoint interval")
    assert kill_pod_processes(f"{name}-worker-1") > 0
    wait_phase(k, name, "Succeeded", timeout=400)
    status = k.json("tj", name)["status"]
    assert status["restarts"] >= 1
    goodput = status["goodput"]
    _check_goodput(goodput)
    assert goodput["stepsRedone"] > 0 and goodput["badput"]["wastedProgress"]["seconds"] > 0, goodput
    assert goodput["badput"]["recovery"]["seconds"] > 0, goodput
    history = events(volume)
    resumed = [e["step"] for e in history if e["event"] == "start" and e["step"] > 0]
    assert resumed and resumed[0] % INTERVAL == 0, history  # from an interval checkpoint, not a SIGTERM one


def test_scale_from_one_to_two_workers_mid_run(
    k: Kubectl, operator: OperatorProcess, shared_volume: tuple[str, Path]
) -> None:
    claim, volume = shared_volume
    name = unique("grow")
    k.apply(real_job(name, workers=1, elastic=(1, 2), args=SLOW, claim=claim, interval=INTERVAL))
    wait_step(volume, INTERVAL + 5)
    k.run("scale", f"tj/{name}", "--replicas=2")
    wait_for(lambda: (k.json("tj", name).get("status") or {}).get("workers") == "2/2", timeout=120,
             what="2/2 workers")
    wait_phase(k, name, "Succeeded", timeout=400)
    history = events(volume)
    worlds = [e["world_size"] for e in history if e["event"] == "start"]
    assert worlds[0] == 2 and 4 in worlds, history
    final = [e for e in history if e["event"] == "result"][-1]
    assert final["world_size"] == 4 and final["accuracy"] >= 0.95
    assert k.json("tj", name)["status"]["restarts"] == 0


USER_SCRIPT = '''
"""A user's own training script: plain PyTorch plus ludus_trainer's small API."""
import torch
import torch.distributed as dist
from ludus_trainer import api

ctx = api.init()
checkpoints = api.checkpoints()
state = checkpoints.load_latest() or {"step": 0, "w": torch.zeros(1)}
w = state["w"]
for step in range(state["step"] + 1, 21):
    grad = torch.ones(1)
    dist.all_reduce(grad)
    w -= 0.01 * grad
    api.report(step=step, loss=float(w.abs()), total_steps=20)
    if step % 10 == 0 and ctx.is_main:
        checkpoints.save(step, {"w": w})
if ctx.is_main:
    print(f"USER SCRIPT DONE world={dist.get_world_size()} w={float(w):.2f}", flush=True)
api.finish()
'''


def test_a_users_own_script_from_a_configmap_runs_under_torchrun(
    k: Kubectl, operator: OperatorProcess, real_node: object
) -> None:
    k.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "train-script"},
             "data": {"train.py": USER_SCRIPT}})
    name = unique("mine")
    job = real_job(name, args=[])
    job["spec"]["command"] = ["python", "/scripts/train.py"]
    job["spec"].pop("args")
    job["spec"]["template"]["volumes"] = [{"name": "scripts", "configMap": {"name": "train-script"}}]
    job["spec"]["template"]["volumeMounts"] = [{"name": "scripts", "mountPath": "/scripts"}]
    k.apply(job)
    wait_phase(k, name, "Succeeded")
    logs = worker_logs(k, name)
    assert "USER SCRIPT DONE world=4 w=-0.80" in logs, logs[-2000:]
    assert phase(k, name) == "Succeeded"
