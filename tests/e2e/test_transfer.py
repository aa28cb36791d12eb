"""Transfer learning on real pods: a job starts from another job's exported model on a shared claim."""

from __future__ import annotations

import json
from pathlib import Path

from devcluster.jobs import real_job, result_from_logs, wait_phase, worker_logs
from devcluster.kubectl import Kubectl
from devcluster.operator_process import OperatorProcess


def test_a_job_initialised_from_a_pretrained_model_loads_it_with_a_new_head(
    k: Kubectl, operator: OperatorProcess, shared_volume: tuple[str, Path]
) -> None:
    claim, volume = shared_volume
    pre = real_job("pretrain", workers=1, nproc=1, claim=claim,
                   args=["--classes", "0-6", "--epochs", "15", "--lr", "0.003", "--log-every", "1000"])
    pre["spec"]["checkpoint"]["subPath"] = "pretrain"
    k.apply(pre)
    wait_phase(k, "pretrain", "Succeeded", timeout=400)
    exported = json.loads((volume / "pretrain" / "model" / "metadata.json").read_text())
    assert exported["job"] == "pretrain" and exported["evaluation"]["accuracy"] >= 0.95

    tuned = real_job("finetune", workers=1, nproc=1, claim=claim,
                     args=["--fraction", "0.1", "--epochs", "4", "--lr", "0.003", "--batch-size", "16",
                           "--seed", "2", "--log-every", "1000"])
    tuned["spec"]["checkpoint"]["subPath"] = "finetune"
    tuned["spec"]["init"] = {"claimName": claim, "path": "pretrain/model", "strict": False}
    k.apply(tuned)
    wait_phase(k, "finetune", "Succeeded", timeout=400)
    logs = worker_logs(k, "finetune")
    line = next(x for x in logs.splitlines() if "LUDUS_INIT " in x)
    report = json.loads(line.split("LUDUS_INIT ", 1)[1])
    assert report["sha256"] == exported["sha256"] and report["step"] == exported["step"]
    assert report["reinitialized"] == ["4.bias", "4.weight"]  # the 7-class head made way for 10 classes
    result = result_from_logs(logs)
    assert result is not None and result["accuracy"] >= 0.85, result
    lineage = json.loads((volume / "finetune" / "model" / "metadata.json").read_text())["initializedFrom"]
    assert lineage[0]["sha256"] == exported["sha256"]
