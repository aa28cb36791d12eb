"""The API server refusing a job's children: named on the job once, asked again at a bounded rate.

A ResourceQuota of one pod lets the job's store in and refuses its workers (403, exceeded quota).
Before, the create was retried on every pass with no condition and no Event: the job sat Pending
and said nothing.
"""

from __future__ import annotations

import time

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job


def _refused_posts(operator: OperatorProcess) -> float:
    return sum(float(line.split()[-1]) for line in operator.metrics().splitlines()
               if line.startswith("ludus_api_requests_total{") and 'verb="POST"' in line and 'code="403"' in line)


def test_a_refused_create_is_a_condition_naming_the_child_with_one_event_and_a_bounded_retry(
    k: Kubectl, operator: OperatorProcess,
) -> None:
    k.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "one-pod"},
             "spec": {"hard": {"pods": "1"}}})
    wait_for(lambda: (k.json("resourcequota", "one-pod").get("status") or {}).get("hard"), what="quota counted")
    k.apply(make_job("quota").workers(2).on_fake_nodes().manifest())

    def refused() -> dict | None:
        conditions = (k.json("tj", "quota").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Created" and c["status"] == "False"), None)

    wait_for(refused, timeout=60, what="Created False on the job")
    condition = refused()
    assert condition is not None and condition["reason"] == "CreateRefused"
    assert condition["message"].startswith("Pod quota-") and "exceeded quota" in condition["message"]
    first = _refused_posts(operator)
    time.sleep(20)
    # Backing off (5 s, doubling): a few tries in 20 s for the two refused workers, not one per pass.
    assert _refused_posts(operator) - first <= 8
    events = [e for e in k.items("events") if e["involvedObject"]["name"] == "quota"
              and e["reason"] == "CreateRefused"]
    assert len(events) == 1, [e["message"] for e in events]

    k.run("delete", "resourcequota", "one-pod")
    wait_for(lambda: (k.json("tj", "quota").get("status") or {}).get("workers") == "2/2", timeout=120,
             what="the job Running once the quota is gone")
    created = next(c for c in k.json("tj", "quota")["status"]["conditions"] if c["type"] == "Created")
    assert created["status"] == "True"


def test_a_trial_the_api_server_refuses_is_named_on_the_sweep_once(k: Kubectl, operator: OperatorProcess) -> None:
    """A template subPath near the limit: each trial's own directory under it passes 253 characters,
    and the TrainingJob CRD refuses the trial (422). Before, the sweep retried on every pass, silent."""
    from tests.integration.test_sweeps import sweep_manifest

    manifest = sweep_manifest("deep", maxTrials=2, parallelTrials=1)
    manifest["spec"]["template"]["checkpoint"] = {"claimName": "c", "subPath": "d" * 250}
    k.apply(manifest)

    def refused() -> dict | None:
        conditions = (k.json("sweep", "deep").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Created" and c["status"] == "False"), None)

    condition = wait_for(refused, timeout=60, what="Created False on the sweep")
    assert condition["reason"] == "CreateRefused" and condition["message"].startswith("TrainingJob deep-0: ")
    assert "subPath" in condition["message"]
    time.sleep(12)  # two more tries at least (5 s, then 10 s)
    events = [e for e in k.items("events") if e["involvedObject"]["name"] == "deep" and e["reason"] == "CreateRefused"]
    assert len(events) == 1 and k.items("tj", "ludus.dev/sweep=deep") == []
