"""Reading what a real job did: its status, its logs, and events.jsonl on the shared volume."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from devcluster.kubectl import Kubectl, wait_for
from devcluster.node import NODE_LABEL

_RESULT = re.compile(r"LUDUS_RESULT (\{.*\})")


def phase(k: Kubectl, name: str) -> str:
    return (k.json("tj", name).get("status") or {}).get("phase", "")


def wait_phase(k: Kubectl, name: str, wanted: str, timeout: float = 300) -> None:
    def reached() -> bool:
        current = phase(k, name)
        if current == "Failed" and wanted != "Failed":
            status = k.json("tj", name)["status"]
            raise AssertionError(f"{name} Failed: {status.get('conditions')}")
        return current == wanted

    wait_for(reached, timeout=timeout, interval=1, what=f"{name} {wanted}")


def worker_logs(k: Kubectl, name: str) -> str:
    return k.run("logs", "-l", f"ludus.dev/job-name={name},ludus.dev/role=worker", "--tail=-1",
                 "--max-log-requests=8", check=False).stdout


def result_from_logs(text: str) -> dict[str, Any] | None:
    found = _RESULT.findall(text)
    return json.loads(found[-1]) if found else None


def events(volume: Path) -> list[dict[str, Any]]:
    path = volume / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def progress_step(volume: Path) -> int:
    try:
        return int(json.loads((volume / "progress.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_step(volume: Path, step: int, timeout: float = 240) -> int:
    return wait_for(lambda: progress_step(volume) if progress_step(volume) >= step else 0,
                    timeout=timeout, interval=0.2, what=f"training at step {step}")


def now() -> float:
    return time.time()


def real_job(name: str, *, workers: int = 2, nproc: int = 2, args: list[str] | None = None,
             elastic: tuple[int, int] | None = None, claim: str | None = None, interval: int = 20,
             **spec: Any) -> dict[str, Any]:
    """A digits TrainingJob for the real node (no fake-node toleration, so kwok nodes are excluded)."""
    body: dict[str, Any] = {
        "apiVersion": "ludus.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "image": "ludus-trainer:latest",
            "command": ["python", "-m", "ludus_trainer", "--workload", "digits"],
            "args": args or ["--epochs", "30"],
            "replicas": workers,
            "nprocPerNode": nproc,
            "resources": {"cpu": "200m", "memory": "3Gi", "sharedMemory": "256Mi"},
            "checkpoint": {"intervalSteps": interval, **({"claimName": claim} if claim else {})},
            "template": {"nodeSelector": {NODE_LABEL[0]: NODE_LABEL[1]}},
            **spec,
        },
    }
    if elastic:
        body["spec"]["elastic"] = {"minReplicas": elastic[0], "maxReplicas": elastic[1], "maxRestarts": 5}
    return body


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:4]}"
