"""Start real torchrun agents the way the operator's pods do: PET_* variables, a separate store."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devcluster.kubectl import wait_for
from devcluster.paths import free_port
from ludus.api.models import TrainingJob
from ludus.frameworks import torch as torch_wiring

VENV_BIN = Path(sys.executable).parent


@dataclass
class Store:
    """The c10d TCPStore in its own process, as the rendezvous pod runs it."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Store:
        self.proc = subprocess.Popen([sys.executable, "-c", torch_wiring.store_program(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        assert self.proc.stdout is not None
        assert b"listening" in self.proc.stdout.readline()
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class Agent:
    """One torchrun agent: what a worker pod runs."""

    name: str
    log: Path
    proc: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL the agent and all its workers together, as losing the pod does.

        torchrun starts workers in sessions of their own, so killing the agent's
        process group alone would leave them training.
        """
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM to the agent alone, as the kubelet sends it to a pod's first process on deletion, suspend
        or eviction: torchrun passes it on to its workers."""
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def descendants(root: int) -> list[int]:
    """Every process below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def start_agent(
    name: str, *, store: Store, tmp: Path, nnodes: tuple[int, int], nproc: int, trainer_args: list[str],
    checkpoint_dir: Path, metrics_port: int = 0, extra_env: dict[str, str] | None = None,
) -> Agent:
    job = TrainingJob.model_validate({
        "metadata": {"name": "local", "namespace": "local", "uid": "uid-local"},
        "spec": {
            "image": "ludus-trainer:latest",
            "replicas": nnodes[1],
            "nprocPerNode": nproc,
            "elastic": {"minReplicas": nnodes[0], "maxReplicas": nnodes[1], "maxRestarts": 5},
        },
    })
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.update({e["name"]: e["value"] for e in torch_wiring.torchrun_env(job, 0)})
    env["PET_RDZV_ENDPOINT"] = f"127.0.0.1:{store.port}"
    env["PET_RDZV_ID"] = f"test-{store.port}"
    env["PET_MONITOR_INTERVAL"] = "0.5"
    env.update({"LUDUS_CHECKPOINT_DIR": str(checkpoint_dir), "LUDUS_METRICS_PORT": str(metrics_port),
                "LUDUS_JOB_NAME": "local",
                # What a pod's /dev/termination-log is: the kubelet hands it to the operator.
                "LUDUS_TERMINATION_LOG": str(tmp / f"{name}.termination-log")})
    env.update(extra_env or {})
    log = tmp / f"{name}.log"
    handle = open(log, "wb")
    # The command a worker pod runs for this job (the harness's own launcher), with this venv's python.
    command = torch_wiring.worker_command(job.model_copy(
        update={"spec": job.spec.model_copy(update={"command": ["python", "-m", "ludus_trainer", *trainer_args]})}))
    cmd = [sys.executable if part == "python" else part for part in command]
    proc = subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    return Agent(name, log, proc)


_PROGRESS = re.compile(r'LUDUS_PROGRESS \{"step": (\d+)')
_START = re.compile(r"LUDUS_EVENT start step=(\d+) world_size=(\d+)")
_RESULT = re.compile(r"LUDUS_RESULT (\{.*\})")


def progress_steps(text: str) -> list[int]:
    return [int(m) for m in _PROGRESS.findall(text)]


def starts(text: str) -> list[tuple[int, int]]:
    """(step, world size) of every start of the worker group logged by rank 0."""
    return [(int(a), int(b)) for a, b in _START.findall(text)]


def result(text: str) -> dict[str, object] | None:
    import json

    found = _RESULT.findall(text)
    parsed: dict[str, object] | None = json.loads(found[-1]) if found else None
    return parsed


def wait_for_step(agents: list[Agent], step: int, timeout: float = 120) -> int:
    def reached() -> int:
        seen = max((s for a in agents for s in progress_steps(a.text())), default=0)
        return seen if seen >= step else 0

    return wait_for(reached, timeout=timeout, interval=0.1, what=f"training to reach step {step}")


def all_text(agents: list[Agent]) -> Iterator[str]:
    return (a.text() for a in agents)
