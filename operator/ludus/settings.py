"""Every setting of `ludus operator`: one default each, under one name from its flag to its use.

The flag `--progress-interval` is the field `progress_interval`, and the controller, the status
batcher and the poller take it under that name. Pure (no Kopf, no I/O), so any layer may read a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class OperatorSettings:
    """What `ludus operator` was started with; the defaults are the flags' defaults."""

    namespaces: tuple[str, ...] = ()  # empty: every namespace
    metrics_port: int = 8080  # the operator's own Prometheus page; 0 disables
    health_port: int = 8081  # /healthz for the liveness probe; 0 disables
    log_level: str = "info"
    workers: int = 16  # concurrent reconcile workers
    connections: int = 64  # the API client's connection pool
    api_qps: float = 200.0  # requests per second to the API server, on average (0: unlimited)
    api_burst: int = 400  # requests at once above that
    gang_scheduling: str = "none"  # none, volcano or coscheduling
    network_policy: str = "on"  # a NetworkPolicy per job unless the job's spec says otherwise
    pod_security: str = "restricted"  # privileged, baseline or restricted: what the pods Ludus builds may ask for
    metrics_from: str = "[]"  # JSON NetworkPolicyPeers that may read the trainers' metrics port
    peering: str | None = None  # KopfPeering name for high availability; None: standalone
    priority: int = 0  # peering priority
    identity: str = ""  # peering identity (the pod's name)
    progress_interval: float = 30.0  # seconds between reads of worker 0's progress, and between its writes
    status_batch_seconds: float = 5.0  # a quiet pod count is written after this long; 0 writes every change
    tracking_uri: str = ""  # the MLflow tracking server of a spec.tracking that names none ("": none)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


DEFAULTS: Final = OperatorSettings()
