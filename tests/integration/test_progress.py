"""Stall detection on the real API server: a job whose step stops moving is restarted as Stalled.

kwok's pods have no processes, so the test plays worker 0's trainer: it serves the trainer's metrics
page (the same names ludus_trainer.metrics exports) on the pod's IP, which it adds to loopback so
that the traffic stays on this machine. The operator reads it as it would read a real pod.
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster

METRICS_PORT = 9090  # ludus.api.constants.TRAINER_METRICS_PORT


class FakeTrainer:
    """Worker 0's metrics endpoint with a step the test moves by hand."""

    def __init__(self, address: str) -> None:
        self.address, self.step = address, 0
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's API
                body = (
                    "# TYPE ludus_trainer_step gauge\n"
                    f'ludus_trainer_step{{job="stall",rank="0"}} {page.step}\n'
                    "# TYPE ludus_trainer_loss gauge\n"
                    f'ludus_trainer_loss{{job="stall",rank="0"}} {1.0 / (1 + page.step)}\n'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, METRICS_PORT), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stall_operator(
    cluster: TestCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path_factory.mktemp("operator"),
                           ("--progress-poll-seconds", "1")).start()
    yield proc
    proc.stop()


@pytest.fixture
def on_loopback() -> Iterator[Any]:
    """Add pod IPs to `lo` for the test's duration (root only; kwok's pod IPs are private)."""
    added: list[str] = []

    def add(ip: str) -> None:
        assert ipaddress.ip_address(ip).is_private, ip
        subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True, capture_output=True)
        added.append(ip)

    yield add
    for ip in added:
        subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], check=False, capture_output=True)


def _status(k: Kubectl) -> dict[str, Any]:
    return k.json("tj", "stall").get("status") or {}


def _running(k: Kubectl) -> dict[str, Any]:
    return wait_for(lambda: (s := _status(k)).get("phase") == "Running" and s.get("workers") == "2/2" and s,
                    what="stall Running")


def test_a_job_whose_step_stops_moving_is_restarted_as_stalled(
    k: Kubectl, stall_operator: OperatorProcess, on_loopback: Any
) -> None:
    k.apply(make_job("stall").workers(2).spec(progressDeadlineSeconds=6, backoffLimit=2).on_fake_nodes().manifest())
    _running(k)
    worker0 = k.json("pod", "stall-worker-0")
    ip, old_uid = worker0["status"]["podIP"], worker0["metadata"]["uid"]
    on_loopback(ip)
    trainer = FakeTrainer(ip)
    try:
        # Training moves: the step reaches the status and, for twice the deadline, nothing restarts.
        moving_until = time.monotonic() + 12
        while time.monotonic() < moving_until:
            trainer.step += 1
            time.sleep(0.5)
        wait_for(lambda: (_status(k).get("progress") or {}).get("step", 0) >= trainer.step - 4,
                 what="the step in status.progress")
        assert _status(k)["restarts"] == 0 and _status(k)["phase"] == "Running"
        assert k.json("pod", "stall-worker-0")["metadata"]["uid"] == old_uid
        columns = k.run("get", "tj", "stall").stdout
        assert "STEP" in columns and str(_status(k)["progress"]["step"]) in columns

        # The step stops (a hung collective: the pods stay Running): the group restarts as Stalled.
        stopped_at = trainer.step
        wait_for(lambda: _status(k).get("restarts") == 1, timeout=30, what="a restart")
        status = _status(k)
        # kwok recreates pods at once, so the Restarting condition may already be False again:
        # status.lastRestart keeps the cause.
        assert status["lastRestart"]["reason"] == "Stalled", status
        assert f"no training progress for 6s (step {stopped_at})" in status["lastRestart"]["message"]
        events = k.run("get", "events", "--field-selector", "involvedObject.name=stall,reason=Stalled").stdout
        assert "restarting the worker group (restart 1)" in events
    finally:
        trainer.close()
    # Every pod is recreated (a fresh rendezvous too) and the job runs again, counted once.
    wait_for(lambda: (p := k.get_or_none("pod", "stall-worker-0")) and p["metadata"]["uid"] != old_uid,
             what="worker 0 recreated")
    _running(k)
    assert _status(k)["restarts"] == 1
