"""`ludus run` on real pods: a script file from this machine (not in the image) trains to the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devcluster.jobs import real_job, unique, wait_phase, wait_step
from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.fixtures import TestCluster

LUDUS = str(Path(sys.executable).parent / "ludus")

SCRIPT = '''
"""A user's script: plain PyTorch and ludus_trainer's API, reporting an evaluation at the end."""
import sys
import torch
import torch.distributed as dist
from ludus_trainer import api

ctx = api.init()
w = torch.zeros(1)
fail_at = int(sys.argv[sys.argv.index("--fail-at") + 1]) if "--fail-at" in sys.argv else 0
for step in range(1, 31):
    grad = torch.ones(1)
    dist.all_reduce(grad)
    w -= 0.01 * grad
    if step == fail_at and ctx.env.rank == 1:
        print("about to fail: the data loader found a corrupt shard", flush=True)
        raise SystemExit(3)
    api.report(step=step, loss=float(w.abs()), total_steps=30,
               metrics={"accuracy": 0.5 + step / 100} if step == 30 else None)
print(f"SCRIPT DONE world={dist.get_world_size()}", flush=True)
api.finish()
'''


def _run(cluster: TestCluster, namespace: str, *args: str, script_args: tuple[str, ...] = ()
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LUDUS, "run", *args, "-n", namespace, "--replicas", "2", "--nproc", "2",
                           "--cpu", "200m", "--memory", "3Gi", "--", *script_args],
                          env={**os.environ, "KUBECONFIG": cluster.kubeconfig, "COLUMNS": "200"},
                          text=True, capture_output=True, timeout=600)


def test_ludus_run_trains_a_local_script_and_exits_0_with_the_evaluation(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess, real_node: object, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    done = _run(cluster, namespace, str(script), "--name", "local-script")
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "SCRIPT DONE world=4" in done.stdout  # the workers' logs, followed
    assert "accuracy" in done.stdout and "0.8000" in done.stdout  # the evaluation, printed at the end
    assert "local-script Succeeded" in done.stderr
    status = k.json("tj", "local-script")["status"]
    assert status["evaluation"]["latest"]["accuracy"]["value"] == 0.8
    # However short the run, its final progress is in the status, and the default objective (loss,
    # minimized) has the value of the loss the script reported last.
    assert status["progress"]["step"] == 30 and status["progress"]["totalSteps"] == 30, status["progress"]
    objective = status["evaluation"]["objective"]
    assert objective["metric"] == "loss" and objective["value"] == status["evaluation"]["latest"]["loss"]["value"]
    assert status["evaluation"]["latest"]["loss"]["step"] == 30


def test_a_failing_script_makes_ludus_run_exit_1_with_the_failing_ranks_last_lines(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess, real_node: object, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    job = _run(cluster, namespace, str(script), "--name", "broken", "--restart-policy", "Never",
               script_args=("--fail-at", "5"))
    assert job.returncode == 1, (job.stdout[-2000:], job.stderr[-2000:])
    assert "broken Failed" in job.stderr and "corrupt shard" in job.stderr  # the failing rank's last lines


def test_ludus_logs_follows_a_replaced_worker_and_ends_with_the_job(
    cluster: TestCluster, k: Kubectl, namespace: str, operator: OperatorProcess,
    shared_volume: tuple[str, Path]
) -> None:
    claim, volume = shared_volume
    name = unique("follow")
    k.apply(real_job(name, args=["--epochs", "30", "--log-every", "5", "--step-delay", "0.05"], claim=claim))
    logs = subprocess.Popen([LUDUS, "logs", name, "-f", "-n", namespace],
                            env={**os.environ, "KUBECONFIG": cluster.kubeconfig}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_step(volume, 45)  # past the checkpoint at step 40
    old_uid = k.json("pod", f"{name}-worker-1")["metadata"]["uid"]
    k.run("delete", "pod", f"{name}-worker-1", "--wait=false")
    wait_for(lambda: (k.get_or_none("pod", f"{name}-worker-1") or {"metadata": {"uid": old_uid}})
             ["metadata"]["uid"] != old_uid, timeout=120, what="worker-1 replaced")
    wait_phase(k, name, "Succeeded", timeout=400)
    # It ends by itself once the job has ended and every stream is drained: no Ctrl-C needed.
    stdout, stderr = logs.communicate(timeout=120)
    assert logs.returncode == 0, stderr[-2000:]
    worker1 = [line for line in stdout.splitlines() if line.startswith("[worker-1] ")]
    # The first pod started fresh; its replacement resumed from the shared checkpoint.
    assert any("starting fresh" in line for line in worker1), stdout[-3000:]
    assert any("resumed from step" in line for line in worker1), stdout[-3000:]
    assert any("LUDUS_RESULT" in line for line in stdout.splitlines()), stdout[-3000:]
