"""Who holds the built-in cluster: a live process's claim is refused to others, a dead one's is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster import claim


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _claim_as(root: Path, pid: int, user: str) -> None:
    """Write a claim the way another process's `take` would."""
    started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
    root.mkdir(parents=True, exist_ok=True)
    (root / claim.CLAIM_FILE).write_text(json.dumps({"user": user, "pid": pid, "started": started, "since": 0}))


def test_a_cluster_another_live_process_holds_is_refused_naming_it(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    _claim_as(tmp_path, other_process.pid, "make test")
    with pytest.raises(claim.ClusterInUse, match=rf"in use by make test \(pid {other_process.pid}"):
        claim.take(tmp_path, "make demo")
    claim.release(tmp_path)  # not ours: left alone
    assert claim.current_claim(tmp_path) is not None


def test_the_claim_of_a_process_that_exited_no_longer_counts(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    _claim_as(tmp_path, other_process.pid, "make test")
    other_process.kill()
    other_process.wait()
    assert claim.current_claim(tmp_path) is None
    assert claim.take(tmp_path, "make demo").pid == os.getpid()


def test_a_reused_pid_is_not_taken_for_the_process_that_claimed(tmp_path: Path) -> None:
    tmp_path.joinpath(claim.CLAIM_FILE).write_text(
        json.dumps({"user": "make test", "pid": os.getpid(), "started": "1", "since": 0}))
    assert claim.current_claim(tmp_path) is None


def test_a_process_takes_releases_and_retakes_its_own_claim(tmp_path: Path) -> None:
    assert claim.take(tmp_path, "make test").user == "make test"
    assert claim.take(tmp_path, "make test").pid == os.getpid()
    claim.release(tmp_path)
    assert claim.current_claim(tmp_path) is None


@pytest.mark.parametrize(("args", "clusterwide"), [
    (["operator", "--metrics-port=8080"], True),
    (["operator", "--namespace", "team-a"], False),
    (["operator", "-n", "team-a"], False),
    (["operator", "--namespace=team-a"], False),
    (None, True),
], ids=["no namespace flag watches every namespace", "--namespace NAME is scoped", "-n NAME is scoped",
        "--namespace=NAME is scoped", "no args at all watches every namespace"])
def test_which_operator_deployments_watch_every_namespace(args: list[str] | None, clusterwide: bool) -> None:
    deployment = {"metadata": {"namespace": "ludus-system", "name": "ludus-operator"},
                  "spec": {"template": {"spec": {"containers": [{"name": "operator", "args": args}]}}}}
    assert claim.clusterwide_operators([deployment]) == (["ludus-system/ludus-operator"] if clusterwide else [])


def test_a_demo_runs_holding_the_cluster_and_is_refused_one_a_live_test_run_holds(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    said: list[str] = []
    holder = claim.run_holding(tmp_path, "make demo", lambda: claim.current_claim(tmp_path).pid, said.append)
    assert holder == os.getpid() and claim.current_claim(tmp_path) is None  # held while it ran, released after
    _claim_as(tmp_path, other_process.pid, "make test")
    ran: list[bool] = []
    assert claim.run_holding(tmp_path, "make demo", lambda: ran.append(True) or 0, said.append) == 3
    assert not ran and said and "in use by make test" in said[-1]
