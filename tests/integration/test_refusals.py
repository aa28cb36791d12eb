"""The API server refusing a job's children: named on the job once, asked again at a bounded rate.

A ResourceQuota of one pod lets the job's store in and refuses its workers (403, exceeded quota).
Before, the create was retried on every pass with no condition and no Event: the job sat Pending
and said nothing.
"""

from __future__ import annotations

import time
from typing import Any

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


def _no_suspending_policy(namespace: str) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy (the API server's own CEL admission) that refuses any change making a
    TrainingJob in `namespace` suspended: what a platform that forbids pausing jobs there would install."""
    name = f"ludus-test-no-suspend-{namespace}"
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": name},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": [{"apiGroups": ["ludus.dev"], "apiVersions": ["v1alpha1"],
                                                          "operations": ["UPDATE"], "resources": ["trainingjobs"]}]},
                  "validations": [{"expression": "!(has(object.spec.suspend) && object.spec.suspend)",
                                   "message": "training jobs here may not be suspended"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": name},
         "spec": {"policyName": name, "validationActions": ["Deny"],
                  "matchResources": {"namespaceSelector": {
                      "matchLabels": {"kubernetes.io/metadata.name": namespace}}}}},
    ]


def test_a_trial_change_the_api_server_refuses_is_named_on_the_sweep_once(
    k: Kubectl, namespace: str, operator: OperatorProcess,
) -> None:
    """Suspending a sweep patches its running trials' spec.suspend; an admission policy refuses that (422).
    Before, the patch was an error retried with back-off, and nothing on the sweep said why its trials
    kept running."""
    from tests.integration.test_sweeps import sweep_manifest, trials

    k.apply(sweep_manifest("held", maxTrials=2, parallelTrials=1))
    wait_for(lambda: len(trials(k, "held")) == 1, timeout=60, what="the first trial")
    policy = _no_suspending_policy(namespace)
    cluster_wide = k.in_namespace("")
    cluster_wide.apply(*policy)
    try:
        # The API server applies a new policy within a second or so: wait until it refuses a patch.
        wait_for(lambda: k.run("patch", "tj", "held-0", "--type=merge", "--dry-run=server",
                               "-p", '{"spec": {"suspend": true}}', check=False).returncode != 0,
                 timeout=30, what="the admission policy in force")
        k.run("patch", "sweep", "held", "--type=merge", "-p", '{"spec": {"suspend": true}}')

        def refused() -> dict | None:
            conditions = (k.json("sweep", "held").get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c["type"] == "ChildrenUpdated" and c["status"] == "False"), None)

        condition = wait_for(refused, timeout=60, what="ChildrenUpdated False on the sweep")
        assert condition["reason"] == "UpdateRefused"
        assert condition["message"].startswith("TrainingJob held-0: ")
        assert "training jobs here may not be suspended" in condition["message"]
        time.sleep(12)  # two more tries at least (5 s, then 10 s)
        events = [e for e in k.items("events") if e["involvedObject"]["name"] == "held"
                  and e["reason"] == "UpdateRefused"]
        assert len(events) == 1, [e["message"] for e in events]
        assert not k.json("tj", "held-0")["spec"].get("suspend")
    finally:
        for doc in reversed(policy):
            cluster_wide.run("delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found")
    wait_for(lambda: k.json("tj", "held-0")["spec"].get("suspend") is True, timeout=120,
             what="the trial suspended once the policy is gone")
    updated = wait_for(lambda: next((c for c in k.json("sweep", "held")["status"]["conditions"]
                                     if c["type"] == "ChildrenUpdated" and c["status"] == "True"), None),
                       timeout=60, what="ChildrenUpdated True again")
    assert updated["reason"] == "ChildrenUpdated"
