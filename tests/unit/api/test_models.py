"""The pydantic models: defaults, aliases and the checks that mirror the CRD's CEL rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining
from ludus.api.models import TrainingJobSpec, parse_job, parse_stored
from ludus.api.sweep import Sweep
from tests.factories import make_job


def test_defaults_are_what_the_readme_promises() -> None:
    spec = make_job().build().spec
    assert spec.replicas == 1
    assert spec.nproc_per_node == "auto"
    assert spec.restart_policy == "OnFailure"
    assert spec.backoff_limit == 6
    assert spec.clean_pod_policy == "Running"
    assert spec.resources.gpus == 0 and spec.resources.memory == "2Gi"
    assert spec.checkpoint.path == "/checkpoints" and spec.checkpoint.interval_steps == 100
    assert spec.elastic is None and spec.min_replicas == spec.max_replicas == 1


def test_camel_case_round_trip() -> None:
    job = make_job().workers(2).nproc(2).elastic(1, 4, 10).build()
    dumped = job.spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["nprocPerNode"] == 2
    assert dumped["elastic"] == {"minReplicas": 1, "maxReplicas": 4, "maxRestarts": 10}
    assert TrainingJobSpec.model_validate(dumped) == job.spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"replicas": 5, "elastic": {"minReplicas": 1, "maxReplicas": 4}}, "spec.replicas must lie within"),
        ({"elastic": {"minReplicas": 3, "maxReplicas": 2}, "replicas": 2}, "minReplicas must not exceed"),
        ({"nprocPerNode": 0}, "nprocPerNode must be a positive integer"),
        ({"nprocPerNode": "many"}, "nprocPerNode must be a positive integer"),
        ({"env": [{"name": "PET_NNODES", "value": "9"}]}, "must not set PET_NNODES"),
        ({"resources": {"gpus": -1}}, "greater than or equal to 0"),
        ({"resources": {"memory": "lots"}}, "resources.memory must be a Kubernetes quantity"),
        ({"restartPolicy": "Always"}, "Input should be 'OnFailure', 'ExitCode' or 'Never'"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
    ],
    ids=[
        "replicas above the elastic maximum are refused",
        "an elastic minimum above the maximum is refused",
        "zero processes per node are refused",
        "a word other than auto is refused for nprocPerNode",
        "user env may not set torchrun's PET variables",
        "negative GPUs are refused",
        "memory must be a quantity",
        "restartPolicy is an enum",
        "unknown fields are refused",
    ],
)
def test_invalid_specs_name_the_field(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainingJobSpec.model_validate({"image": "x", **spec})


def test_image_is_required() -> None:
    with pytest.raises(ValidationError, match="image"):
        TrainingJobSpec.model_validate({})


def test_every_example_manifest_is_a_valid_trainingjob() -> None:
    """What users copy from manifests/examples/ parses as the operator reads it (a stored object gets
    metadata the API server adds: a namespace and a UID)."""
    examples = sorted((Path(__file__).resolve().parents[3] / "manifests" / "examples").glob("*.yaml"))
    assert len(examples) >= 4
    for path in examples:
        body = yaml.safe_load(path.read_text())
        body["metadata"] |= {"namespace": "team-a", "uid": "u"}
        if body["kind"] == "Sweep":
            sweep = parse_stored(Sweep, body)
            assert sweep.spec.template.tracking is not None, path  # the demo's sweep is recorded in MLflow
            continue
        if body["kind"] == "ContinuousTraining":
            ct = parse_stored(ContinuousTraining, body)
            assert ct.spec.template.tracking is not None, path  # the demo's runs are versions in MLflow
            assert ct.spec.template.checkpoint.uri, path  # and in the demo's object store
            continue
        job = parse_job(body)
        assert job.metadata.name, path
    multicluster = yaml.safe_load((examples[0].parent / "digits-multicluster.yaml").read_text())
    assert multicluster["spec"]["managedBy"] == c.MANAGED_BY_MULTIKUEUE
