"""A ContinuousTraining whose template checkpoints to object storage: every run under its own prefix, warm
starts by URI, and a publish pod that writes the champion pointer with the template's keys."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining, Publishing
from ludus.continuous.policies.publication import finish_publication
from ludus.continuous.publish import publish_pod
from ludus.continuous.runs import champion_location, model_location, run_job
from tests.unit.continuous.factories import T0, ct_body, make_pass

STORE = {"uri": "s3://models/team-a/", "secretRef": {"name": "s3"}, "endpoint": "http://10.0.0.5:8333"}
TEMPLATE = {"image": "ludus-trainer:latest", "command": ["python", "-m", "ludus_trainer"], "checkpoint": STORE}


def _ct() -> ContinuousTraining:
    return ContinuousTraining.model_validate(ct_body("fresh", template=TEMPLATE))


def test_runs_checkpoint_under_their_own_prefix_and_warm_start_from_the_champions_model_by_uri() -> None:
    ct = _ct()
    assert champion_location(ct) == "s3://models/team-a/fresh/champion.json"
    job = run_job(ct, 3, "Manual", None, None, warm_start="fresh-2")
    spec = job["spec"]
    assert spec["checkpoint"]["uri"] == "s3://models/team-a/fresh/runs/fresh-3" and "subPath" not in spec["checkpoint"]
    assert spec["checkpoint"]["secretRef"] == {"name": "s3"}
    assert spec["init"] == {"uri": "s3://models/team-a/fresh/runs/fresh-2/model", "strict": True, "freeze": []}
    assert model_location(ct, "fresh-2") == spec["init"]["uri"]


def test_the_publish_pod_mounts_no_claim_and_writes_the_pointer_with_the_templates_keys() -> None:
    pod = publish_pod(_ct(), "fresh-3", 3)
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["python", "-m", "ludus_trainer.publish", "--uri", "s3://models/team-a/fresh",
                                    "--run", "fresh-3", "--pointer", "champion.json"]
    env = {e["name"]: e for e in container["env"]}
    assert env["LUDUS_S3_ENDPOINT"]["value"] == "http://10.0.0.5:8333"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"}}
    assert not any("persistentVolumeClaim" in v for v in pod["spec"]["volumes"])


def test_a_published_run_is_the_champion_at_the_pointer_naming_its_model() -> None:
    s = make_pass({3: (c.PHASE_SUCCEEDED, {"accuracy": 0.97})}, template=TEMPLATE)
    s.publishing = Publishing(job="fresh-3", reason="FirstChampion", message="the first", started_at=T0)
    pod = publish_pod(s.ct, "fresh-3", 3)
    pod["status"] = {"phase": "Succeeded", "containerStatuses": [{"name": "publish", "state": {"terminated": {
        "exitCode": 0, "message": '{"sha256":"abc","message":"published"}'}}}]}
    finish_publication(s, [pod])
    assert s.champion is not None and s.champion.claim_name == ""
    assert s.champion.model_path == "s3://models/team-a/fresh/champion.json"
    assert s.champion.source_path == "s3://models/team-a/fresh/runs/fresh-3/model" and s.champion.sha256 == "abc"
