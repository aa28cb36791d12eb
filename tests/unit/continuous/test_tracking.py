"""A ContinuousTraining with spec.template.tracking: every run's model is a version of one registered model,
and the publish pod moves its `champion` alias after the switch."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining, Publishing
from ludus.api.models import TrainingJob
from ludus.builders.pods import build_worker_pod
from ludus.continuous.policies.publication import finish_publication
from ludus.continuous.publish import publish_pod
from ludus.continuous.runs import run_job
from tests.unit.continuous.factories import T0, ct_body, make_pass

RUN = "0123456789abcdef0123456789abcdef"
TRACKING = {"uri": "http://mlflow:5000", "secretRef": {"name": "mlflow"}}
TEMPLATE = {"image": "ludus-trainer:latest", "command": ["python", "-m", "ludus_trainer"],
            "checkpoint": {"claimName": "models"}, "tracking": TRACKING}


def test_a_runs_workers_register_their_model_under_the_continuous_trainings_name() -> None:
    ct = ContinuousTraining.model_validate(ct_body("nightly", template=TEMPLATE))
    body = run_job(ct, 2, "Manual", None, None, warm_start=None)
    body["metadata"] |= {"namespace": "team-a", "uid": "uid-run"}
    env = {e["name"]: e.get("value") for e in build_worker_pod(TrainingJob.model_validate(body), 0)["spec"]
           ["containers"][0]["env"]}
    assert env["LUDUS_TRACKING_REGISTERED_MODEL"] == "team-a.nightly"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_the_publish_pod_moves_the_alias_with_the_runs_mlflow_run_and_the_event_says_so() -> None:
    s = make_pass({3: (c.PHASE_SUCCEEDED, {"accuracy": 0.97})}, template=TEMPLATE)
    s.records[3] = s.records[3].model_copy(update={"tracking_run_id": RUN})
    s.publishing = Publishing(job="fresh-3", reason="FirstChampion", message="the first", started_at=T0)
    finish_publication(s, [])
    (pod,) = s.plan.create
    (container,) = pod["spec"]["containers"]
    assert container["command"][-6:] == ["--registered-model", "team-a.fresh", "--tracking-run", RUN,
                                         "--reason", "FirstChampion"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    assert env["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow"
    pod["status"] = {"phase": "Succeeded", "containerStatuses": [{"name": "publish", "state": {"terminated": {
        "exitCode": 0, "message": '{"sha256":"abc","message":"published","registryVersion":"4"}'}}}]}
    finish_publication(s, [pod])
    assert s.champion is not None and s.champion.job == "fresh-3"
    assert any("MLflow's champion alias is on version 4" in e[2] for e in s.plan.events), s.plan.events


def test_without_the_runs_mlflow_run_the_pod_only_publishes_and_a_hostile_version_is_not_repeated() -> None:
    s = make_pass({3: (c.PHASE_SUCCEEDED, {"accuracy": 0.97})}, template=TEMPLATE)
    pod = publish_pod(s.ct, "fresh-3", 3)
    assert "--registered-model" not in pod["spec"]["containers"][0]["command"]
    s.publishing = Publishing(job="fresh-3", reason="FirstChampion", message="the first", started_at=T0)
    pod["status"] = {"phase": "Succeeded", "containerStatuses": [{"name": "publish", "state": {"terminated": {
        "exitCode": 0, "message": '{"sha256":"abc","registryVersion":"4; rm -rf /"}'}}}]}
    finish_publication(s, [pod])
    assert s.champion is not None and not any("alias" in e[2] for e in s.plan.events)


def test_a_decided_promotion_creates_the_publish_pod_with_the_alias_move_at_once() -> None:
    from ludus.continuous.policies.promotion import decide_ended_runs

    s = make_pass({3: (c.PHASE_SUCCEEDED, {"accuracy": 0.97})}, template=TEMPLATE)
    s.records[3] = s.records[3].model_copy(update={"tracking_run_id": RUN})
    decide_ended_runs(s)
    (pod,) = s.plan.create
    command = pod["spec"]["containers"][0]["command"]
    assert command[command.index("--tracking-run") + 1] == RUN and "--registered-model" in command


def test_a_rejected_run_gets_a_record_pod_that_tags_its_version_and_is_deleted_once_ended() -> None:
    from ludus.api.continuous import Champion
    from ludus.continuous.policies.promotion import decide_ended_runs
    from ludus.continuous.policies.publication import clear_records

    s = make_pass({3: (c.PHASE_SUCCEEDED, {"accuracy": 0.90})}, template=TEMPLATE)
    s.champion = Champion(job="fresh-1", claim_name="models", model_path="fresh/champion",
                          source_path="fresh/runs/fresh-1/model", evaluation={"accuracy": 0.95}, promoted_at=T0,
                          reason="FirstChampion")
    s.records[3] = s.records[3].model_copy(update={"tracking_run_id": RUN})
    decide_ended_runs(s)
    assert s.records[3].promoted is False
    (pod,) = s.plan.create
    assert pod["metadata"]["name"] == "fresh-record-3"
    (container,) = pod["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["python", "-m", "ludus_trainer.registry"]
    assert command[command.index("--reason") + 1] == s.records[3].reason
    assert command[command.index("--tracking-run") + 1] == RUN
    assert not any("persistentVolumeClaim" in v for v in pod["spec"]["volumes"])
    pod["status"] = {"phase": "Failed", "containerStatuses": [{"name": "publish", "state": {"terminated": {
        "exitCode": 1, "message": '{"error":"connection refused"}'}}}]}
    clear_records(s, [pod])
    assert s.plan.delete_pods == ["fresh-record-3"]
    assert any(e[1] == "RegistryNotUpdated" and "connection refused" in e[2] for e in s.plan.events)


def test_without_tracking_a_rejection_creates_no_pod() -> None:
    from ludus.api.continuous import Champion
    from ludus.continuous.policies.promotion import decide_ended_runs

    s = make_pass({3: (c.PHASE_SUCCEEDED, {"accuracy": 0.90})})
    s.champion = Champion(job="fresh-1", claim_name="models", model_path="fresh/champion",
                          source_path="fresh/runs/fresh-1/model", evaluation={"accuracy": 0.95}, promoted_at=T0,
                          reason="FirstChampion")
    decide_ended_runs(s)
    assert s.records[3].promoted is False and s.plan.create == []
