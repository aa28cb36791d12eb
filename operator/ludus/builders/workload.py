"""Kueue's Workload for a TrainingJob: what Kueue needs to decide whether the job fits its quota.

TrainingJobs are a framework Kueue does not know, so Ludus does for them what Kueue's own job
integrations do: one Workload per job, owned by it, with a pod set per role (the rendezvous store and
the workers) whose templates are the pods Ludus will create. Kueue admits it (or not); Ludus starts
and stops the job to match (`ludus.trainingjob.queueing`).
"""

from __future__ import annotations

from typing import Any, Final

from ludus.api import constants as c
from ludus.api.models import TrainingJob
from ludus.builders import labels, pods

POD_SET_STORE: Final = "store"
POD_SET_WORKERS: Final = "workers"
LABEL_JOB_UID: Final = "kueue.x-k8s.io/job-uid"


def workload_name(job: TrainingJob) -> str:
    """Kueue's own scheme (kind, name, a short suffix), so a job recreated under the same name never
    meets the Workload of the one before it while that one is still being collected."""
    return f"trainingjob-{job.metadata.name}-{job.metadata.uid[:5]}"


def _template(pod: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": pod["metadata"].get("labels", {})}, "spec": pod["spec"]}


def pod_set_counts(job: TrainingJob) -> dict[str, int]:
    """How many pods of each pod set the job runs at once: what Kueue counts against the quota."""
    return {POD_SET_STORE: 1, POD_SET_WORKERS: job.spec.replicas}


def build_pod_sets(job: TrainingJob, gang: str = "none") -> list[dict[str, Any]]:
    """The Workload's pod sets: one per role, with the pods Ludus will create as templates."""
    counts = pod_set_counts(job)
    return [
        {"name": POD_SET_STORE, "count": counts[POD_SET_STORE],
         "template": _template(pods.build_rendezvous_pod(job, gang))},
        {"name": POD_SET_WORKERS, "count": counts[POD_SET_WORKERS],
         "template": _template(pods.build_worker_pod(job, 0, gang))},
    ]


def build_workload(job: TrainingJob, gang: str = "none") -> dict[str, Any]:
    """The Workload that asks `job`'s LocalQueue for room for every pod the job runs at once. Its
    numeric priority, which Kueue preempts by, is the PriorityClass's value: read when it is created."""
    spec: dict[str, Any] = {
        "queueName": job.metadata.labels[c.LABEL_KUEUE_QUEUE],
        "podSets": build_pod_sets(job, gang),
    }
    priority_class = job.spec.template.priority_class_name
    if priority_class:
        spec["priorityClassRef"] = {"group": "scheduling.k8s.io", "kind": "PriorityClass", "name": priority_class}
    selector = labels.job_selector(job) | {LABEL_JOB_UID: job.metadata.uid}
    return {
        "apiVersion": c.KUEUE_WORKLOAD_API,
        "kind": c.KUEUE_WORKLOAD_KIND,
        "metadata": labels.child_metadata(job, workload_name(job), selector),
        "spec": spec,
    }
