"""Progress at scale: N Running TrainingJobs whose worker 0 reports a moving step.

`make bench-progress` runs it. N jobs (W workers each, on kwok nodes) run under `ludus operator`
with its default --progress-interval (30 s) unless told otherwise. Every worker 0's pod IP is
added to loopback and one HTTP server on port 9090 plays every trainer: it serves the trainer's
metrics page with a step that grows with time. After every job is Running and one interval has
passed, the bench measures for M minutes: status writes (from the API server's audit log),
the operator's CPU seconds, and its peak RSS. Bound: at most one progress write per job per
interval, so N / interval x 60 writes per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from bench import scale  # noqa: E402

RESULTS = REPO / "docs" / "benchmarks" / "progress.json"
METRICS_PORT = 9090  # ludus.api.constants.TRAINER_METRICS_PORT


class Trainers:
    """One server for every fake worker 0: step = 10 per second since the job's first poll."""

    def __init__(self) -> None:
        first: dict[str, float] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's API
                ip = self.connection.getsockname()[0]
                began = first.setdefault(ip, time.monotonic())
                step = int((time.monotonic() - began) * 10)
                body = (f'ludus_trainer_step{{job="j",rank="0"}} {step}\n'
                        f'ludus_trainer_total_steps{{job="j",rank="0"}} 100000\n'
                        f'ludus_trainer_loss{{job="j",rank="0"}} {1 / (1 + step)}\n'
                        f'ludus_trainer_phase_seconds{{job="j",rank="0",phase="train"}} {step / 10}\n').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.polls = first
        self.server = ThreadingHTTPServer(("0.0.0.0", METRICS_PORT), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _loopback(ips: list[str], add: bool) -> None:
    for ip in ips:
        subprocess.run(["ip", "addr", "add" if add else "del", f"{ip}/32", "dev", "lo"], check=False,
                       capture_output=True)


async def run(n: int, workers: int, minutes: float, interval: float) -> dict[str, Any]:
    cluster = scale.bench_cluster()
    api = scale.Api(cluster.kubeconfig)
    namespace = "progress"
    ips: list[str] = []
    trainers = Trainers()
    try:
        await scale._namespace(api, namespace)
        scale.OPERATOR_ARGS[:] = ["--progress-interval", str(interval)]
        operator = scale.OperatorArm(cluster, namespace, cluster.logs / "bench-progress-operator.log")
        await operator.ready()
        tracker = scale.Tracker()
        watches = await scale._watch_all(api, namespace, tracker, jobs=True)
        wall0 = time.time()
        names = [f"job-{i:04d}" for i in range(n)]
        await asyncio.gather(*(api.call("POST", f"/apis/ludus.dev/v1alpha1/namespaces/{namespace}/trainingjobs",
                                        scale.job_manifest(name, namespace, workers)) for name in names))
        await tracker.until(lambda: len(tracker.jobs_running) >= n)
        wall_running = time.time()
        pods = await api.call("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=ludus.dev/replica-index=0")
        ips = [p["status"]["podIP"] for p in pods["items"] if p["status"].get("podIP")]
        _loopback(ips, add=True)
        await asyncio.sleep(interval + 5)  # every job has been polled and its first progress written
        cpu0, t0, w0 = operator.sampler.cpu_seconds(), time.monotonic(), time.time()
        await asyncio.sleep(minutes * 60)
        cpu, elapsed, w1 = operator.sampler.cpu_seconds() - cpu0, time.monotonic() - t0, time.time()
        text = await operator.metrics()
        rss = operator.sampler.peak_rss_mb()
        operator.stop()
        for task in watches:
            task.cancel()
        to_running = scale.audit_counts(namespace, scale.OPERATOR_AGENTS, wall0, wall_running)
        window = scale.audit_counts(namespace, scale.OPERATOR_AGENTS, w0, w1)
        status = await api.call("GET", f"/apis/ludus.dev/v1alpha1/namespaces/{namespace}/trainingjobs")
        with_progress = sum(1 for j in status["items"] if (j.get("status") or {}).get("progress"))
        per_minute = 60 / elapsed
        return {
            "jobs": n,
            "workers_per_job": workers,
            "progress_interval_s": interval,
            "measured_s": round(elapsed, 1),
            "jobs_with_progress_in_status": with_progress,
            "jobs_polled": len(trainers.polls),
            "status_writes_per_minute": round(window.get("patch trainingjobs/status", 0) * per_minute, 1),
            "status_writes_per_job_per_minute": round(window.get("patch trainingjobs/status", 0) * per_minute / n, 2),
            "bound_writes_per_minute": round(n * 60 / interval, 1),
            "all_writes_per_minute": round(scale.writes(window) * per_minute, 1),
            "operator_cpu_s_per_minute": round(cpu * per_minute, 2),
            "operator_peak_rss_mb": round(rss, 1),
            "writes_per_job_to_running": round(scale.writes(to_running) / n, 2),
            "requests_in_window": window,
            "reconcile_errors": scale.metric_sum(text, "ludus_reconcile_errors_total"),
        }
    finally:
        trainers.close()
        _loopback(ips, add=False)
        await api.close()
        cluster.down(quiet=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--interval", type=float, default=30.0, help="the operator's --progress-interval")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.time()
    result = asyncio.run(run(args.jobs, args.workers, args.minutes, args.interval))
    scale.write_document("bench-progress", started, result, args.output)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
