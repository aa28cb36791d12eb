"""The SDK's pure parts: a script as a ConfigMap, what the CLI prints, errors a person can act on."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from ludus.api.models import TrainingJob
from ludus.sdk.errors import (
    EXIT_CLUSTER,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Invalid,
    NotFound,
    NotInstalled,
    PermissionDenied,
    TooLarge,
    Unreachable,
    WaitTimeout,
    translate,
)
from ludus.sdk.render import age, parse_duration, row
from ludus.sdk.script import MAX_BYTES, MOUNT, script_configmap, script_job
from tests.factories import T0, make_job


def test_a_script_file_travels_as_one_key_and_runs_from_the_mount(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    data, items, entry = script_configmap(script)
    assert list(data.values()) == ["print('hi')\n"] and entry == f"{MOUNT}/train.py"
    assert items == [{"key": next(iter(data)), "path": "train.py"}]


def test_a_package_directory_keeps_its_layout_and_skips_caches(tmp_path: Path) -> None:
    pkg = tmp_path / "mypkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "__main__.py").write_text("from sub import model\n")
    (pkg / "sub" / "model.py").write_text("X = 1\n")
    (pkg / "__pycache__" / "x.pyc").write_bytes(b"\x00\x01")
    data, items, entry = script_configmap(pkg)
    assert sorted(i["path"] for i in items) == ["mypkg/__main__.py", "mypkg/sub/model.py"]
    assert entry == f"{MOUNT}/mypkg" and len(data) == 2
    assert all(k.replace("-", "").replace(".", "").replace("_", "").isalnum() for k in data)


def test_what_cannot_travel_in_a_configmap_says_what_to_do(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_text("#" * (MAX_BYTES + 1))
    with pytest.raises(TooLarge, match="image"):
        script_configmap(big)
    binary = tmp_path / "pkg"
    binary.mkdir()
    (binary / "__main__.py").write_text("")
    (binary / "weights.bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(Invalid, match="volume"):
        script_configmap(binary)
    (tmp_path / "nomain").mkdir()
    with pytest.raises(Invalid, match="__main__.py"):
        script_configmap(tmp_path / "nomain")
    with pytest.raises(Invalid, match="no such file"):
        script_configmap(tmp_path / "missing.py")


def test_the_script_job_is_a_valid_trainingjob_that_starts_suspended(tmp_path: Path) -> None:
    from ludus.api.models import TrainingJob

    body = script_job("train-ab12", "team-a", f"{MOUNT}/train.py", replicas=2, nproc=2, gpus=0,
                      image="ludus-trainer:latest", args=["--lr", "0.1"], cpu="500m", memory=None, suspended=True,
                      items=[{"key": "f0000-train.py", "path": "train.py"}])
    job = TrainingJob.model_validate(body)
    assert job.spec.suspend and job.spec.command[-2:] == ["--script", f"{MOUNT}/train.py"]
    assert job.spec.args == ["--lr", "0.1"] and job.spec.replicas == 2
    assert body["spec"]["template"]["volumes"][0]["configMap"]["name"] == "train-ab12-script"


@pytest.mark.parametrize(("flag", "objective"), [
    ("accuracy:max", {"metric": "accuracy", "goal": "maximize"}),
    ("eval_loss:min", {"metric": "eval_loss", "goal": "minimize"}),
    ("f1:maximize", {"metric": "f1", "goal": "maximize"}),
])
def test_ludus_run_objective_sets_the_jobs_objective(flag: str, objective: dict[str, str]) -> None:
    from ludus.api.models import TrainingJob

    body = script_job("t", "ns", f"{MOUNT}/train.py", replicas=1, nproc=1, gpus=0, image="i", args=[], cpu=None,
                      memory=None, suspended=True, objective=flag)
    assert TrainingJob.model_validate(body).spec.objective.model_dump() == objective


@pytest.mark.parametrize("flag", ["accuracy", "accuracy:up", ":max", "acc uracy:max", "1st:max"])
def test_a_malformed_objective_says_what_is_expected(flag: str) -> None:
    from ludus.sdk.script import parse_objective

    with pytest.raises(Invalid, match="expected METRIC:max or METRIC:min"):
        parse_objective(flag)


def test_durations_and_ages() -> None:
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    assert parse_duration("2.5") == 2.5
    for bad in ("", "soon", "5x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert age(T0, T0 + timedelta(seconds=59)) == "59s" and age(T0, T0 + timedelta(hours=3)) == "3h"


def test_a_row_reads_like_kubectl_get() -> None:
    job = make_job().status(phase="Running", workers="2/2", restarts=1, progress={"step": 5, "summary": "5/10"},
                            evaluation={"objective": {"metric": "accuracy", "goal": "maximize",
                                                                   "summary": "accuracy 0.9"}}).build()
    assert row(job, T0 + timedelta(seconds=30)) == (
        "team-a", "digits", "Running", "2/2", "5/10", "accuracy 0.9", "1", "30s")


def _api_error(status: int, body: dict) -> Exception:
    error = Exception("api")
    error.status, error.body, error.reason = status, json.dumps(body), "reason"  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("status", "body", "kind", "words", "code"),
    [
        (404, {"message": "the server could not find the requested resource", "details": {}}, NotInstalled,
         "not installed", EXIT_CLUSTER),
        (404, {"message": "not found", "details": {"name": "x", "kind": "trainingjobs"}}, NotFound, "x not found",
         EXIT_USAGE),
        (403, {"message": "trainingjobs is forbidden"}, PermissionDenied, "may not list trainingjobs in namespace ns",
         EXIT_USAGE),
        (422, {"message": "invalid", "details": {"causes": [{"field": "spec.replicas", "message": "must be >= 1"}]}},
         Invalid, "spec.replicas: must be >= 1", EXIT_USAGE),
    ],
)
def test_api_errors_become_messages_with_exit_codes(status: int, body: dict, kind: type, words: str,
                                                     code: int) -> None:
    error = translate(_api_error(status, body), verb="list", resource="trainingjobs", namespace="ns",
                      server="https://x", context="ctx", name="x")
    assert isinstance(error, kind) and words in str(error) and error.exit_code == code


def test_an_unreachable_cluster_names_the_context_and_server() -> None:
    error = translate(ConnectionRefusedError("refused"), verb="list", resource="trainingjobs", namespace="ns",
                      server="https://10.0.0.1:6443", context="prod", name=None)
    assert isinstance(error, Unreachable) and "prod" in str(error) and "https://10.0.0.1:6443" in str(error)
    assert error.exit_code == EXIT_CLUSTER and WaitTimeout("x").exit_code == EXIT_TIMEOUT


def test_following_a_job_says_what_holds_it_back_from_its_own_conditions() -> None:
    from ludus.api import constants as c
    from ludus.sdk.render import holding_back

    too_large = {"type": c.COND_SCHEDULED, "status": "False", "reason": c.REASON_TOO_LARGE,
                 "message": "cpu: a worker asks 1, the largest node has 0.95 free",
                 "lastTransitionTime": T0.isoformat()}
    running = {"type": c.COND_RUNNING, "status": "False", "reason": c.REASON_WAITING, "message": "1/2 workers running",
               "lastTransitionTime": T0.isoformat()}
    job = make_job().workers(2).status(phase="Pending", conditions=[too_large, running]).build()
    # The phase's own condition is where it stands (the status line says it); the others are why.
    assert holding_back(job) == [f"PodsScheduled False ({c.REASON_TOO_LARGE}): {too_large['message']}"]
    assert holding_back(make_job().workers(1).build()) == []


def test_a_sweeps_template_with_a_script_runs_it_from_the_mount_and_keeps_its_own_volumes() -> None:
    from ludus.api.sweep import Sweep
    from ludus.sdk.script import SCRIPT_VOLUME, with_script

    template = {"image": "ludus-trainer:latest", "args": ["--lr", "${lr}"],
                "template": {"volumes": [{"name": "data", "emptyDir": {}}],
                             "volumeMounts": [{"name": "data", "mountPath": "/data"}]}}
    shipped = with_script(template, "tune-script", f"{MOUNT}/train.py", [{"key": "f0000-train.py", "path": "train.py"}])
    assert shipped["command"] == ["python", "-m", "ludus_trainer", "--script", f"{MOUNT}/train.py"]
    assert shipped["args"] == ["--lr", "${lr}"]
    assert [v["name"] for v in shipped["template"]["volumes"]] == ["data", SCRIPT_VOLUME]
    assert shipped["template"]["volumes"][1]["configMap"]["name"] == "tune-script"
    assert {"name": SCRIPT_VOLUME, "mountPath": MOUNT, "readOnly": True} in shipped["template"]["volumeMounts"]
    assert with_script(shipped, "tune-script", f"{MOUNT}/train.py", None)["template"]["volumes"][1] == {
        "name": SCRIPT_VOLUME, "configMap": {"name": "tune-script"}}  # applied twice: one script volume
    Sweep.model_validate({"metadata": {"name": "tune"}, "spec": {
        "template": shipped, "parameters": [{"name": "lr", "type": "float", "min": 0.001, "max": 0.1}],
        "objective": {"metric": "accuracy", "goal": "maximize"}, "maxTrials": 2}})


def _followed_job(step: int) -> TrainingJob:
    from ludus.api import constants as c

    progress = {"step": step, "totalSteps": 10, "summary": f"{step}/10", "loss": 0.25, "eta": "12s"}
    queued = {"type": c.COND_ADMITTED, "status": "False", "reason": c.REASON_QUEUED,
              "message": "waiting for quota in team-a", "lastTransitionTime": T0.isoformat()}
    return make_job().workers(2).status(phase="Running", workers="2/2", progress=progress,
                                        conditions=[queued]).build()


def test_a_followed_job_is_a_progress_bar_on_a_terminal_and_lines_in_a_pipe() -> None:
    import io

    from rich.console import Console

    from ludus.sdk.cli.status_view import BarView, PlainView, status_view

    terminal = Console(file=io.StringIO(), force_terminal=True, width=140)
    view = status_view(terminal)
    assert isinstance(view, BarView)
    view.show("digits", _followed_job(4))
    view.show("digits", _followed_job(5))
    view.close()
    shown = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "5/10" in shown and "loss 0.25" in shown and "ETA 12s" in shown and "digits Running 2/2" in shown
    assert shown.count("waiting for quota in team-a") == 1  # why it waits: said once

    pipe = Console(file=io.StringIO(), force_terminal=False, width=200)
    lines = status_view(pipe)
    assert isinstance(lines, PlainView)
    for step in (4, 4, 5):
        lines.show("digits", _followed_job(step))
    printed = pipe.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert [line for line in printed if "step" in line] == [
        "digits: Running 2/2  step 4/10  loss 0.25  ETA 12s", "digits: Running 2/2  step 5/10  loss 0.25  ETA 12s"]
    assert sum("waiting for quota" in line for line in printed) == 1
