"""ContinuousTraining on the real API server, with the operator running: the test plays the trainers.

Runs are real TrainingJobs whose pods run on kwok's nodes, on a claim bound to a static volume; the
test writes each run's evaluation into its status (as the operator does from a real trainer) and
ends pods, the publish pod included, with the exit-code annotation the fake nodes honour.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster
from tests.integration.test_sdk_cli import ludus
from tests.integration.test_sweeps import finish, report

CLAIM = "models"


@pytest.fixture
def claim(k: Kubectl, namespace: str) -> Iterator[str]:
    """A claim bound to a static volume (kwok's pods mount nothing; the scheduler wants it bound)."""
    pv = f"models-{namespace}"
    k.apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
             "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                      "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": f"/tmp/{pv}"},
                      "claimRef": {"namespace": namespace, "name": CLAIM}}},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": CLAIM},
             "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv,
                      "resources": {"requests": {"storage": "1Gi"}}}})
    wait_for(lambda: (k.json("pvc", CLAIM).get("status") or {}).get("phase") == "Bound", what="claim bound")
    yield CLAIM
    k.run("delete", "pv", pv, "--wait=false", check=False)


def ct_manifest(name: str, **spec: Any) -> dict[str, Any]:
    template = make_job("template").workers(1).on_fake_nodes().manifest()["spec"]
    template["checkpoint"] = {"claimName": CLAIM}
    body: dict[str, Any] = {
        "template": template,
        "promotion": {"objective": {"metric": "accuracy", "goal": "maximize"}, "minImprovement": 0.01},
    }
    body.update(spec)
    return {"apiVersion": "ludus.dev/v1alpha1", "kind": "ContinuousTraining", "metadata": {"name": name},
            "spec": body}


def status(k: Kubectl, name: str) -> dict[str, Any]:
    return k.json("ct", name).get("status") or {}


def runs(k: Kubectl, name: str) -> list[dict[str, Any]]:
    return sorted(k.items("tj", f"ludus.dev/continuous-training={name}"),
                  key=lambda j: int(j["metadata"]["labels"]["ludus.dev/run"]))


def reasons(k: Kubectl, name: str) -> list[str]:
    events = [e for e in k.items("events") if e["involvedObject"]["name"] == name]
    return [e["reason"] for e in sorted(events, key=lambda e: e.get("eventTime") or e.get("lastTimestamp") or "")
            for _ in range(int(e.get("count") or 1))]


def running(k: Kubectl, run: str) -> bool:
    return (k.json("tj", run).get("status") or {}).get("phase") == "Running"


def complete(k: Kubectl, run: str, accuracy: float) -> None:
    """The run's trainer reports its evaluation and exits 0."""
    wait_for(lambda: running(k, run), what=f"{run} Running")
    report(k, run, {"accuracy": accuracy}, step=100)
    finish(k, run)
    wait_for(lambda: (k.json("tj", run).get("status") or {}).get("phase") == "Succeeded", what=f"{run} Succeeded")


def publish(k: Kubectl, ct: str, number: int, code: int = 0) -> None:
    """The publish pod does its work (on a real node it switches the link; here it exits)."""
    pod = f"{ct}-publish-{number}"
    wait_for(lambda: (k.get_or_none("pod", pod) or {}).get("status", {}).get("phase") == "Running",
             what=f"{pod} Running")
    k.run("annotate", "pod", pod, f"ludus.dev/kwok-exit-code={code}", "--overwrite")


def test_bad_continuous_trainings_are_refused_by_the_api_server_naming_the_field(
        cluster: TestCluster, k: Kubectl, namespace: str) -> None:
    no_claim = ct_manifest("bad")
    del no_claim["spec"]["template"]["checkpoint"]
    cases: list[tuple[dict[str, Any], str]] = [
        (no_claim, "set template.checkpoint.claimName"),
        (ct_manifest("bad", schedule="every day"), "spec.schedule"),
        (ct_manifest("bad", timeZone="UTC"), "timeZone applies to a schedule"),
        (ct_manifest("bad", promotion={"thresholds": ["precision about 0.9"]}), "spec.promotion.thresholds[0]"),
        (ct_manifest("bad", concurrencyPolicy="Allow"), "spec.concurrencyPolicy"),
        (ct_manifest("x" * 37), "at most 36 characters"),
    ]
    for manifest, message in cases:
        refused = k.apply(manifest, check=False)
        assert refused.returncode != 0 and message in refused.stderr, (manifest["spec"], refused.stderr)


def test_an_invalid_cron_or_time_zone_is_a_condition_naming_the_field_until_fixed(
        k: Kubectl, operator: OperatorProcess, claim: str) -> None:
    k.apply(ct_manifest("cron", schedule="61 * * * *"))
    failed = wait_for(lambda: status(k, "cron").get("phase") == "Failed" and status(k, "cron"), what="Failed")
    valid = next(x for x in failed["conditions"] if x["type"] == "Valid")
    assert valid["status"] == "False" and "spec.schedule" in valid["message"] and "not a cron" in valid["message"]
    k.run("patch", "ct", "cron", "--type=merge", "-p", json.dumps({"spec": {"schedule": "0 3 * * *",
                                                                             "timeZone": "Mars/Olympus"}}))
    wait_for(lambda: "spec.timeZone" in next(x["message"] for x in status(k, "cron")["conditions"]
                                             if x["type"] == "Valid"), what="the time zone named")
    k.run("patch", "ct", "cron", "--type=merge", "-p", json.dumps({"spec": {"timeZone": "Europe/Paris"}}))
    fixed = wait_for(lambda: status(k, "cron").get("phase") == "Waiting" and status(k, "cron"), what="Waiting")
    assert next(x for x in fixed["conditions"] if x["type"] == "Valid")["status"] == "True"
    assert fixed["nextScheduleTime"].endswith(":00:00Z") and not runs(k, "cron")
    assert "InvalidSpec" in reasons(k, "cron")


def test_schedule_fires_on_time_forbid_skips_and_a_worse_challenger_is_rejected(
        k: Kubectl, operator: OperatorProcess, claim: str) -> None:
    k.apply(ct_manifest("nightly", schedule="* * * * * */4"))  # every 4 s: a seconds field, for tests
    first = wait_for(lambda: runs(k, "nightly"), what="a first run")[0]
    scheduled = datetime.fromisoformat(first["metadata"]["annotations"]["ludus.dev/scheduled-time"].replace("Z",
                                                                                                          "+00:00"))
    created = datetime.fromisoformat(first["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert scheduled.second % 4 == 0 and 0 <= (created - scheduled).total_seconds() < 3
    assert first["metadata"]["annotations"]["ludus.dev/trigger"] == "Schedule" and "init" not in first["spec"]
    # Forbid: while the run is active the schedule's firings are skipped, not queued.
    wait_for(lambda: "ScheduleSkipped" in reasons(k, "nightly"), timeout=30, what="a skipped firing")
    assert len(runs(k, "nightly")) == 1
    complete(k, "nightly-0", accuracy=0.9)
    publish(k, "nightly", 0)
    champion = wait_for(lambda: status(k, "nightly").get("champion"), what="a champion")
    assert champion["job"] == "nightly-0" and champion["reason"] == "FirstChampion"
    assert champion["modelPath"] == "nightly/champion" and champion["claimName"] == CLAIM
    # The next firing warm-starts from the champion.
    second = wait_for(lambda: len(runs(k, "nightly")) > 1 and runs(k, "nightly")[1], timeout=30,
                      what="a second run")

    assert second["spec"]["init"]["path"] == "nightly/runs/nightly-0/model"
    k.run("patch", "ct", "nightly", "--type=merge", "-p", '{"spec": {"suspend": true}}')
    complete(k, "nightly-1", accuracy=0.5)
    rejected = wait_for(lambda: status(k, "nightly").get("rejections") == 1 and status(k, "nightly"),
                        what="a rejection")
    record = next(r for r in rejected["runs"] if r["name"] == "nightly-1")
    assert record["promoted"] is False and record["reason"] == "NotBetterEnough" and "0.5" in record["message"]
    assert rejected["champion"]["job"] == "nightly-0" and rejected["phase"] == "Suspended"
    assert "ModelRejected" in reasons(k, "nightly")
    assert not k.items("pod", "ludus.dev/publish=nightly-1")


def test_a_new_data_version_in_a_config_map_replaces_the_active_run(
        k: Kubectl, operator: OperatorProcess, claim: str) -> None:
    k.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dataset"}, "data": {"version": "v1"}})
    k.apply(ct_manifest("fresh", concurrencyPolicy="Replace",
                        dataVersion={"configMapName": "dataset", "key": "version"}))
    first = wait_for(lambda: runs(k, "fresh"), what="a run for v1")[0]
    assert first["metadata"]["annotations"]["ludus.dev/data-version"] == "v1"
    wait_for(lambda: running(k, "fresh-0"), what="fresh-0 Running")
    k.run("patch", "configmap", "dataset", "--type=merge", "-p", '{"data": {"version": "v2"}}')
    second = wait_for(lambda: [r for r in runs(k, "fresh") if r["metadata"]["name"] == "fresh-1"], timeout=30,
                      what="a run for v2")[0]
    assert second["metadata"]["annotations"]["ludus.dev/data-version"] == "v2"
    wait_for(lambda: [r["metadata"]["name"] for r in runs(k, "fresh")] == ["fresh-1"], what="fresh-0 deleted")
    record = next(r for r in status(k, "fresh")["runs"] if r["name"] == "fresh-0")
    assert record["phase"] == "Replaced" and "RunReplaced" in reasons(k, "fresh")
    # A key that goes missing is a condition, and nothing else happens.
    k.run("patch", "configmap", "dataset", "--type=json", "-p", '[{"op": "remove", "path": "/data/version"}]')
    cond = wait_for(lambda: next((x for x in status(k, "fresh").get("conditions", [])
                                  if x["type"] == "DataVersionAvailable" and x["status"] == "False"), None),
                    timeout=30, what="the missing key named")
    assert "no key 'version'" in cond["message"] and len(runs(k, "fresh")) == 1


def test_an_operator_killed_between_a_runs_end_and_its_promotion_promotes_it_once(
        k: Kubectl, operator: OperatorProcess, claim: str) -> None:
    k.apply(ct_manifest("steady"))
    k.run("annotate", "ct", "steady", "ludus.dev/data-version=v1")
    wait_for(lambda: runs(k, "steady"), what="a run")
    complete(k, "steady-0", accuracy=0.93)
    wait_for(lambda: (status(k, "steady").get("publishing") or {}).get("job") == "steady-0", what="publishing")
    operator.kill(signal.SIGKILL)
    publish(k, "steady", 0)
    wait_for(lambda: (k.json("pod", "steady-publish-0").get("status") or {}).get("phase") == "Succeeded",
             what="the publish pod done")
    operator.start()
    done = wait_for(lambda: (status(k, "steady").get("champion") or {}).get("job") == "steady-0"
                    and status(k, "steady"), what="the champion")
    assert done["promotions"] == 1 and [h["job"] for h in done["champions"]] == ["steady-0"]
    wait_for(lambda: not k.items("pod", "ludus.dev/publish"), what="the publish pod deleted")
    assert reasons(k, "steady").count("Promoted") == 1
    assert "publishing" not in done and done["phase"] == "Waiting"


def test_retrain_promote_and_history_from_the_cli(k: Kubectl, operator: OperatorProcess, claim: str,
                                                   tmp_path: Path) -> None:
    path = tmp_path / "ct.yaml"
    path.write_text(yaml.safe_dump(ct_manifest("daily", schedule="0 3 * * *", timeZone="Europe/Paris")))
    namespace = ["-n", k.namespace or "default"]
    applied = ludus(k.kubeconfig, "ct", "apply", "-f", str(path), *namespace)
    assert applied.returncode == 0 and "ludus retrain daily" in applied.stdout, applied.stderr
    assert ludus(k.kubeconfig, "retrain", "daily", *namespace).returncode == 0
    first = wait_for(lambda: runs(k, "daily"), what="a manual run")[0]
    assert first["metadata"]["annotations"]["ludus.dev/trigger"] == "Manual"
    complete(k, "daily-0", accuracy=0.9)
    publish(k, "daily", 0)
    wait_for(lambda: (status(k, "daily").get("champion") or {}).get("job") == "daily-0", what="daily-0 champion")
    assert ludus(k.kubeconfig, "retrain", "daily", *namespace).returncode == 0
    wait_for(lambda: len(runs(k, "daily")) == 2, what="a second manual run")
    complete(k, "daily-1", accuracy=0.96)
    publish(k, "daily", 1)
    wait_for(lambda: (status(k, "daily").get("champion") or {}).get("job") == "daily-1", what="daily-1 champion")
    # A rollback by hand, then a refusal that names what exists.
    rolled = ludus(k.kubeconfig, "promote", "daily", "--job", "daily-0", *namespace)
    assert rolled.returncode == 0, rolled.stderr
    publish(k, "daily", 0)
    back = wait_for(lambda: (status(k, "daily").get("champion") or {}).get("job") == "daily-0" and status(k, "daily"),
                    what="rolled back")
    assert back["champion"]["reason"] == "Manual" and [h["job"] for h in back["champions"]] == [
        "daily-0", "daily-1", "daily-0"]
    refused = ludus(k.kubeconfig, "promote", "daily", "--job", "daily-7", *namespace)
    assert refused.returncode == 2 and "no run 'daily-7'" in refused.stderr and "daily-1" in refused.stderr
    shown = ludus(k.kubeconfig, "history", "daily", *namespace)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "champion daily-0 at models:daily/champion" in lines[0] and "next run 20" in lines[0]
    assert any(line.split()[:2] == ["daily-1", "Manual"] and "0.96" in line for line in lines)
    assert any(line.split()[:1] == ["daily-0"] and "serving" in line for line in lines), shown.stdout
    listed = ludus(k.kubeconfig, "ct", "list", *namespace)
    assert "daily-0 accuracy 0.9" in listed.stdout and "Waiting" in listed.stdout
    as_json = json.loads(ludus(k.kubeconfig, "ct", "list", *namespace, "-o", "json").stdout)
    assert [(x["metadata"]["name"], x["status"]["champion"]["job"]) for x in as_json["items"]] == [("daily", "daily-0")]


def test_a_claim_that_does_not_exist_is_named_on_the_run_and_the_resource(
        k: Kubectl, operator: OperatorProcess) -> None:
    manifest = ct_manifest("orphan")
    manifest["spec"]["template"]["checkpoint"]["claimName"] = "no-such-claim"
    k.apply(manifest)
    k.run("annotate", "ct", "orphan", "ludus.dev/data-version=v1")
    wait_for(lambda: runs(k, "orphan"), what="a run")

    def blocked() -> dict[str, Any] | None:
        return next((x for x in status(k, "orphan").get("conditions", [])
                     if x["type"] == "RunScheduled" and x["status"] == "False"), None)

    cond = wait_for(blocked, timeout=60, what="the unbound claim named")
    assert cond["reason"] == "Unschedulable" and "orphan-0" in cond["message"]
    assert '"no-such-claim" not found' in cond["message"] and "kubectl get pvc" in cond["message"]
    run = next(x for x in k.json("tj", "orphan-0")["status"]["conditions"] if x["type"] == "PodsScheduled")
    assert run["status"] == "False" and "no-such-claim" in run["message"]


CHALLENGERS = [  # (its evaluation, the decision) against a champion at accuracy 0.90, precision 0.95
    ({"accuracy": 0.90, "precision": 0.95}, "NotBetterEnough"),  # a tie
    ({"accuracy": 0.905, "precision": 0.95}, "NotBetterEnough"),  # better, but by less than minImprovement
    ({"eval_loss": 0.2, "precision": 0.95}, "NotEvaluated"),  # never reported the objective
    ({"accuracy": 0.99, "precision": 0.80}, "ThresholdNotMet"),  # precision >= 0.9 does not hold
    ({"accuracy": 0.99}, "ThresholdNotMet"),  # the threshold's metric is missing
    ({"accuracy": 0.95, "precision": 0.93}, "BetterObjective"),
]


def test_promotion_decisions_over_a_table_of_challengers(k: Kubectl, operator: OperatorProcess, claim: str) -> None:
    k.apply(ct_manifest("table", successfulRunsHistoryLimit=10,
                        promotion={"objective": {"metric": "accuracy", "goal": "maximize"}, "minImprovement": 0.01,
                                   "thresholds": ["precision >= 0.9"]}))
    for number, (metrics, expected) in enumerate([({"accuracy": 0.90, "precision": 0.95}, "FirstChampion"),
                                                  *CHALLENGERS]):
        k.run("annotate", "ct", "table", f"ludus.dev/retrain=r{number}", "--overwrite")
        run = f"table-{number}"
        wait_for(lambda r=run: k.get_or_none("tj", r), what=run)
        wait_for(lambda r=run: running(k, r), what=f"{run} Running")
        report(k, run, metrics, step=100)
        finish(k, run)

        def decided(r: str = run) -> dict[str, Any] | None:
            record = next((x for x in status(k, "table").get("runs", []) if x["name"] == r), None)
            return record if record and (record.get("promoted") is not None or record["reason"] == "Publishing") \
                else None

        record = wait_for(decided, what=f"{run} decided")
        if expected in ("FirstChampion", "BetterObjective"):
            assert record["reason"] == "Publishing", record
            publish(k, "table", number)
            champion = wait_for(lambda r=run: (status(k, "table").get("champion") or {}).get("job") == r
                                and status(k, "table")["champion"], what=f"{run} champion")
            assert champion["reason"] == expected
        else:
            assert record["promoted"] is False and record["reason"] == expected, (metrics, record)
    final = status(k, "table")
    assert final["promotions"] == 2 and final["rejections"] == len(CHALLENGERS) - 1
    assert [h["job"] for h in final["champions"]] == ["table-0", f"table-{len(CHALLENGERS)}"]
