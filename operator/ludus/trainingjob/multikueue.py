"""Which worker clusters a MultiKueue job's queue dispatches to, and which of them cannot be reached:
read from Kueue's own objects (LocalQueue -> ClusterQueue -> its AdmissionChecks -> MultiKueueConfig ->
MultiKueueClusters), so a job that waits because its worker clusters are gone says which."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ludus.api import constants as c

__all__ = ["admission_check_names", "cluster_names", "config_name", "unavailable_clusters"]

# Names are Kubernetes object names; what a Kueue object lists is bounded before it is followed.
MAX_FOLLOWED = 16


def _spec(body: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = (body or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def admission_check_names(cluster_queue: Mapping[str, Any] | None) -> list[str]:
    """The AdmissionChecks a ClusterQueue requires (Kueue v1beta2's admissionChecksStrategy)."""
    strategy = _spec(cluster_queue).get("admissionChecksStrategy")
    rules = strategy.get("admissionChecks") if isinstance(strategy, Mapping) else None
    names = [str(r["name"]) for r in rules or [] if isinstance(r, Mapping) and isinstance(r.get("name"), str)]
    return names[:MAX_FOLLOWED]


def config_name(admission_check: Mapping[str, Any] | None) -> str | None:
    """The MultiKueueConfig a MultiKueue AdmissionCheck reads (None: another controller's check)."""
    spec = _spec(admission_check)
    params = spec.get("parameters")
    if spec.get("controllerName") != c.MANAGED_BY_MULTIKUEUE or not isinstance(params, Mapping):
        return None
    name = params.get("name")
    return name if params.get("kind") == "MultiKueueConfig" and isinstance(name, str) else None


def cluster_names(config: Mapping[str, Any] | None) -> list[str]:
    clusters = _spec(config).get("clusters")
    return [str(n) for n in clusters or [] if isinstance(n, str)][:MAX_FOLLOWED]


def unavailable_clusters(clusters: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    """Each worker cluster that is missing or not Active, with Kueue's words (None: all are reachable)."""
    said = []
    for name, body in clusters.items():
        if body is None:
            said.append(f"MultiKueueCluster {name} does not exist")
            continue
        conditions = (body.get("status") or {}).get("conditions") or []
        active = next((x for x in conditions if isinstance(x, Mapping) and x.get("type") == "Active"), None)
        if active is not None and active.get("status") != "True":  # no condition yet: Kueue has not tried
            why = str(active.get("message") or active.get("reason") or "not active")[:512]
            said.append(f"worker cluster {name} is not reachable: {why}")
    return "; ".join(said) if said else None
