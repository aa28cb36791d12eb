"""The CRD on a real API server: it installs, explains itself, and refuses bad TrainingJobs early."""

from __future__ import annotations

import pytest

from devcluster.kubectl import Kubectl
from tests.factories import make_job


def test_crd_is_established_with_short_name_and_category(k: Kubectl) -> None:
    crd = k.json("crd", "trainingjobs.ludus.dev")
    assert crd["spec"]["names"]["shortNames"] == ["tj"]
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    assert k.run("get", "tj").returncode == 0
    assert k.run("get", "ludus").returncode == 0  # the category


def test_kubectl_explain_shows_field_descriptions(k: Kubectl) -> None:
    out = k.run("explain", "trainingjob.spec.elastic").stdout
    assert "Fewest workers that may train" in out and "maxReplicas" in out
    assert "one per GPU" in k.run("explain", "trainingjob.spec.nprocPerNode").stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"replicas": 2, "elastic": {"minReplicas": 3, "maxReplicas": 2}}, "elastic.minReplicas must not exceed"),
        ({"replicas": 5, "elastic": {"minReplicas": 1, "maxReplicas": 4}}, "spec.replicas must lie within"),
        ({"resources": {"gpus": -1}}, "spec.resources.gpus"),
        ({"image": None}, "spec.image: Required value"),
        ({"image": ""}, "spec.image"),
        ({"nprocPerNode": 0}, "spec.nprocPerNode"),
        ({"env": [{"name": "PET_NNODES", "value": "8"}]}, "must not set PET_"),
        ({"restartPolicy": "Always"}, "spec.restartPolicy: Unsupported value"),
        ({"surprise": True}, 'unknown field "spec.surprise"'),
        ({"init": {"claimName": "models", "path": "../other-team/model"}}, "init.path must stay inside the claim"),
        ({"init": {"path": "model"}}, "init needs exactly one of claimName (a model on a claim), fromJob"),
        ({"init": {"claimName": "models", "fromJob": "pretrain"}}, "init needs exactly one of claimName"),
        ({"checkpoint": {"claimName": "c", "subPath": "a/../../b"}}, "subPath must stay inside the claim"),
        ({"managedBy": "no-domain"}, "spec.managedBy"),
        ({"checkpoint": {"claimName": "c", "uri": "s3://ckpts/x"}}, "claimName (a volume) or uri (object storage)"),
        ({"checkpoint": {"secretRef": {"name": "s"}}}, "are for object storage: set checkpoint.uri"),
        ({"checkpoint": {"uri": "s3://ckpts/a/../b"}}, "checkpoint.uri must not contain . or .. segments"),
        ({"init": {"uri": "s3://ckpts/pre/model"}}, "spec.init.uri is read with spec.checkpoint's object store"),
        ({"init": {"uri": "s3://ckpts/pre/model", "claimName": "models"}, "checkpoint": {"uri": "s3://ckpts/x"}},
         "or uri (a model in object storage)"),
        ({"init": {"uri": "s3://ckpts/../model"}, "checkpoint": {"uri": "s3://ckpts/x"}},
         "init.uri must not contain . or .. segments"),
    ],
    ids=[
        "max below min",
        "replicas outside the elastic range",
        "negative GPUs",
        "missing image",
        "empty image",
        "zero processes per node",
        "reserved torchrun variables",
        "unknown restart policy",
        "unknown fields",
        "an init path leaving its claim",
        "an init without a claim or a job",
        "an init with both a claim and a job",
        "a checkpoint subPath leaving its claim",
        "a managedBy that is no domain-prefixed path",
        "a checkpoint both on a claim and in object storage",
        "object storage credentials without a uri",
        "a checkpoint uri leaving its prefix",
        "an init uri without an object store",
        "an init both on a claim and in object storage",
        "an init uri leaving its prefix",
    ],
)
def test_invalid_trainingjobs_are_rejected_naming_the_field(k: Kubectl, change: dict, message: str) -> None:
    manifest = make_job("bad").manifest()
    for key, value in change.items():
        if value is None:
            manifest["spec"].pop(key, None)
        else:
            manifest["spec"][key] = value
    result = k.apply(manifest, check=False)
    assert result.returncode != 0, "the API server accepted an invalid TrainingJob"
    assert message in result.stderr, result.stderr
    assert k.get_or_none("tj", "bad") is None


def test_managed_by_is_set_at_creation_and_never_changed(k: Kubectl) -> None:
    """Who runs a job cannot move under it (two controllers would both act, or none): set, changed or
    removed after creation, the API server refuses it."""
    k.apply(make_job("owned").manifest())
    added = k.run("patch", "tj", "owned", "--type=merge", "-p", '{"spec": {"managedBy": "kueue.x-k8s.io/multikueue"}}',
                  check=False)
    assert added.returncode != 0 and "spec.managedBy is immutable" in added.stderr, added.stderr
    manifest = make_job("dispatched").manifest()
    manifest["spec"]["managedBy"] = "kueue.x-k8s.io/multikueue"
    k.apply(manifest)
    for patch in ('{"spec": {"managedBy": "ludus.dev/trainingjob-controller"}}', '{"spec": {"managedBy": null}}'):
        changed = k.run("patch", "tj", "dispatched", "--type=merge", "-p", patch, check=False)
        assert changed.returncode != 0 and "spec.managedBy is immutable" in changed.stderr, changed.stderr
    assert k.json("tj", "dispatched")["spec"]["managedBy"] == "kueue.x-k8s.io/multikueue"


def test_names_too_long_for_pod_hostnames_are_rejected(k: Kubectl) -> None:
    result = k.apply(make_job("a" * 49).manifest(), check=False)
    assert result.returncode != 0 and "at most 48 characters" in result.stderr


def test_defaults_are_filled_in_by_the_server(k: Kubectl) -> None:
    k.apply(make_job("defaults").manifest())
    spec = k.json("tj", "defaults")["spec"]
    assert spec["replicas"] == 1 and spec["nprocPerNode"] == "auto" and spec["restartPolicy"] == "OnFailure"
    assert spec["resources"] == {"gpus": 0, "cpu": "1", "memory": "2Gi", "sharedMemory": "1Gi"}
    assert spec["checkpoint"] == {"path": "/checkpoints", "intervalSteps": 100}
