"""Gang scheduling: a PodGroup for Volcano or the scheduler-plugins coscheduling plugin, so that a
job's workers are placed all together or not at all. (Kueue is not a gang scheduler: it admits a job's
quota all at once through the job's Workload, `ludus.builders.workload`, and combines with either.)

Which one is an operator setting (`ludus operator --gang-scheduling ...`): a cluster runs one such
scheduler, and it is the platform team's choice, not each job's.
"""

from __future__ import annotations

from typing import Any, Final

from ludus.api import names
from ludus.api.models import TrainingJob
from ludus.builders import labels

GANG_NONE: Final = "none"
GANG_VOLCANO: Final = "volcano"
GANG_COSCHEDULING: Final = "coscheduling"
GANG_CHOICES: Final = (GANG_NONE, GANG_VOLCANO, GANG_COSCHEDULING)

_POD_GROUP_API: Final = {
    GANG_VOLCANO: "scheduling.volcano.sh/v1beta1",
    GANG_COSCHEDULING: "scheduling.x-k8s.io/v1alpha1",
}
_SCHEDULER: Final = {GANG_VOLCANO: "volcano", GANG_COSCHEDULING: "scheduler-plugins-scheduler"}


def effective_gang(job: TrainingJob, operator_gang: str) -> str:
    """The gang scheduler this job's pods use: the operator's, unless the job opts out
    (spec.scheduling.gang: false)."""
    return GANG_NONE if job.spec.scheduling.gang is False else operator_gang


def gang_unavailable(job: TrainingJob, operator_gang: str) -> str | None:
    """Why a job that asks for a gang runs without one (the operator has no gang scheduler), or None."""
    if job.spec.scheduling.gang and operator_gang == GANG_NONE:
        return ("spec.scheduling.gang is true, but this operator runs without a gang scheduler "
                "(--gang-scheduling none; Helm: gangScheduling): the pods are placed one by one")
    return None


def build_pod_group(job: TrainingJob, gang: str) -> dict[str, Any] | None:
    """The PodGroup for the job's pods: the fewest workers that may train, and the rendezvous store
    they cannot start without, are placed together or not at all. Applied again on a scale."""
    api = _POD_GROUP_API.get(gang)
    if api is None:
        return None
    return {
        "apiVersion": api,
        "kind": "PodGroup",
        "metadata": labels.child_metadata(job, names.service_name(job), labels.job_selector(job)),
        "spec": {"minMember": job.spec.min_replicas + 1},
    }


def gang_fields(job: TrainingJob, gang: str) -> tuple[dict[str, str], dict[str, str], str | None]:
    """(labels, annotations, schedulerName) a pod of the job carries to join its gang (workers and
    the rendezvous store alike)."""
    group = names.service_name(job)
    if gang == GANG_VOLCANO:
        return {}, {"scheduling.k8s.io/group-name": group}, _SCHEDULER[gang]
    if gang == GANG_COSCHEDULING:
        return {"scheduling.x-k8s.io/pod-group": group}, {}, _SCHEDULER[gang]
    return {}, {}, None


def worker_gang_fields(job: TrainingJob, gang: str) -> tuple[dict[str, str], dict[str, str], str | None]:
    """(labels, annotations, schedulerName) a worker pod carries to join its gang."""
    return gang_fields(job, gang)
