"""The `ludus` command line and its SDK against the real API server, with the operator running.

Every verb runs as the installed console script would (a subprocess with its exit code); pods are
kwok's, finished by the exit-code annotation the fake nodes honour.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster

LUDUS = str(Path(sys.executable).parent / "ludus")


def ludus(kubeconfig: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LUDUS, *args], env={**os.environ, "KUBECONFIG": kubeconfig, "COLUMNS": "200"},
                          text=True, capture_output=True, timeout=timeout)


def _job_file(tmp_path: Path, name: str, **spec: Any) -> Path:
    manifest = make_job(name).workers(1).on_fake_nodes().spec(**spec).manifest()
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def _running(k: Kubectl, name: str) -> None:
    wait_for(lambda: (k.json("tj", name).get("status") or {}).get("phase") == "Running", what=f"{name} Running")


def test_every_verb_on_real_trainingjobs(cluster: TestCluster, k: Kubectl, namespace: str,
                                         operator: OperatorProcess, tmp_path: Path) -> None:
    kc, ns = cluster.kubeconfig, namespace
    applied = ludus(kc, "apply", "-f", str(_job_file(tmp_path, "cli-a", backoffLimit=0, restartPolicy="Never")),
                    "-n", ns, "--detach")
    assert applied.returncode == 0 and applied.stdout.strip() == "cli-a", applied.stderr
    _running(k, "cli-a")

    listed = ludus(kc, "list", "-n", ns)
    assert listed.returncode == 0 and "cli-a" in listed.stdout and "Running" in listed.stdout
    everywhere = ludus(kc, "list", "-A", "-o", "json")
    rows = [(j["metadata"]["namespace"], j["metadata"]["name"]) for j in json.loads(everywhere.stdout)["items"]]
    assert (ns, "cli-a") in rows
    got = json.loads(ludus(kc, "get", "cli-a", "-n", ns, "-o", "json").stdout)
    assert got["status"]["phase"] == "Running" and got["spec"]["replicas"] == 1
    assert yaml.safe_load(ludus(kc, "get", "cli-a", "-n", ns, "-o", "yaml").stdout)["metadata"]["name"] == "cli-a"
    described = ludus(kc, "describe", "cli-a", "-n", ns)
    assert described.returncode == 0 and "Conditions:" in described.stdout and "Running" in described.stdout

    # wait's timeout: exit 3, and the job is untouched.
    timed_out = ludus(kc, "wait", "cli-a", "-n", ns, "--for", "Succeeded", "--timeout", "2s")
    assert timed_out.returncode == 3 and "after 2s" in timed_out.stderr, timed_out
    # scale, suspend, resume.
    assert ludus(kc, "scale", "cli-a", "2", "-n", ns).returncode == 0
    wait_for(lambda: k.json("tj", "cli-a")["status"].get("workers") == "2/2", what="2 workers")
    assert ludus(kc, "suspend", "cli-a", "-n", ns).returncode == 0
    wait_for(lambda: k.json("tj", "cli-a")["status"]["phase"] == "Suspended", what="Suspended")
    assert ludus(kc, "wait", "cli-a", "-n", ns, "--for", "Suspended", "--timeout", "5s").returncode == 0
    assert ludus(kc, "resume", "cli-a", "-n", ns).returncode == 0
    wait_for(lambda: k.json("tj", "cli-a")["status"].get("workers") == "2/2", what="running again")
    events = ludus(kc, "events", "cli-a", "-n", ns)
    assert events.returncode == 0 and "Suspended" in events.stdout
    as_json = json.loads(ludus(kc, "events", "cli-a", "-n", ns, "-o", "json").stdout)
    assert "Suspended" in {e["reason"] for e in as_json["items"]}
    described_yaml = yaml.safe_load(ludus(kc, "describe", "cli-a", "-n", ns, "-o", "yaml").stdout)
    assert described_yaml["metadata"]["name"] == "cli-a" and described_yaml["events"]

    # A worker fails (exit 2, restartPolicy Never): the job fails, and wait ends with exit 1.
    k.run("annotate", "pod", "cli-a-worker-0", "ludus.dev/kwok-exit-code=2")
    failed = ludus(kc, "wait", "cli-a", "-n", ns, "--timeout", "60s")
    assert failed.returncode == 1 and "cli-a Failed" in failed.stdout, failed

    # A job that succeeds: exit 0.
    ludus(kc, "apply", "-f", str(_job_file(tmp_path, "cli-b")), "-n", ns, "--detach")
    _running(k, "cli-b")
    k.run("annotate", "pod", "cli-b-worker-0", "ludus.dev/kwok-exit-code=0")
    assert ludus(kc, "wait", "cli-b", "-n", ns, "--timeout", "60s").returncode == 0

    # delete --wait returns once the job and its pods are gone.
    deleted = ludus(kc, "delete", "cli-a", "-n", ns, "--wait")
    assert deleted.returncode == 0, deleted.stderr
    assert k.get_or_none("tj", "cli-a") is None and not k.items("pods", "ludus.dev/job-name=cli-a")


def test_run_ships_a_script_in_a_configmap_owned_by_the_job(cluster: TestCluster, k: Kubectl, namespace: str,
                                                            operator: OperatorProcess, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("from ludus_trainer import api\nprint('hello')\n")
    dry = ludus(cluster.kubeconfig, "run", str(script), "--dry-run", "-n", namespace, "--replicas", "2")
    assert dry.returncode == 0, dry.stderr
    manifest = yaml.safe_load(dry.stdout)
    assert manifest["spec"]["command"][-2:] == ["--script", "/ludus/script/train.py"]
    assert k.items("tj") == []  # a dry run creates nothing
    ran = ludus(cluster.kubeconfig, "run", str(script), "--detach", "-n", namespace, "--name", "scripted",
                "--", "--lr", "0.1")
    assert ran.returncode == 0 and ran.stdout.strip() == "scripted", ran.stderr
    job = k.json("tj", "scripted")
    configmap = k.json("configmap", "scripted-script")
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert "print('hello')" in "".join(configmap["data"].values())
    assert job["spec"]["suspend"] is False and job["spec"]["args"] == ["--lr", "0.1"]
    wait_for(lambda: k.items("pods", "ludus.dev/job-name=scripted,ludus.dev/role=worker"), what="pods")
    pod = k.items("pods", "ludus.dev/job-name=scripted,ludus.dev/role=worker")[0]
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert "/ludus/script" in mounts


def test_sweep_apply_ships_a_script_that_every_trial_runs(cluster: TestCluster, k: Kubectl, namespace: str,
                                                          operator: OperatorProcess, tmp_path: Path) -> None:
    """`ludus sweep apply --script`: the script travels in a ConfigMap the Sweep owns, the Sweep is held
    until it exists, and every trial mounts it and runs it with its own values."""
    from tests.integration.test_sweeps import sweep_manifest, trials

    script = tmp_path / "train.py"
    script.write_text("from ludus_trainer import api\nprint(api.parameters())\n")
    manifest = tmp_path / "sweep.yaml"
    manifest.write_text(yaml.safe_dump(sweep_manifest("shipped", maxTrials=2, parallelTrials=2)))
    applied = ludus(cluster.kubeconfig, "sweep", "apply", "-f", str(manifest), "--script", str(script),
                    "-n", namespace)
    assert applied.returncode == 0, applied.stderr
    sweep = k.json("sweep", "shipped")
    assert not sweep["spec"].get("suspend")  # held only until its ConfigMap existed
    configmap = k.json("configmap", "shipped-script")
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == sweep["metadata"]["uid"]
    assert "api.parameters()" in "".join(configmap["data"].values())
    wait_for(lambda: len(trials(k, "shipped")) == 2, timeout=60, what="2 trials")
    for trial in trials(k, "shipped"):
        spec = trial["spec"]
        assert spec["command"][-2:] == ["--script", "/ludus/script/train.py"], spec["command"]
        assert {"name": "ludus-script", "configMap": {"name": "shipped-script",
                                                      "items": [{"key": "f0000-train.py", "path": "train.py"}]}} \
            in spec["template"]["volumes"]
        assert spec["args"][0] == "--lr" and spec["args"][1] != "${lr}"  # the trial's own value


def test_errors_a_person_can_act_on(cluster: TestCluster, k: Kubectl, namespace: str, tmp_path: Path) -> None:
    kc = cluster.kubeconfig
    # A spec the API server refuses: its field path and message, exit 2, no stack trace.
    bad = ludus(kc, "apply", "-f", str(_job_file(tmp_path, "bad", replicas=0)), "-n", namespace, "--detach")
    assert bad.returncode == 2 and "spec.replicas" in bad.stderr and "Traceback" not in bad.stderr, bad
    missing = ludus(kc, "get", "nothing-here", "-n", namespace)
    assert missing.returncode == 2 and "not found" in missing.stderr
    # An unreachable cluster: which context and server, exit 4.
    config = yaml.safe_load(Path(kc).read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    unreachable = ludus(str(dead), "list", "-n", namespace)
    assert unreachable.returncode == 4 and "https://127.0.0.1:1" in unreachable.stderr, unreachable
    # RBAC: a service account with no rights names the verb, resource and namespace.
    k.run("create", "serviceaccount", "nobody")
    token = k.run("create", "token", "nobody").stdout.strip()
    config = yaml.safe_load(Path(kc).read_text())
    config["users"][0]["user"] = {"token": token}
    nobody = tmp_path / "nobody.kubeconfig"
    nobody.write_text(yaml.safe_dump(config))
    forbidden = ludus(str(nobody), "list", "-n", namespace)
    assert forbidden.returncode == 2 and f"may not list trainingjobs in namespace {namespace}" in forbidden.stderr
    # No TrainingJob API at that version: Ludus is not installed (exit 4), said with how to install it.
    from ludus.sdk import LudusClient, NotInstalled

    client = LudusClient(namespace=namespace, config_file=kc)
    with pytest.raises(NotInstalled, match="kubectl apply -k manifests/"):
        client._call("list", "trainingjobs", namespace, lambda: client.custom.list_namespaced_custom_object(
            "ludus.dev", "v9", namespace, "trainingjobs"))
    assert ludus(kc, "--version").stdout.startswith("ludus ")


def test_the_sdk_in_process_from_a_model_a_dict_and_a_dry_run(cluster: TestCluster, k: Kubectl, namespace: str,
                                                              operator: OperatorProcess, tmp_path: Path) -> None:
    from ludus.api.models import TrainingJob
    from ludus.sdk import Invalid, LudusClient, WaitTimeout

    client = LudusClient(namespace=namespace, config_file=cluster.kubeconfig)
    model = TrainingJob.model_validate(make_job("from-model").workers(1).on_fake_nodes().manifest())
    created = client.create(model)
    assert created.metadata.uid and created.spec.replicas == 1
    # Only the fields set travel: the API server filled in the CRD's defaults.
    assert k.json("tj", "from-model")["spec"]["restartPolicy"] == "OnFailure"
    checked = client.create(make_job("dry").workers(1).on_fake_nodes().manifest(), dry_run=True)
    assert checked.metadata.name == "dry" and k.get_or_none("tj", "dry") is None  # checked, not stored
    with pytest.raises(Invalid, match="spec.replicas"):
        client.create({**make_job("bad").manifest(), "spec": {**make_job("bad").manifest()["spec"], "replicas": 0}})
    running = client.wait("from-model", phases={"Running"}, timeout=60)
    assert running.status.phase == "Running" and running.status.workers == "1/1"
    with pytest.raises(WaitTimeout):
        client.wait("from-model", timeout=2)
    seen = [kind for kind, job in client.watch("from-model", timeout=2) if job.metadata.name == "from-model"]
    assert seen and seen[0] == "ADDED"
    assert [j.metadata.name for j in client.list()] == ["from-model"]
    k.run("annotate", "pod", "from-model-worker-0", "ludus.dev/kwok-exit-code=0")
    final = client.wait("from-model", timeout=60)
    assert final.status.phase == "Succeeded"
    # The operator posts Events after the status write that wait saw.
    wait_for(lambda: any(e["reason"] == "AllWorkersSucceeded" for e in client.events("from-model")),
             what="the Succeeded event")
    client.delete("from-model", wait=True, timeout=60)
    assert client.list() == []


def _follow_then_ctrl_c(kubeconfig: str, *args: str) -> tuple[int, str]:
    """Start a following verb, wait for its first status line, press Ctrl-C; its exit code and stderr."""
    proc = subprocess.Popen([LUDUS, *args], env={**os.environ, "KUBECONFIG": kubeconfig, "COLUMNS": "200"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:  # the first status line: the follow loop is running
        seen.append(line)
        if ": Running" in line or ": Pending" in line or "following" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    return proc.returncode, "".join(seen) + rest


def test_ctrl_c_while_following_detaches_or_deletes_when_asked(cluster: TestCluster, k: Kubectl, namespace: str,
                                                               operator: OperatorProcess, tmp_path: Path) -> None:
    kc, ns = cluster.kubeconfig, namespace
    code, stderr = _follow_then_ctrl_c(kc, "apply", "-f", str(_job_file(tmp_path, "kept")), "-n", ns)
    assert code == 130 and f"ludus logs -f kept -n {ns}" in stderr and "Traceback" not in stderr, stderr
    _running(k, "kept")  # detached: the job goes on
    code, stderr = _follow_then_ctrl_c(kc, "logs", "kept", "-f", "-n", ns)
    assert code == 130 and "kept keeps running" in stderr, stderr
    assert k.json("tj", "kept")["metadata"].get("deletionTimestamp") is None

    code, stderr = _follow_then_ctrl_c(kc, "apply", "-f", str(_job_file(tmp_path, "dropped")), "-n", ns,
                                       "--delete-on-interrupt")
    assert code == 130 and "deleted dropped" in stderr, stderr
    wait_for(lambda: k.get_or_none("tj", "dropped") is None, what="dropped deleted")


def test_apply_dry_run_prints_what_the_server_would_store(cluster: TestCluster, k: Kubectl, namespace: str,
                                                          tmp_path: Path) -> None:
    checked = ludus(cluster.kubeconfig, "apply", "-f", str(_job_file(tmp_path, "checked")), "-n", namespace,
                    "--dry-run")
    assert checked.returncode == 0, checked.stderr
    stored = yaml.safe_load(checked.stdout)
    # The server's answer, defaults filled in by the CRD's schema, and nothing stored.
    assert stored["metadata"]["name"] == "checked" and stored["spec"]["restartPolicy"] == "OnFailure"
    assert k.get_or_none("tj", "checked") is None
    refused = ludus(cluster.kubeconfig, "apply", "-f", str(_job_file(tmp_path, "refused", replicas=0)),
                    "-n", namespace, "--dry-run")
    assert refused.returncode == 2 and "spec.replicas" in refused.stderr


def test_shell_completion_offers_the_jobs_in_the_namespace(cluster: TestCluster, k: Kubectl, namespace: str,
                                                           tmp_path: Path) -> None:
    for name in ("alpha-1", "alpha-2", "beta"):
        k.apply(make_job(name).workers(1).on_fake_nodes().manifest())
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "_LUDUS_COMPLETE": "complete_bash",
           "COMP_WORDS": f"ludus logs -n {namespace} al", "COMP_CWORD": "4"}
    bash = subprocess.run([LUDUS], env=env, text=True, capture_output=True, timeout=60)
    assert bash.stdout.split() == ["alpha-1", "alpha-2"], bash
    plugin = subprocess.run([str(Path(LUDUS).parent / "kubectl_complete-ludus"), "describe", "-n", namespace, ""],
                            env={**os.environ, "KUBECONFIG": cluster.kubeconfig}, text=True, capture_output=True,
                            timeout=60)
    assert plugin.stdout.splitlines() == ["alpha-1", "alpha-2", "beta", ":4"], plugin
