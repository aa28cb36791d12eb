"""A TrainingJob another resource owns (a Sweep's trial, a ContinuousTraining's run): built here from the
owner's template, and read back here. Sweep and ContinuousTraining build and read children only
through these functions, with the one objective rule of `trainingjob.objective`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.models import Condition, Objective, ObjectMeta, TrainingJob, TrainingJobSpec
from ludus.builders.labels import controller_reference
from ludus.trainingjob.objective import parse_objective


def template_spec(template: TrainingJobSpec, objective: Objective | None, suspend: bool) -> dict[str, Any]:
    """The owner's template as a child's spec: the objective the owner compares by, and no TTL (a child
    is its owner's record: it goes with the owner or by the owner's history limits)."""
    spec: dict[str, Any] = template.model_dump(by_alias=True, exclude_none=True, mode="json")
    if objective is not None:
        spec["objective"] = objective.model_dump(by_alias=True, mode="json")
    spec.pop("ttlSecondsAfterFinished", None)
    spec["suspend"] = suspend
    return spec


def child_job(owner_kind: str, owner: ObjectMeta, name: str, spec: dict[str, Any], labels: Mapping[str, str],
              annotations: Mapping[str, str]) -> dict[str, Any]:
    """The child TrainingJob: in the owner's namespace, labelled as Ludus-managed, controlled by the owner
    (its UID), so garbage collection removes it with the owner."""
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {**labels, c.LABEL_MANAGED_BY: c.MANAGED_BY},
            "annotations": dict(annotations),
            "ownerReferences": [controller_reference(owner_kind, owner)],
        },
        "spec": spec,
    }


Version = tuple[str, str]  # (uid, resourceVersion): a stored object's version


def controller_uid(body: Mapping[str, Any]) -> str:
    """The UID of the object's controller (its ownerReference with controller: true), or ''."""
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return next((str(ref.get("uid", "")) for ref in refs if isinstance(ref, Mapping) and ref.get("controller")), "")


def read_children(bodies: Iterable[Mapping[str, Any]], known: dict[Version, TrainingJob] | None = None,
                  owner_uid: str | None = None) -> list[TrainingJob]:
    """The owner's children as TrainingJob models. A child whose status does not parse (edited by hand)
    is read without it; one whose spec does not parse is left out (it would fail its own reconcile
    too). With `owner_uid`, only the jobs the owner controls count: anyone may label a TrainingJob as
    trial or run 99 of a resource, but not make that resource its controller. With `known`, a version
    read in an earlier pass is not parsed again, and `known` is left holding exactly the versions of
    this pass (a sweep's pass reads up to maxTrials children)."""
    children, seen = [], {}
    for body in bodies:
        if owner_uid is not None and controller_uid(body) != owner_uid:
            continue
        meta = body.get("metadata") or {}
        version = (str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""))
        job = known.get(version) if known is not None and all(version) else None
        if job is None:
            job = _read_child(body)
        if job is not None:
            children.append(job)
            if all(version):
                seen[version] = job
    if known is not None:
        known.clear()
        known.update(seen)
    return children


def _read_child(body: Mapping[str, Any]) -> TrainingJob | None:
    try:
        return TrainingJob.model_validate(body)
    except ValidationError:
        try:
            return TrainingJob.model_validate({k: v for k, v in body.items() if k != "status"})
        except ValidationError:
            return None


def number_label(job: TrainingJob, label: str) -> int | None:
    """The child's number under `label` (a trial's or a run's), if it has a well-formed one."""
    try:
        return int(job.metadata.labels[label])
    except (KeyError, ValueError):
        return None


def annotation(job: TrainingJob, key: str) -> str | None:
    return job.metadata.annotations.get(key)


def phase_of(job: TrainingJob) -> str:
    return job.status.phase or c.PHASE_PENDING


def latest_metrics(job: TrainingJob) -> dict[str, tuple[float, int]]:
    """Each evaluation metric's latest value and the step it was measured at."""
    evaluation = job.status.evaluation
    return {m: (v.value, v.step) for m, v in evaluation.latest.items()} if evaluation else {}


def baseline_metrics(job: TrainingJob) -> dict[str, float]:
    """The model the child started from, evaluated on the child's own data before it trained."""
    evaluation = job.status.evaluation
    return {m: v.value for m, v in evaluation.baseline.items()} if evaluation else {}


def reported_objective(job: TrainingJob) -> Objective | None:
    """The objective the child's status resolved (the workload's own when nothing was declared)."""
    evaluation = job.status.evaluation
    if evaluation is None or evaluation.objective is None:
        return None
    return parse_objective({"metric": evaluation.objective.metric, "goal": evaluation.objective.goal})


def unschedulable(job: TrainingJob) -> Condition | None:
    """The child's PodsScheduled condition while one of its pods cannot be placed."""
    cond = next((x for x in job.status.conditions if x.type == c.COND_SCHEDULED), None)
    return cond if cond is not None and cond.status == "False" else None
