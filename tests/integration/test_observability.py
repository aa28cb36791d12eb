"""Prometheus and Grafana against real software: Debian's prometheus scrapes the operator and a
trainer process; every dashboard and alert expression is evaluated by it; promtool checks the rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from devcluster.paths import REPO, free_port
from tests.factories import make_job
from tests.integration.test_continuous import claim, complete, ct_manifest, publish  # noqa: F401 - claim: a fixture

CHART = REPO / "charts" / "ludus"
RULES = CHART / "rules"
DASHBOARD = CHART / "dashboards" / "ludus-training.json"
TRAINER_JOB = "observed"
pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                reason="Debian's prometheus package is not installed (scripts/host-packages.sh)")


def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    checked = subprocess.run(["promtool", "check", "rules", "ludus-alerts.yaml"], cwd=RULES, capture_output=True,
                             text=True)
    assert checked.returncode == 0 and "SUCCESS: 4 rules found" in checked.stdout, checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", "ludus-alerts.test.yaml"], cwd=RULES, capture_output=True,
                            text=True)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


@pytest.fixture
def trainer_process(tmp_path: Path) -> Iterator[int]:
    """A real trainer (the GPT workload, tiny, on the CPU) serving its metrics."""
    port = free_port()
    env = {**os.environ, "LUDUS_JOB_NAME": TRAINER_JOB, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ludus_trainer", "--workload", "gpt", "--d-model", "32", "--n-layers", "1",
         "--n-heads", "2", "--seq-len", "16", "--vocab-size", "128", "--batch-size", "2", "--samples", "16",
         "--epochs", "100000", "--checkpoint-interval", "5", "--log-every", "2", "--step-delay", "0.05",
         "--metrics-port", str(port), "--checkpoint-dir", str(tmp_path / "ckpt")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    yield port
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture
def prometheus(tmp_path: Path, operator: OperatorProcess, trainer_process: int) -> Iterator[str]:
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "ludus-operator", "static_configs": [{"targets": [f"127.0.0.1:{operator.metrics_port}"]}]},
            # As the chart's PodMonitor scrapes a trainer: its own labels never overwrite the target's,
            # and `job` is the TrainingJob (there relabelled from the pod's ludus.dev/job-name label).
            {"job_name": "ludus-trainers", "honor_labels": False,
             "static_configs": [{"targets": [f"127.0.0.1:{trainer_process}"], "labels": {"job": TRAINER_JOB}}]},
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _ready(url), timeout=60, what="prometheus ready")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def query(url: str, expr: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=10) as r:
        return json.loads(r.read())


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((RULES / "ludus-alerts.yaml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(ludus_[a-z_]+)", expr))


def test_prometheus_scrapes_operator_and_trainer_and_every_expression_works(
    k: Kubectl, operator: OperatorProcess, prometheus: str, claim: str  # noqa: F811
) -> None:
    # Give the operator something to count: a success, a restart, a failure.
    k.apply(make_job("ok").workers(1).on_fake_nodes().manifest())
    k.apply(make_job("bad").workers(1).policy("Never").on_fake_nodes().manifest())
    for name in ("ok", "bad"):
        wait_for(lambda n=name: (k.json("tj", n).get("status") or {}).get("workers") == "1/1", what=f"{name} Running")
    k.run("annotate", "pod", "ok-worker-0", "ludus.dev/kwok-exit-code=137")
    wait_for(lambda: (k.json("tj", "ok").get("status") or {}).get("restarts") == 1, what="a restart")
    wait_for(lambda: (k.json("tj", "ok").get("status") or {}).get("workers") == "1/1", what="ok Running again")
    k.run("annotate", "pod", "ok-worker-0", "ludus.dev/kwok-exit-code=0", "--overwrite")
    k.run("annotate", "pod", "bad-worker-0", "ludus.dev/kwok-exit-code=2")
    for name, phase in (("ok", "Succeeded"), ("bad", "Failed")):
        wait_for(lambda n=name, p=phase: (k.json("tj", n).get("status") or {}).get("phase") == p, what=phase)
    # A small sweep, its trials played by the test, for the Sweeps row.
    from tests.integration.test_sweeps import finish, report, sweep_manifest

    k.apply(sweep_manifest("tiny", maxTrials=2, parallelTrials=2))
    for trial in ("tiny-0", "tiny-1"):
        wait_for(lambda t=trial: (k.get_or_none("tj", t) or {}).get("status", {}).get("phase") == "Running",
                 what=f"{trial} Running")
        report(k, trial, {"accuracy": 0.9}, step=10)
        finish(k, trial)
    wait_for(lambda: (k.json("sweep", "tiny").get("status") or {}).get("phase") == "Succeeded", what="sweep done")
    # A continuous training with a champion and a rejected challenger, for its row.
    k.apply(ct_manifest("loop"))
    for number, accuracy in enumerate((0.9, 0.5)):
        k.run("annotate", "ct", "loop", f"ludus.dev/data-version=v{number + 1}", "--overwrite")
        run = f"loop-{number}"
        wait_for(lambda r=run: k.get_or_none("tj", r), what=run)
        complete(k, run, accuracy=accuracy)
        if number == 0:
            publish(k, "loop", 0)
            wait_for(lambda: (k.json("ct", "loop").get("status") or {}).get("champion"), what="a champion")
    wait_for(lambda: (k.json("ct", "loop").get("status") or {}).get("rejections") == 1, what="a rejection")
    # The trainer must have checkpointed and evaluated, and Prometheus scraped it all a few times.
    wait_for(lambda: query(prometheus, "ludus_trainer_checkpoint_duration_seconds")["data"]["result"]
             and query(prometheus, "ludus_trainer_eval_metric")["data"]["result"]
             and query(prometheus, "ludus_jobs_failed_total")["data"]["result"]
             and query(prometheus, "ludus_sweep_best_objective")["data"]["result"]
             and query(prometheus, "ludus_ct_champion_objective")["data"]["result"], timeout=60, what="scraped")

    up = query(prometheus, 'up{job="ludus-operator"}')["data"]["result"]
    assert up and up[0]["value"][1] == "1"

    no_gpu_here = ("gpu", "flops")
    expressions = [e.replace("$job", TRAINER_JOB) for e in dashboard_expressions()]
    for expr in expressions:
        answer = query(prometheus, expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
    # increase() and rate() need two samples of a series: a counter born when a job finished has them
    # after two successful scrapes, which a loaded machine (a scrape over its 1 s timeout) can delay.
    deadline = time.monotonic() + 90
    while (empty := [e for e in expressions if not any(w in e for w in no_gpu_here)
                     and not query(prometheus, e)["data"]["result"]]) and time.monotonic() < deadline:
        time.sleep(1)
    if empty:
        scrapes = query(prometheus, 'up{job="ludus-operator"}[2m]')["data"]["result"]
        goodput = {j["metadata"]["name"]: (j.get("status") or {}).get("goodput") for j in k.items("tj")}
        exported = [line for line in operator.metrics().splitlines() if line.startswith("ludus_job_")]
        raise AssertionError(f"dashboard expressions returned no data: {empty}; operator scrapes: {scrapes}; "
                             f"jobs' goodput: {goodput}; the operator exports: {exported}")
    for expr in alert_expressions():
        answer = query(prometheus, expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        for metric in _metric_names(expr):
            assert query(prometheus, metric)["data"]["result"], f"alert metric {metric} has no data"
    fired = query(prometheus, alert_expressions()[0])["data"]["result"]
    assert fired and fired[0]["metric"]["reason"] == "RestartPolicyNever", "the failed-job alert fires"
