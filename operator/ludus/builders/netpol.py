"""The NetworkPolicy of a job: torch.distributed's rendezvous store and collectives accept any
connection (the c10d store has no authentication), so only the job's own pods may reach them.

Ingress to the job's pods comes from the job's pods (every port: the store, gloo's and NCCL's
ephemeral ports) and, to the trainer's metrics port only, from the peers the operator is told (itself
and the metrics scrapers). Egress stays open. No spec can produce a policy that cuts the job off from
itself, or one that opens the pods to everyone: an empty peer list adds no rule at all (a rule with
no `from` would admit every source).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ludus.api import constants as c
from ludus.api import names
from ludus.api.models import TrainingJob
from ludus.builders import labels


@dataclass(frozen=True)
class PolicySettings:
    """The operator's side: its default for jobs that do not say, and who may read the metrics."""

    enabled: bool = False
    metrics_from: tuple[Mapping[str, Any], ...] = ()


# No policies unless asked: what pure callers (tests, benchmarks) get by default.
NO_POLICY = PolicySettings()


def policy_wanted(job: TrainingJob, settings: PolicySettings) -> bool:
    own = job.spec.network_policy.enabled
    return settings.enabled if own is None else own


def build_network_policy(job: TrainingJob, settings: PolicySettings) -> dict[str, Any]:
    own_pods = {"matchLabels": labels.job_selector(job)}
    ingress: list[dict[str, Any]] = [{"from": [{"podSelector": own_pods}]}]
    peers = [dict(peer) for peer in settings.metrics_from if peer]
    if peers:
        ingress.append({"from": peers, "ports": [{"protocol": "TCP", "port": c.TRAINER_METRICS_PORT}]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": labels.child_metadata(job, names.service_name(job), labels.job_selector(job)),
        "spec": {"podSelector": own_pods, "policyTypes": ["Ingress"], "ingress": ingress},
    }
