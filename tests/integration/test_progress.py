"""Stall detection on the real API server: a job whose step stops moving is restarted as Stalled.

kwok's pods have no processes, so the test plays worker 0's trainer: it serves the trainer's metrics
page (the same names ludus_trainer.metrics exports) on the pod's IP, which it adds to loopback so
that the traffic stays on this machine. The operator reads it as it would read a real pod.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devcluster.jobs import StatusWatch
from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster

METRICS_PORT = 9090  # ludus.api.constants.TRAINER_METRICS_PORT


def metrics_page(step: int, loss: str | None = None, total: int = 1000) -> tuple[bytes, str]:
    """The trainer's metrics page (the names ludus_trainer.metrics exports)."""
    body = (
        "# TYPE ludus_trainer_step gauge\n"
        f'ludus_trainer_step{{job="j",rank="0"}} {step}\n'
        f'ludus_trainer_total_steps{{job="j",rank="0"}} {total}\n'
        "# TYPE ludus_trainer_loss gauge\n"
        f'ludus_trainer_loss{{job="j",rank="0"}} {loss if loss is not None else 1.0 / (1 + step)}\n'
        f'ludus_trainer_phase_seconds{{job="j",rank="0",phase="train"}} {step * 0.1}\n'
    )
    return body.encode(), "text/plain; version=0.0.4"


# What a broken or foreign endpoint may serve instead of the trainer's page.
GARBAGE: dict[str, tuple[bytes, str]] = {
    "html": (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    "truncated": (b'{"step": 12, "loss": 0.', "application/json"),
    "huge": (b"ludus_trainer_step 1\n" + b"#" * (10 * 1024 * 1024), "text/plain"),
}


class FakeTrainer:
    """Worker 0's metrics endpoint with a step the test moves by hand (or garbage, for `kind`)."""

    def __init__(self, address: str, kind: str = "good") -> None:
        self.address, self.step, self.kind = address, 0, kind
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's API
                if page.kind in GARBAGE:
                    body, content_type = GARBAGE[page.kind]
                else:
                    body, content_type = metrics_page(page.step, "NaN" if page.kind == "nan" else None)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the operator stops reading a body that is too large

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
                           ("--progress-interval", "1")).start()
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
        # kubectl's STEP column is the status' step. Two reads, the column's and the status', may straddle a
        # progress write still catching up (CI once saw 22 in the column, then 24 in the status): the
        # column is read after the status, and read again only when the status moved in between.
        def column_shows_the_step() -> bool:
            step = _status(k)["progress"]["step"]
            columns = k.run("get", "tj", "stall").stdout
            assert "STEP" in columns, columns
            return re.search(rf"\s{step}/{_status(k)['progress']['totalSteps']}\s", columns) is not None

        wait_for(column_shows_the_step, timeout=10, interval=0.2, what="the STEP column showing status.progress")

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


@pytest.fixture
def progress_operator(
    cluster: TestCluster, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path_factory.mktemp("operator"),
                           ("--progress-interval", str(INTERVAL))).start()
    yield proc
    proc.stop()


INTERVAL = 3
KINDS = ["good", "good", "good", "good", "nan", "html", "truncated", "huge", "unreachable"]


def test_progress_of_many_jobs_is_written_at_most_once_per_interval_and_garbage_never_hurts(
    k: Kubectl, progress_operator: OperatorProcess, on_loopback: Any
) -> None:
    names = [f"p{i}-{kind}" for i, kind in enumerate(KINDS)]
    k.apply(*(make_job(name).workers(1).on_fake_nodes().manifest() for name in names))
    wait_for(lambda: all((k.json("tj", n).get("status") or {}).get("phase") == "Running" for n in names),
             timeout=90, what="every job Running")
    trainers: dict[str, FakeTrainer] = {}
    for name, kind in zip(names, KINDS, strict=True):
        ip = k.json("pod", f"{name}-worker-0")["status"]["podIP"]
        on_loopback(ip)
        if kind != "unreachable":  # rank 0 crashed: nothing listens
            trainers[name] = FakeTrainer(ip, kind)
    watch = StatusWatch(k)
    try:
        started = time.monotonic()
        while time.monotonic() - started < 8 * INTERVAL:
            for trainer in trainers.values():
                trainer.step += 1
            time.sleep(0.2)
        window = time.monotonic() - started
        time.sleep(1)
    finally:
        watch.stop()
        for trainer in trainers.values():
            trainer.close()
    bound = window / INTERVAL + 1
    for name, kind in zip(names, KINDS, strict=True):
        status = k.json("tj", name)["status"]
        writes = watch.writes(name)
        assert len(writes) <= bound, (name, writes)  # the interval holds, whatever the endpoint serves
        assert status["phase"] == "Running" and status["restarts"] == 0, (name, status)
        condition = next((c for c in status["conditions"] if c["type"] == "ProgressReported"), None)
        events = k.run("get", "events", "--field-selector", f"involvedObject.name={name}",
                       "-o", "jsonpath={range .items[*]}{.reason}{'\\n'}{end}").stdout.split()
        if kind in ("good", "nan"):
            progress = status["progress"]
            steps = [w["step"] for w in writes if w["step"] is not None]
            assert len(set(steps)) >= 3 and steps == sorted(steps), (name, writes)  # it moved, never back
            assert progress["totalSteps"] == 1000 and progress["summary"] == f"{progress['step']}/1000"
            assert progress["percent"] == round(100 * progress["step"] / 1000, 1)
            assert progress.get("etaSeconds") is not None and condition is None
            assert ("loss" in progress) == (kind == "good")  # a NaN loss is left out, the step still counts
            goodput = status["goodput"]  # kwok pods run at once: queued is ~0, the rest is unaccounted
            parts = goodput["fraction"] + sum(b["fraction"] for b in goodput["badput"].values())
            assert abs(parts - 1) <= 0.01 and goodput["productiveSeconds"] > 0, goodput
        else:
            assert "progress" not in status, (name, status)  # nothing made up
            reason = "EndpointUnreachable" if kind == "unreachable" else "InvalidResponse"
            assert condition is not None and condition["status"] == "False", (name, status["conditions"])
            assert condition["reason"] == reason, (name, condition)
            assert events.count(reason) == 1, (name, events)  # once, not per poll
    assert progress_operator.healthy()
    log = progress_operator.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
