"""The one label set every child carries, and the selectors built from it."""

from __future__ import annotations

from typing import Any

from ludus.api import constants as c
from ludus.api.models import ObjectMeta, TrainingJob


def job_selector(job: TrainingJob) -> dict[str, str]:
    """Selects every pod of the job (workers and the rendezvous store)."""
    return {c.LABEL_JOB_NAME: job.metadata.name}


def worker_selector(job: TrainingJob) -> dict[str, str]:
    return {**job_selector(job), c.LABEL_ROLE: c.ROLE_WORKER}


def selector_string(labels: dict[str, str]) -> str:
    """The `a=b,c=d` form the scale subresource and kubectl expect."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def child_labels(job: TrainingJob, role: str, index: int | None = None) -> dict[str, str]:
    labels = {**job_selector(job), c.LABEL_ROLE: role, c.LABEL_MANAGED_BY: c.MANAGED_BY}
    if index is not None:
        labels[c.LABEL_REPLICA_INDEX] = str(index)
    return labels


def controller_reference(kind: str, owner: ObjectMeta) -> dict[str, Any]:
    """Makes a Ludus resource the controller of a child, so garbage collection removes it with the owner."""
    return {
        "apiVersion": c.API_VERSION,
        "kind": kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_reference(job: TrainingJob) -> dict[str, Any]:
    return controller_reference(c.KIND, job.metadata)


def child_metadata(job: TrainingJob, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": job.metadata.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(job)],
    }
