"""Every name the operator gives a child object.

Names are deterministic so that "does it exist?" is a lookup by name and a
handler run twice can never create a second copy.
"""

from __future__ import annotations

from ludus.api.models import TrainingJob


def service_name(job: TrainingJob) -> str:
    """The headless Service; also the DNS subdomain of every pod of the job."""
    return job.metadata.name


def worker_pod_name(job: TrainingJob, index: int) -> str:
    return f"{job.metadata.name}-worker-{index}"


def rendezvous_pod_name(job: TrainingJob) -> str:
    return f"{job.metadata.name}-rdzv"


def pod_fqdn(job: TrainingJob, pod_name: str) -> str:
    """A pod's stable DNS name through the headless Service (no cluster domain assumed)."""
    return f"{pod_name}.{service_name(job)}.{job.metadata.namespace}.svc"
