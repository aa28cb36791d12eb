"""spec.init resolved: a claim as given, another job's model once it has succeeded (pinned), a job that
waits for it or fails when it can never come, and what the trainer reported it loaded."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.models import InitializedFrom, TrainingJob
from ludus.builders.pods import build_worker_pod
from ludus.trainingjob.observe import PodObservation
from ludus.trainingjob.policies.init import InitOutcome, init_report, resolve_init
from ludus.trainingjob.progress import parse_progress
from ludus.trainingjob.reconcile import init_blocked_plan, reconcile
from tests.factories import T0, make_job


def job(init: dict[str, Any], status: dict[str, Any] | None = None) -> TrainingJob:
    builder = make_job("finetune").spec(init=init)
    if status:
        builder = builder.status(**status)
    return builder.build()


def source(phase: str = c.PHASE_SUCCEEDED, claim: str | None = "models", sub_path: str | None = "pre") -> dict:
    checkpoint = {k: v for k, v in (("claimName", claim), ("subPath", sub_path)) if v}
    return {"metadata": {"name": "pretrain"}, "spec": {"checkpoint": checkpoint}, "status": {"phase": phase}}


def test_init_needs_exactly_one_source() -> None:
    for init in ({}, {"claimName": "models", "fromJob": "pretrain"}):
        with pytest.raises(ValidationError, match="exactly one of claimName"):
            job(init)


S3 = {"uri": "s3://ckpts/team-a/finetune", "secretRef": {"name": "s3"}}


def test_a_model_in_object_storage_is_read_by_uri_with_the_jobs_own_store() -> None:
    """init.uri: no volume, the URI in LUDUS_INIT_FROM; the keys are the checkpoint store's (so it needs one)."""
    finetune = make_job("finetune").spec(init={"uri": "s3://ckpts/team-a/pretrain/model/"}, checkpoint=S3).build()
    outcome = resolve_init(finetune, None)
    assert outcome.pinned == InitializedFrom(uri="s3://ckpts/team-a/pretrain/model")
    pod = build_worker_pod(outcome.job, 0)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env[c.ENV_INIT_FROM] == "s3://ckpts/team-a/pretrain/model"
    assert not any(v["name"] == c.VOLUME_INIT for v in pod["spec"]["volumes"])
    with pytest.raises(ValidationError, match="set spec.checkpoint.uri"):
        make_job("finetune").spec(init={"uri": "s3://ckpts/team-a/pretrain/model"}).build()
    with pytest.raises(ValidationError, match="exactly one of"):
        make_job("finetune").spec(init={"uri": "s3://ckpts/m", "claimName": "models"}, checkpoint=S3).build()
    with pytest.raises(ValidationError, match=r"\. or \.\. segments"):
        make_job("finetune").spec(init={"uri": "s3://ckpts/a/../b"}, checkpoint=S3).build()


def test_from_a_job_that_checkpointed_to_object_storage_its_export_there_is_pinned() -> None:
    pretrain = {"metadata": {"name": "pretrain"}, "status": {"phase": c.PHASE_SUCCEEDED},
                "spec": {"checkpoint": {"uri": "s3://ckpts/team-a/pretrain/", "secretRef": {"name": "s3"}}}}
    finetune = make_job("finetune").spec(init={"fromJob": "pretrain"}, checkpoint=S3).build()
    outcome = resolve_init(finetune, pretrain)
    assert outcome.pinned == InitializedFrom(job="pretrain", uri="s3://ckpts/team-a/pretrain/model")
    assert outcome.job.spec.init is not None and outcome.job.spec.init.uri == "s3://ckpts/team-a/pretrain/model"
    again = finetune.model_copy(update={"status": finetune.status.model_copy(update={"initialized_from":
                                                                                     outcome.pinned})})
    assert resolve_init(again, None).job.spec.init.uri == "s3://ckpts/team-a/pretrain/model"  # the pin outlives it
    on_claim = resolve_init(job({"fromJob": "pretrain"}), pretrain)
    assert on_claim.unusable is not None and "set spec.checkpoint.uri" in on_claim.unusable


def test_from_a_succeeded_job_its_export_in_its_checkpoint_directory_is_mounted_and_pinned() -> None:
    outcome = resolve_init(job({"fromJob": "pretrain", "strict": False}), source())
    assert outcome.waiting is None and outcome.unusable is None
    assert outcome.pinned == InitializedFrom(job="pretrain", claim_name="models", path="pre/model")
    pod = build_worker_pod(outcome.job, 0)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env[c.ENV_INIT_FROM] == f"{c.INIT_MOUNT}/pre/model" and env[c.ENV_INIT_STRICT] == "false"
    assert {"name": c.VOLUME_INIT, "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in \
        pod["spec"]["volumes"]
    no_sub_path = resolve_init(job({"fromJob": "pretrain"}), source(sub_path=None))
    assert no_sub_path.pinned is not None and no_sub_path.pinned.path == "model"


def test_the_pin_outlives_the_source_job() -> None:
    pinned = {"initializedFrom": {"job": "pretrain", "claimName": "models", "path": "pre/model", "sha256": "ab"}}
    outcome = resolve_init(job({"fromJob": "pretrain"}, status=pinned), None)  # pretrain was deleted since
    assert outcome.waiting is None and outcome.job.spec.init is not None
    assert outcome.job.spec.init.claim_name == "models" and outcome.pinned and outcome.pinned.sha256 == "ab"


@pytest.mark.parametrize(("found", "kind", "words"), [
    (None, "waiting", "no TrainingJob pretrain in team-a: create it"),
    (source(phase=c.PHASE_RUNNING), "waiting", "pretrain is Running; its model is exported when it succeeds"),
    (source(phase=c.PHASE_FAILED), "unusable", "pretrain failed, so it exported no model"),
    (source(claim=None), "unusable", "has neither spec.checkpoint.claimName nor uri"),
])
def test_a_source_without_a_model_yet_waits_and_one_that_will_never_have_one_fails(
        found: dict[str, Any] | None, kind: str, words: str) -> None:
    waiting_job = job({"fromJob": "pretrain"})
    outcome = resolve_init(waiting_job, found)
    message = getattr(outcome, kind)
    assert message is not None and words in message and message.startswith("spec.init.fromJob (pretrain)")
    plan = init_blocked_plan(waiting_job, outcome, T0)
    assert not plan.create
    cond = next(x for x in plan.status.conditions if x.type == c.COND_INITIALIZED)
    assert cond.status == "False" and words in cond.message
    if kind == "waiting":
        assert plan.status.phase == c.PHASE_PENDING and plan.requeue_after and len(plan.events) == 1
        again = init_blocked_plan(waiting_job.model_copy(update={"status": plan.status}), outcome, T0)
        assert not again.events  # one Event per reason, not one per look
    else:
        assert plan.status.phase == c.PHASE_FAILED and plan.events[0].type == "Warning"


def test_the_status_pins_what_the_trainer_loaded_and_the_condition_clears() -> None:
    waiting_job = job({"fromJob": "pretrain"})
    waited = init_blocked_plan(waiting_job, resolve_init(waiting_job, None), T0).status
    ready = waiting_job.model_copy(update={"status": waited})
    outcome = resolve_init(ready, source())
    sample = parse_progress(
        "ludus_trainer_step{job=\"finetune\",rank=\"0\"} 3\n"
        "ludus_trainer_init_info{job=\"finetune\",rank=\"0\",source=\"/ludus/init/pre/model/weights.pt\","
        "step=\"120\",sha256=\"abc\",reinitialized=\"4.bias,4.weight\"} 1\n")
    assert sample is not None and sample.init == ("/ludus/init/pre/model/weights.pt", 120, "abc",
                                                  ("4.bias", "4.weight"))
    plan = reconcile(outcome.job, [], T0, progress=sample, init=outcome)
    assert plan.create and plan.status.initialized_from == InitializedFrom(
        job="pretrain", claim_name="models", path="pre/model", file="/ludus/init/pre/model/weights.pt", step=120,
        sha256="abc", reinitialized=["4.bias", "4.weight"])
    assert next(x for x in plan.status.conditions if x.type == c.COND_INITIALIZED).status == "True"
    loaded_event = next(e for e in plan.events if e.reason == "ModelLoaded")
    assert "sha256 abc" in loaded_event.message and "re-initialised: 4.bias, 4.weight" in loaded_event.message
    again = ready.model_copy(update={"status": plan.status})
    assert not [e for e in reconcile(again, [], T0, progress=sample, init=resolve_init(again, source())).events
                if e.reason == "ModelLoaded"]  # once


def test_a_claim_init_is_pinned_as_given() -> None:
    outcome = resolve_init(job({"claimName": "models", "path": "exports/v3"}), None)
    assert outcome == InitOutcome(outcome.job, InitializedFrom(claim_name="models", path="exports/v3"))


def test_a_run_shorter_than_the_progress_polls_reports_its_model_in_the_termination_message() -> None:
    worker0 = PodObservation(name="finetune-worker-0", uid="u0", role=c.ROLE_WORKER, index=0, phase="Succeeded",
                             evaluation={"latest": {}, "init": {"source": "/ludus/init/pre/model/weights.pt",
                                                                "step": 120, "sha256": "abc",
                                                                "reinitialized": ["4.weight"]}})
    assert init_report(None, [worker0]) == ("/ludus/init/pre/model/weights.pt", 120, "abc", ("4.weight",))
    assert init_report(("live", 1, "x", ()), [worker0]) == ("live", 1, "x", ())  # the metrics win while it runs
    assert init_report(None, []) is None


def test_a_model_that_does_not_fit_fails_the_job_at_once_with_the_trainers_words() -> None:
    from ludus.trainingjob.policies.failure import classify_failure

    failed = PodObservation(name="finetune-worker-0", uid="u0", role=c.ROLE_WORKER, index=0, phase="Failed",
                            exit_code=3, evaluation={"error": {"reason": "InitFailed", "message": "weights.pt does "
                                                               "not fit the model (strict): 4.weight (10, 16) vs "
                                                               "(7, 16). Set init.strict: false"}})
    failure = classify_failure(make_job("finetune").build(), failed)  # restartPolicy OnFailure
    assert failure is not None and not failure.retryable and failure.reason == "InitFailed"
    assert "init.strict: false" in failure.message


def test_a_declared_reason_that_is_not_one_word_is_not_a_condition_reason() -> None:
    """What a pod reports is hostile input: a reason with spaces or markup becomes TrainerError."""
    from ludus.trainingjob.policies.failure import classify_failure

    for reason, expected in (("CheckpointBucketNotFound", "CheckpointBucketNotFound"),
                             ("no such bucket", c.REASON_TRAINER_ERROR), ("x" * 80, c.REASON_TRAINER_ERROR),
                             ("Failed\nInjected", c.REASON_TRAINER_ERROR)):
        failed = PodObservation(name="w-0", uid="u0", role=c.ROLE_WORKER, index=0, phase="Failed", exit_code=1,
                                evaluation={"error": {"reason": reason, "message": "m"}})
        failure = classify_failure(make_job("w").build(), failed)
        assert failure is not None and not failure.retryable and failure.reason == expected, reason
