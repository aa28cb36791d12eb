"""`ludus operator` as its own process, as in production, for tests, the demo and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from devcluster.kubectl import wait_for
from devcluster.paths import REPO, free_port

CRD = REPO / "manifests" / "crd" / "trainingjobs.ludus.dev.yaml"
SWEEP_CRD = REPO / "manifests" / "crd" / "sweeps.ludus.dev.yaml"
CT_CRD = REPO / "manifests" / "crd" / "continuoustrainings.ludus.dev.yaml"


class OperatorProcess:
    """`ludus operator` as its own process, as in production, so a test can kill and restart it."""

    def __init__(self, kubeconfig: str, namespace: str, log_dir: Path, extra_args: tuple[str, ...] = (),
                 source: Path | None = None) -> None:
        """`source`: a directory holding another version's `ludus` package to run instead of this one."""
        self.kubeconfig, self.namespace, self.extra_args, self.source = kubeconfig, namespace, extra_args, source
        self.log_path = log_dir / f"operator-{namespace}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.health_port = 0

    def start(self) -> OperatorProcess:
        self.metrics_port, self.health_port = free_port(), free_port()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ludus", "operator", "--namespace", self.namespace,
             "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
             *self.extra_args],
            env={**os.environ, "KUBECONFIG": self.kubeconfig,
                 **({"PYTHONPATH": str(self.source)} if self.source is not None else {})},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(self.healthy, timeout=60, what=f"operator /healthz (log: {self.log_path})")
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = self.log_path.read_text()[-3000:]
            raise AssertionError(f"operator exited with {self.proc.returncode}; log: {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
