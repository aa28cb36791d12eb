"""The Pod Security Standards over the pods Ludus builds: each level refuses what it should, naming
the TrainingJob field, and the default job passes the strictest."""

from __future__ import annotations

from typing import Any

import pytest

from ludus.builders.pods import build_rendezvous_pod, build_worker_pod
from ludus.builders.podsecurity import LEVELS, PodSecurityLevel, pod_violations, refusal
from tests.factories import make_job


def _refusal(template: dict[str, Any], level: PodSecurityLevel) -> str | None:
    job = make_job().workers(1).spec(template=template).build()
    return refusal([build_worker_pod(job, 0), build_rendezvous_pod(job)], level, len(job.spec.template.volumes))


@pytest.mark.parametrize("level", LEVELS)
def test_the_pods_of_a_default_job_meet_every_level(level: PodSecurityLevel) -> None:
    assert _refusal({}, level) is None


@pytest.mark.parametrize(("template", "field", "refused_at"), [
    ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}, "spec.template.volumes[0].hostPath",
     {"baseline", "restricted"}),
    ({"volumes": [{"name": "data", "emptyDir": {}}, {"name": "nfs", "nfs": {"server": "n", "path": "/"}}]},
     "spec.template.volumes[1].nfs", {"restricted"}),
    ({"automountServiceAccountToken": True}, "spec.template.automountServiceAccountToken", {"restricted"}),
    ({"readOnlyRootFilesystem": False}, "spec.template.readOnlyRootFilesystem", {"restricted"}),
    ({"runAsUser": 0}, "spec.template.runAsUser", {"restricted"}),
    ({"annotations": {"container.apparmor.security.beta.kubernetes.io/trainer": "unconfined"}},
     "spec.template.annotations[container.apparmor.security.beta.kubernetes.io/trainer]", {"baseline", "restricted"}),
], ids=["hostPath", "nfs", "token", "writable root", "root", "apparmor"])
def test_a_template_asking_for_more_than_the_level_is_refused_naming_the_field(
    template: dict[str, Any], field: str, refused_at: set[str],
) -> None:
    for level in LEVELS:
        why = _refusal(template, level)
        if level in refused_at:
            assert why is not None and why.startswith(f"{field}:") and level in why, (level, why)
        else:
            assert why is None, (level, why)


def test_every_baseline_rule_over_a_hand_written_pod() -> None:
    context = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}, "procMount": "Unmasked",
               "seccompProfile": {"type": "Unconfined"}, "seLinuxOptions": {"type": "spc_t", "user": "root"},
               "appArmorProfile": {"type": "Unconfined"}, "windowsOptions": {"hostProcess": True}}
    pod = {"spec": {"hostNetwork": True, "hostPID": True, "hostIPC": True,
                    "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
                    "containers": [{"name": "c", "securityContext": context, "ports": [{"hostPort": 80}]}]}}
    paths = {v.path for v in pod_violations(pod, "baseline")}
    assert paths == {
        "spec.hostNetwork", "spec.hostPID", "spec.hostIPC", "spec.securityContext.sysctls[0].name",
        *(f"spec.containers[0].securityContext.{f}" for f in (
            "privileged", "windowsOptions.hostProcess", "capabilities.add", "procMount", "seccompProfile.type",
            "appArmorProfile.type", "seLinuxOptions.type", "seLinuxOptions.user")),
        "spec.containers[0].ports[0].hostPort",
    }
    assert pod_violations(pod, "privileged") == []
    restricted = {v.path for v in pod_violations(pod, "restricted")} - paths
    assert {"spec.containers[0].securityContext.allowPrivilegeEscalation",
            "spec.containers[0].securityContext.runAsNonRoot",
            "spec.containers[0].securityContext.capabilities.drop"} <= restricted
