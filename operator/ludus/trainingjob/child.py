"""A TrainingJob another resource owns (a Sweep's trial, a ContinuousTraining's run): built here from the
owner's template, and read back here. Sweep and ContinuousTraining build and read children only
through these functions, with the one objective rule of `trainingjob.objective`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ludus.api import constants as c
from ludus.api.models import Objective, ObjectMeta, TrainingJobSpec
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


def number_label(job: Mapping[str, Any], label: str) -> int | None:
    """The child's number under `label` (a trial's or a run's), if it has a well-formed one."""
    labels = (job.get("metadata") or {}).get("labels") or {}
    try:
        return int(labels[label])
    except (KeyError, ValueError, TypeError):
        return None


def annotation(job: Mapping[str, Any], key: str) -> str | None:
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None


def phase_of(job: Mapping[str, Any]) -> str:
    return str((job.get("status") or {}).get("phase") or c.PHASE_PENDING)


def latest_metrics(job: Mapping[str, Any]) -> dict[str, tuple[float, int]]:
    """Each evaluation metric's latest value and the step it was measured at."""
    latest = (((job.get("status") or {}).get("evaluation") or {}).get("latest")) or {}
    out: dict[str, tuple[float, int]] = {}
    for metric, entry in latest.items():
        if isinstance(entry, Mapping) and isinstance(entry.get("value"), int | float):
            out[str(metric)] = (float(entry["value"]), int(entry.get("step") or 0))
    return out


def reported_objective(job: Mapping[str, Any]) -> Objective | None:
    """The objective the child's status resolved (the workload's own when nothing was declared)."""
    return parse_objective(((job.get("status") or {}).get("evaluation") or {}).get("objective"))
