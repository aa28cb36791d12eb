"""The pods Ludus generates meet the restricted Pod Security Standard by default."""

from __future__ import annotations

import pytest

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@pytest.mark.parametrize("namespace", [RESTRICTED], indirect=True, ids=["restricted namespace"])
def test_restricted_namespace_admits_our_pods(k: Kubectl, operator: OperatorProcess, namespace: str) -> None:
    labels = k.json("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    k.apply(make_job("secure").workers(2).on_fake_nodes().manifest())
    wait_for(lambda: len(k.items("pods", "ludus.dev/job-name=secure")) == 3, what="store and 2 workers admitted")
    # A pod that breaks the standard is refused in the same namespace: the check is really on.
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]},
    }
    refused = k.apply(bad, check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr
