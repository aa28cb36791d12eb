"""Two operator versions on the same stored objects: an upgrade and a rollback never fail a running job.

`tests/compat/previous_models.py` is the previous release's TrainingJob models, verbatim.
"""

from __future__ import annotations

from typing import Any

from ludus.api import constants as c
from ludus.api.models import Evaluation, MetricValue, TrainingJob, TrainingJobStatus, parse_job, read_status
from ludus.trainingjob.reconcile import invalid_spec_plan, reconcile
from tests.compat import previous_models
from tests.factories import T0, make_job, running


def _stored(job: TrainingJob, status: TrainingJobStatus) -> dict[str, Any]:
    body = job.model_dump(by_alias=True, mode="json", exclude_none=True)
    body["status"] = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    return body


def test_what_this_version_writes_the_previous_one_reads_and_the_reverse() -> None:
    job = make_job().workers(2).build()
    status = reconcile(job, running("digits", 2), T0, refused="Pod digits-worker-1: exceeded quota").status
    # A field this release added: the baseline of the model the job started from.
    status = status.model_copy(update={"evaluation": Evaluation(baseline={"accuracy": MetricValue(value=0.8)})})
    stored = _stored(job, status)
    assert stored["status"]["evaluation"]["baseline"]
    previous = previous_models.TrainingJob.model_validate(stored)  # a rollback reads it
    assert previous.status.phase == status.phase and previous.status.restarts == status.restarts
    back = parse_job(previous.model_dump(by_alias=True, mode="json", exclude_none=True))  # and upgrades again
    assert back.status.phase == status.phase and back.spec == job.spec


def test_unknown_status_fields_at_any_depth_are_ignored() -> None:
    """What a newer version may have written: the job parses, nothing this version knows is lost."""
    body = make_job().workers(1).body()
    body["status"] = {
        "phase": "Running", "restarts": 2, "startTime": "2026-01-01T00:00:00Z", "futureField": {"a": 1},
        "conditions": [{"type": "Running", "status": "True", "reason": "R", "message": "", "observedBy": "v9"}],
        "goodput": {"fraction": 0.5, "badput": {"queued": {"seconds": 1, "fraction": 0.1, "why": "x"}}, "new": 1},
        "evaluation": {"latest": {"accuracy": {"value": 0.9, "step": 5, "note": "x"}}},
        "lastRestart": {"reason": "WorkerFailed", "time": "2026-01-01T00:00:00Z", "node": "n1"},
    }
    job = parse_job(body)
    assert job.status.restarts == 2 and job.status.phase == "Running" and job.status.goodput is not None
    assert job.status.evaluation is not None and job.status.evaluation.latest["accuracy"].value == 0.9


def test_a_status_field_in_a_shape_this_version_does_not_know_is_left_out_alone() -> None:
    raw = {"phase": "Running", "restarts": 3, "startTime": "2026-01-01T00:00:00Z", "progress": "halfway",
           "goodput": {"fraction": "most"}}
    status = read_status(raw, TrainingJobStatus)
    assert (status.phase, status.restarts, status.progress, status.goodput) == ("Running", 3, None, None)
    body = make_job().workers(1).body()
    body["status"] = raw
    assert parse_job(body).status.restarts == 3


def test_a_started_job_whose_spec_no_longer_validates_keeps_running_with_a_condition() -> None:
    started = TrainingJobStatus(phase="Running", start_time=T0, restarts=1)
    plan = invalid_spec_plan(started, 2, "spec.replicas: Input should be less than or equal to 1024", T0)
    assert plan.status.phase == "Running" and plan.delete == [] and plan.status.restarts == 1
    cond = next(x for x in plan.status.conditions if x.type == c.COND_SPEC_VALID)
    assert (cond.status, cond.reason) == ("False", c.REASON_INVALID_SPEC)
    assert [e.reason for e in plan.events] == [c.REASON_INVALID_SPEC]
    again = invalid_spec_plan(plan.status, 2, cond.message, T0)
    assert again.events == []  # said once
    never_started = invalid_spec_plan(TrainingJobStatus(), 1, "spec.image: missing", T0)
    assert never_started.status.phase == "Failed"
    assert invalid_spec_plan(never_started.status, 1, "spec.image: missing", T0).events == []
