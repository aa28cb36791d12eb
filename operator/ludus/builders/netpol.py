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


# Set by the API server on every namespace to its name: a tenant cannot choose it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def namespace_qualified(peer: Mapping[str, Any]) -> bool:
    """A peer only the platform can satisfy: an ipBlock, or pods in namespaces named by the API server's
    own kubernetes.io/metadata.name label (a tenant cannot rename a namespace)."""
    if set(peer) == {"ipBlock"}:
        return True
    selector = peer.get("namespaceSelector")
    if not isinstance(selector, dict):
        return False
    if (selector.get("matchLabels") or {}).get(NAMESPACE_NAME_LABEL):
        return True
    return any(e.get("key") == NAMESPACE_NAME_LABEL and e.get("operator") == "In" and e.get("values")
               for e in selector.get("matchExpressions") or [] if isinstance(e, dict))


def own_namespace_peer(namespace: str) -> Mapping[str, Any] | None:
    """In a pod, the operator reads the trainers' pages from its own namespace: whatever --metrics-from
    says, its polls are never blocked by the policies it makes."""
    if not namespace:
        return None
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}


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
