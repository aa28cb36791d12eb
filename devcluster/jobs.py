"""Reading what a real job did: its status, its logs, and events.jsonl on the shared volume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from devcluster.kubectl import Kubectl, wait_for
from devcluster.node import NODE_LABEL

_RESULT = re.compile(r"LUDUS_RESULT (\{.*\})")


def phase(k: Kubectl, name: str) -> str:
    return str((k.json("tj", name).get("status") or {}).get("phase", ""))


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


class StatusWatch:
    """`kubectl get tj -w`: every write of every TrainingJob in the namespace, as it happens."""

    def __init__(self, k: Kubectl) -> None:
        template = ('{.type} {.object.metadata.name} {.object.metadata.resourceVersion} '
                    '{.object.status.progress.step} {.object.status.phase} {.object.status.workers}{"\\n"}')
        self.proc = subprocess.Popen(
            [k.binary, "get", "tj", "-n", k.namespace or "default", "-w", "--output-watch-events",
             "-o", f"jsonpath={template}"],
            env=k.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def writes(self, name: str) -> list[dict[str, Any]]:
        """Each write the watch saw of the job: resourceVersion, step (None before any), phase, workers."""
        out = []
        for line in list(self.lines):
            parts = line.split(" ")
            if len(parts) >= 6 and parts[0] == "MODIFIED" and parts[1] == name:
                out.append({"rv": parts[2], "step": int(parts[3]) if parts[3] else None,
                            "phase": parts[4], "workers": parts[5]})
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class PodWatch:
    """`kubectl get pods -w` on a selector: how many of its pods were Running at once, at most, over
    every change the API server made (a pod being deleted still holds its resources: it counts)."""

    def __init__(self, k: Kubectl, selector: str) -> None:
        template = '{.type} {.object.metadata.name} {.object.status.phase}{"\\n"}'
        self.proc = subprocess.Popen(
            [k.binary, "get", "pods", "-n", k.namespace or "default", "-l", selector, "-w", "--output-watch-events",
             "-o", f"jsonpath={template}"],
            env=k.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.running: set[str] = set()
        self.most_running = 0
        self.events = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) < 2:
                continue
            self.events += 1
            if parts[0] != "DELETED" and len(parts) >= 3 and parts[2] == "Running":
                self.running.add(parts[1])
            else:
                self.running.discard(parts[1])
            self.most_running = max(self.most_running, len(self.running))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def kill_pod_processes(pod_name: str) -> int:
    """SIGKILL every process of a pod on the real node (a crash: no SIGTERM, no checkpoint).
    The node's containers are this host's processes; each carries its pod's name as HOSTNAME."""
    marker = f"HOSTNAME={pod_name}".encode()
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed
