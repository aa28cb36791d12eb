"""The pods Ludus generates meet the restricted Pod Security Standard by default."""

from __future__ import annotations

import json
from typing import Any

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


HOST_ROOT = {"volumes": [{"name": "root", "hostPath": {"path": "/"}}],
             "volumeMounts": [{"name": "root", "mountPath": "/host"}]}


def _on_fake_nodes(name: str, **template: Any) -> dict[str, Any]:
    manifest = make_job(name).workers(1).on_fake_nodes().manifest()
    manifest["spec"]["template"].update(template)
    return manifest


def test_a_job_asking_for_more_than_the_operators_level_fails_naming_the_field_and_gets_no_pod(
    k: Kubectl, operator: OperatorProcess, namespace: str,
) -> None:
    """The namespace has no Pod Security labels: nothing in the API server stops a hostPath of `/`.
    The operator's own level (restricted by default) does, before any pod exists."""
    assert "pod-security.kubernetes.io/enforce" not in (k.json("namespace", namespace)["metadata"].get("labels") or {})
    k.apply(_on_fake_nodes("hostroot", **HOST_ROOT), _on_fake_nodes("token", automountServiceAccountToken=True))
    for name, field in (("hostroot", "spec.template.volumes[0].hostPath"),
                        ("token", "spec.template.automountServiceAccountToken")):
        wait_for(lambda n=name: (k.json("tj", n).get("status") or {}).get("phase") == "Failed",  # type: ignore[misc]
                 what=f"{name} Failed")
        failed = next(c for c in k.json("tj", name)["status"]["conditions"] if c["type"] == "Failed")
        assert failed["reason"] == "InvalidSpec" and failed["message"].startswith(field), failed
        assert k.items("pods", f"ludus.dev/job-name={name}") == []
        events = [e for e in k.items("events") if e["involvedObject"]["name"] == name]
        assert [e["reason"] for e in events] == ["InvalidSpec"]


@pytest.mark.parametrize("namespace", [{"pod-security.kubernetes.io/enforce": "baseline"}], indirect=True,
                         ids=["baseline namespace"])
def test_the_operators_baseline_check_agrees_with_the_api_servers(k: Kubectl, namespace: str) -> None:
    """The same pods, judged by Kubernetes' own PodSecurity admission (a server dry run in a namespace
    enforcing baseline) and by the operator's checker: the same verdict for each."""
    from ludus.builders.pods import build_worker_pod
    from ludus.builders.podsecurity import pod_violations

    templates = [{}, HOST_ROOT, {"annotations": {"container.apparmor.security.beta.kubernetes.io/trainer":
                                                 "unconfined"}},
                 {"volumes": [{"name": "n", "nfs": {"server": "nfs", "path": "/"}}]}, {"runAsUser": 0}]
    for template in templates:
        pod = build_worker_pod(make_job("judged", namespace).workers(1).spec(template=template).build(), 0)
        pod["metadata"].pop("ownerReferences", None)
        verdict = k.run("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        refused_by_server = verdict.returncode != 0 and "violates PodSecurity" in verdict.stderr
        assert refused_by_server == bool(pod_violations(pod, "baseline")), (template, verdict.stderr)
