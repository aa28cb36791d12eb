"""Start-up, login, probes and shutdown."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from ludus.controller import Controller
from ludus.runtime import credentials
from ludus.runtime.kube import KubeClient
from ludus.runtime.peering import follow as peering_follow
from ludus.runtime.peering import peering_path
from ludus.runtime.settings import tune_kopf
from ludus.settings import OperatorSettings

logger = logging.getLogger("ludus")


@kopf.on.login(id="ludus-login")
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the ServiceAccount; elsewhere: the current kubeconfig (exec plugins included)."""
    return credentials.login(**kwargs)


@kopf.on.startup(id="ludus-startup")
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    tune_kopf(settings)
    config: OperatorSettings = memo.config
    info = login(settings=settings, **kwargs)
    if info is None:
        raise kopf.PermanentError("no credentials: neither a service account nor a kubeconfig was found")
    controller: Controller = memo.controller
    client = KubeClient(info, connections=config.connections, relogin=lambda: login(settings=settings, **kwargs),
                        qps=config.api_qps, burst=config.api_burst)
    controller.start(client, config.namespaces)
    memo.sweep.start(client)
    memo.continuous.start(client)
    if config.peering:
        namespace = None if config.clusterwide else config.namespaces[0]
        path = peering_path(config.peering, namespace)
        controller.active.clear()  # stand by until the peering object says otherwise
        controller.follow(peering_follow(client, path, config.identity, config.priority, controller.active))
    if config.metrics_port:
        start_http_server(config.metrics_port)
    logger.info(
        "ludus operator started: %s, metrics on :%s",
        "all namespaces" if config.clusterwide else ", ".join(config.namespaces),
        config.metrics_port,
    )


@kopf.on.cleanup(id="ludus-cleanup")
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.sweep.stop()
    await memo.continuous.stop()
    await memo.controller.stop()


@kopf.on.probe(id="reconcile-workers")
def reconcile_workers(memo: kopf.Memo, **_: Any) -> int:
    """The liveness endpoint fails when a reconcile worker has died."""
    controller: Controller = memo.controller
    if not controller.healthy or not memo.sweep.healthy or not memo.continuous.healthy:
        raise RuntimeError("a reconcile worker stopped")
    return len(controller.queue)
