"""Each job's NetworkPolicy on the real API server: created with the job and owned by it, collected with
it, and absent when the job or the operator turns it off."""

from __future__ import annotations

from pathlib import Path

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job
from tests.fixtures import TestCluster


def _running(k: Kubectl, name: str) -> None:
    wait_for(lambda: (k.json("tj", name).get("status") or {}).get("phase") == "Running", what=f"{name} Running")


def test_the_policy_comes_and_goes_with_its_job_and_only_when_wanted(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("guarded").workers(2).on_fake_nodes().manifest(),
            make_job("open").workers(1).on_fake_nodes().spec(networkPolicy={"enabled": False}).manifest())
    _running(k, "guarded")
    _running(k, "open")
    policy = k.json("networkpolicy", "guarded")
    owner = policy["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("TrainingJob", "guarded", True)
    assert policy["spec"]["podSelector"] == {"matchLabels": {"ludus.dev/job-name": "guarded"}}
    assert k.get_or_none("networkpolicy", "open") is None
    for pod in k.items("pods", "ludus.dev/job-name=guarded"):
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    k.run("delete", "tj", "guarded")
    wait_for(lambda: k.get_or_none("networkpolicy", "guarded") is None, timeout=60,
             what="the policy collected with its job")


def test_an_operator_started_without_policies_makes_none_unless_a_job_asks(
    cluster: TestCluster, k: Kubectl, namespace: str, tmp_path: Path
) -> None:
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, ("--network-policy", "off")).start()
    try:
        k.apply(make_job("plain").workers(1).on_fake_nodes().manifest(),
                make_job("asks").workers(1).on_fake_nodes().spec(networkPolicy={"enabled": True}).manifest())
        _running(k, "plain")
        _running(k, "asks")
        assert k.get_or_none("networkpolicy", "plain") is None
        assert k.json("networkpolicy", "asks")["metadata"]["ownerReferences"][0]["name"] == "asks"
    finally:
        operator.stop()
