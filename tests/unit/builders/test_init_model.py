"""spec.init: the model a job starts from, mounted read-only, and what the trainer is told."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ludus.api import constants as c

TEMPLATE = {"image": "ludus-trainer:latest", "command": ["python", "-m", "ludus_trainer"]}


def test_a_job_initialised_from_a_model_mounts_it_read_only_and_tells_the_trainer() -> None:
    from ludus.api.models import TrainingJob
    from ludus.builders.pods import build_worker_pod

    body = TEMPLATE
    job = TrainingJob.model_validate({"metadata": {"name": "tune", "namespace": "a", "uid": "u"}, "spec": {
        **body, "init": {"claimName": "models", "path": "pretrain/model", "strict": False, "freeze": ["0", "2"]}}})
    pod = build_worker_pod(job, 0)
    container = pod["spec"]["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == c.VOLUME_INIT)
    assert mount == {"name": c.VOLUME_INIT, "mountPath": c.INIT_MOUNT, "readOnly": True}
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == c.VOLUME_INIT)
    assert volume["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[c.ENV_INIT_FROM] == f"{c.INIT_MOUNT}/pretrain/model" and env[c.ENV_INIT_STRICT] == "false"
    assert env[c.ENV_INIT_FREEZE] == "0,2"
    with pytest.raises(ValidationError, match="inside the claim"):
        TrainingJob.model_validate({"metadata": {"name": "x"}, "spec": {**body, "init": {
            "claimName": "m", "path": "a/../b"}}})


def test_a_model_on_the_jobs_own_checkpoint_claim_is_the_same_volume_mounted_read_only() -> None:
    from ludus.api.models import TrainingJob
    from ludus.builders.pods import build_worker_pod

    job = TrainingJob.model_validate({"metadata": {"name": "tune", "namespace": "a", "uid": "u"}, "spec": {
        **TEMPLATE, "checkpoint": {"claimName": "shared", "subPath": "tune"},
        "init": {"claimName": "shared", "path": "pretrain/model"}}})
    pod = build_worker_pod(job, 0)
    claims = [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert [v["name"] for v in claims] == [c.VOLUME_CHECKPOINT]
    mounts = [m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == c.VOLUME_CHECKPOINT]
    assert {(m["mountPath"], m.get("readOnly", False)) for m in mounts} == {("/checkpoints", False),
                                                                            (c.INIT_MOUNT, True)}
