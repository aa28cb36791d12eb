"""The headless Service that gives every pod of a job a stable DNS name."""

from __future__ import annotations

from typing import Any

from ludus.api import constants as c
from ludus.api import names
from ludus.api.models import TrainingJob
from ludus.builders import labels


def build_headless_service(job: TrainingJob) -> dict[str, Any]:
    """Headless and publishing not-ready addresses: torchrun resolves peers before they are Ready."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": labels.child_metadata(job, names.service_name(job), labels.job_selector(job)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": labels.job_selector(job),
            "ports": [
                {"name": "rendezvous", "port": c.RENDEZVOUS_PORT, "targetPort": c.RENDEZVOUS_PORT},
                {"name": "metrics", "port": c.TRAINER_METRICS_PORT, "targetPort": c.TRAINER_METRICS_PORT},
            ],
        },
    }
