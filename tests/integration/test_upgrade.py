"""An upgrade and a rollback with real operator processes: the previous release's operator, then this
one, then the previous one again, on the same TrainingJob and Sweep in the real API server.

The previous release is the commit `tests/compat/previous_models.py` was copied from; its `ludus`
package is taken from git (`git archive`) and run as its own process, as a rolled-back Deployment would
run it. Each version must read what the other wrote and keep reconciling: the job is never failed or
restarted, a scale is carried out by whichever version runs, and the sweep goes on to its end.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from devcluster.paths import REPO
from tests.factories import make_job
from tests.fixtures import TestCluster
from tests.integration.test_sweeps import finish, report, sweep_manifest, sweep_status, trials

# The previous release: the commit tests/compat/previous_models.py was copied from.
PREVIOUS_RELEASE = "fbb1439c1e9e6fd2e97d16acbc992a1681f3938c"


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's `ludus` package, from git."""
    target = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS_RELEASE, "operator/ludus"],
                             capture_output=True, check=False)
    assert archive.returncode == 0, (
        f"the previous release {PREVIOUS_RELEASE[:7]} is not in this clone's history (a shallow clone?): "
        f"{archive.stderr.decode()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "operator"


def _observed(k: Kubectl, name: str, workers: str) -> bool:
    job = k.json("tj", name)
    status = job.get("status") or {}
    return status.get("workers") == workers and status.get("observedGeneration") == job["metadata"]["generation"]


def _unharmed(k: Kubectl, name: str) -> None:
    status = k.json("tj", name)["status"]
    assert status["phase"] == "Running" and status.get("restarts", 0) == 0, status
    invalid = [c for c in status.get("conditions") or [] if c["reason"] == "InvalidSpec" or
               (c["type"] == "SpecValid" and c["status"] == "False")]
    assert not invalid, invalid


def _diagnosis(k: Kubectl, *operators: OperatorProcess) -> str:
    job = k.get_or_none("tj", "kept") or {}
    parts = [f"kept: generation {job.get('metadata', {}).get('generation')}, status {job.get('status')}"]
    for op in operators:
        log = op.log_path.read_text(errors="replace") if op.log_path.exists() else ""
        parts.append(f"--- {op.log_path.name} (last 6000 characters) ---\n{log[-6000:]}")
    return "\n".join(parts)


def _finish_trial(k: Kubectl, name: str) -> None:
    wait_for(lambda: (k.get_or_none("tj", name) or {}).get("status", {}).get("phase") == "Running", timeout=60,
             what=f"{name} Running")
    report(k, name, {"accuracy": 0.5}, step=10)
    finish(k, name)


def test_an_upgrade_and_a_rollback_keep_jobs_and_sweeps_going(
    cluster: TestCluster, k: Kubectl, namespace: str, previous_release: Path, tmp_path: Path
) -> None:
    kubeconfig = cluster.kubeconfig
    previous = OperatorProcess(kubeconfig, namespace, tmp_path, source=previous_release)
    current = OperatorProcess(kubeconfig, namespace, tmp_path)
    previous.log_path = tmp_path / "previous.log"
    current.log_path = tmp_path / "current.log"
    try:
        previous.start()
        # Two different versions run: this release's build-info metric is unknown to the previous one.
        assert "ludus_build_info" not in previous.metrics()
        k.apply(make_job("kept").workers(2).on_fake_nodes().manifest(),
                sweep_manifest("search", maxTrials=3, parallelTrials=1))
        wait_for(lambda: _observed(k, "kept", "2/2"), timeout=90, what="the job 2/2 under the previous release")
        pods = {p["metadata"]["uid"] for p in k.items("pods", "ludus.dev/job-name=kept")}
        _finish_trial(k, "search-0")
        wait_for(lambda: len(trials(k, "search")) == 2, timeout=60, what="trial 1 from the previous release")
        previous.stop()

        current.start()  # the upgrade
        assert "ludus_build_info" in current.metrics()
        k.run("scale", "tj", "kept", "--replicas=3")
        wait_for(lambda: _observed(k, "kept", "3/3"), timeout=90, what="the scale carried out after the upgrade")
        _unharmed(k, "kept")
        assert pods <= {p["metadata"]["uid"] for p in k.items("pods", "ludus.dev/job-name=kept")}
        _finish_trial(k, "search-1")
        wait_for(lambda: len(trials(k, "search")) == 3, timeout=60, what="trial 2 from this release")
        current.stop()

        previous.start()  # the rollback
        k.run("scale", "tj", "kept", "--replicas=2")
        wait_for(lambda: _observed(k, "kept", "2/2"), timeout=90, what="the scale carried out after the rollback")
        _unharmed(k, "kept")
        _finish_trial(k, "search-2")
        wait_for(lambda: sweep_status(k, "search").get("phase") == "Succeeded", timeout=60,
                 what="the sweep ended by the rolled-back operator")
        status = sweep_status(k, "search")
        assert status["succeeded"] == 3 and status["progress"] == "3/3", status
        assert previous.healthy()
    except AssertionError as err:
        # Which version did what: the job as stored and the tail of both operators' logs.
        raise AssertionError(f"{err}\n{_diagnosis(k, previous, current)}") from err
    finally:
        previous.stop()
        current.stop()
