"""A child TrainingJob, built and read back the one way both owners use."""

from __future__ import annotations

from typing import Any

from ludus.api import constants as c
from ludus.api.models import Objective, ObjectMeta
from ludus.trainingjob.child import (
    annotation,
    child_job,
    latest_metrics,
    number_label,
    phase_of,
    read_children,
    reported_objective,
    template_spec,
)
from tests.factories import make_job

OWNER = ObjectMeta(name="search", namespace="team-a", uid="0000-1111")


def test_a_child_is_labelled_as_ludus_managed_and_controlled_by_its_owner_uid() -> None:
    job = child_job(c.SWEEP_KIND, OWNER, "search-3", {"replicas": 1}, labels={c.LABEL_TRIAL: "3"},
                    annotations={"a": "b"})
    assert job == {
        "apiVersion": c.API_VERSION, "kind": c.KIND,
        "metadata": {
            "name": "search-3", "namespace": "team-a",
            "labels": {c.LABEL_TRIAL: "3", c.LABEL_MANAGED_BY: c.MANAGED_BY},
            "annotations": {"a": "b"},
            "ownerReferences": [{"apiVersion": c.API_VERSION, "kind": c.SWEEP_KIND, "name": "search",
                                 "uid": "0000-1111", "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {"replicas": 1},
    }


def test_the_template_becomes_a_spec_with_the_owners_objective_and_no_ttl() -> None:
    template = make_job().build().spec.model_copy(update={"ttl_seconds_after_finished": 60})
    spec = template_spec(template, Objective(metric="accuracy", goal="maximize"), suspend=True)
    assert spec["objective"] == {"metric": "accuracy", "goal": "maximize"}
    assert spec["suspend"] is True and "ttlSecondsAfterFinished" not in spec


def _body(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "search-7", "namespace": "team-a", "labels": {c.LABEL_RUN: "7", c.LABEL_TRIAL: "x"},
                         "annotations": {"k": "v"}},
            "spec": {"image": "ludus-trainer:latest"}, "status": status}


def test_a_child_is_read_back_as_a_model() -> None:
    [job] = read_children([_body({"phase": "Succeeded", "evaluation": {
        "latest": {"accuracy": {"value": 0.9, "step": 40}},
        "objective": {"metric": "accuracy", "goal": "maximize", "value": 0.9}}})])
    assert number_label(job, c.LABEL_RUN) == 7 and number_label(job, c.LABEL_TRIAL) is None
    assert annotation(job, "k") == "v" and annotation(job, "missing") is None
    assert phase_of(job) == "Succeeded"
    assert latest_metrics(job) == {"accuracy": (0.9, 40)}
    assert reported_objective(job) == Objective(metric="accuracy", goal="maximize")


def test_a_child_whose_status_does_not_parse_is_read_without_it_and_one_whose_spec_does_not_is_left_out() -> None:
    odd_status = _body({"phase": "Exploded", "evaluation": {"latest": {"bad": {"value": "high"}}}})
    odd_spec = {**_body({}), "spec": {"replicas": "many"}}
    [job] = read_children([odd_status, odd_spec])
    assert phase_of(job) == c.PHASE_PENDING and latest_metrics(job) == {} and reported_objective(job) is None


def test_a_version_read_in_an_earlier_pass_is_not_parsed_again() -> None:
    stored = {**_body({"phase": "Running"}), "metadata": {**_body({})["metadata"], "uid": "u1", "resourceVersion": "5"}}
    known: dict[tuple[str, str], Any] = {}
    [first] = read_children([stored], known)
    assert known == {("u1", "5"): first}
    [again] = read_children([stored], known)
    assert again is first  # the same object: not parsed again
    moved = {**stored, "metadata": {**stored["metadata"], "resourceVersion": "6"}, "status": {"phase": "Succeeded"}}
    [fresh] = read_children([moved], known)
    assert phase_of(fresh) == "Succeeded" and list(known) == [("u1", "6")]  # the old version is dropped
