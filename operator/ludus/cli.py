"""`ludus operator` runs the operator; `ludus crd` prints the generated CRD; every other verb
(`ludus run`, `ludus list`, ...) is the user's command line in `ludus.sdk.cli`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from ludus import __version__
from ludus.settings import DEFAULTS, OperatorSettings

if TYPE_CHECKING:
    from ludus.builders.netpol import PolicySettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ludus", description="Ludus: PyTorch training on Kubernetes")
    parser.add_argument("--version", action="version", version=f"ludus {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    op = sub.add_parser("operator", help="run the operator against the current kubeconfig or service account")
    op.add_argument("-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    op.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    op.add_argument("--metrics-port", type=int, default=DEFAULTS.metrics_port,
                    help="Prometheus metrics port (0 disables)")
    op.add_argument("--health-port", type=int, default=DEFAULTS.health_port,
                    help="liveness endpoint port, serving /healthz")
    op.add_argument("--log-level", default=DEFAULTS.log_level, choices=["debug", "info", "warning", "error"])
    op.add_argument("--workers", type=int, default=DEFAULTS.workers, help="concurrent reconcile workers")
    op.add_argument("--connections", type=int, default=DEFAULTS.connections, help="API server connection pool size")
    op.add_argument("--api-qps", type=float, default=DEFAULTS.api_qps,
                    help="requests per second the operator's own client sends the API server, on average (0: no limit)")
    op.add_argument("--api-burst", type=int, default=DEFAULTS.api_burst, help="requests at once above --api-qps")
    op.add_argument("--gang-scheduling", default=DEFAULTS.gang_scheduling, choices=["none", "volcano", "coscheduling"],
                    help="place each job's workers as one gang: a PodGroup for Volcano or scheduler-plugins' "
                    "coscheduling (Kueue needs no flag: a job's kueue.x-k8s.io/queue-name label asks for it)")
    op.add_argument("--network-policy", default=DEFAULTS.network_policy, choices=["on", "off"],
                    help="give each job a NetworkPolicy admitting only its own pods (and the metrics readers below "
                    "to the metrics port); a job's spec.networkPolicy.enabled overrides it")
    op.add_argument("--pod-security", default=DEFAULTS.pod_security, choices=["privileged", "baseline", "restricted"],
                    help="the Pod Security Standard every pod Ludus builds must meet, checked before it is created: "
                    "a job asking for more (a hostPath volume, root, and at restricted the API token or a writable "
                    "root) fails with InvalidSpec naming the field")
    op.add_argument("--metrics-from", default=DEFAULTS.metrics_from,
                    help="JSON list of NetworkPolicyPeers that may read the trainers' metrics port: the operator's "
                    "own pods and the metrics scrapers (the Helm chart fills it in)")
    op.add_argument("--tracking-uri", default=DEFAULTS.tracking_uri, type=_tracking_uri,
                    help="the MLflow tracking server (http(s)://host:port) of every spec.tracking that names no uri")
    op.add_argument("--peering", default=DEFAULTS.peering,
                    help="KopfPeering name for high availability (default: standalone)")
    op.add_argument("--priority", default=str(DEFAULTS.priority),
                    help="peering priority; replicas need distinct ones: 'auto' derives one from the pod name")
    op.add_argument("--status-batch-seconds", type=float, default=DEFAULTS.status_batch_seconds,
                    help="write pod counts and a Pending job's bookkeeping once its pods were quiet this long "
                         "(at most 30 s late; phase changes and restarts are always written at once); "
                         "0 writes every change")
    op.add_argument("--progress-interval", type=float, default=DEFAULTS.progress_interval,
                    help="seconds between reads of worker 0's progress for each Running job, and at least this "
                         "long between two status writes of a job's progress (jobs with progressDeadlineSeconds "
                         "are read at least three times per deadline)")

    crd = sub.add_parser("crd", help="print the TrainingJob CRD generated from the models")
    crd.add_argument("--output", type=Path, default=None, help="write to this file instead of stdout")
    crd.add_argument("--peering", action="store_true", help="print Kopf's peering CRDs (for --peering) instead")
    crd.add_argument("--sweep", action="store_true", help="print the Sweep CRD instead")
    crd.add_argument("--continuous", action="store_true", help="print the ContinuousTraining CRD instead")
    return parser


def peering_priority(value: str) -> int:
    """Kopf freezes replicas of equal priority; `auto` gives each pod its own, from its hostname."""
    if value == "auto":
        return zlib.crc32(socket.gethostname().encode()) % 1_000_000 + 1
    return int(value)


def network_policy_settings(mode: str, metrics_from: str) -> PolicySettings:
    """--network-policy and --metrics-from, checked: a peer list that is not a JSON list of objects is
    refused at start, not found out when the first job's policy is rejected."""
    from ludus.builders.netpol import PolicySettings, namespace_qualified, own_namespace_peer

    try:
        peers = json.loads(metrics_from)
    except json.JSONDecodeError as err:
        raise SystemExit(f"--metrics-from is not JSON: {err}") from None
    if not isinstance(peers, list) or not all(isinstance(p, dict) and p for p in peers):
        raise SystemExit("--metrics-from must be a JSON list of NetworkPolicyPeer objects, e.g. "
                         '[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}, '
                         '"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]')
    loose = [p for p in peers if not namespace_qualified(p)]
    if loose:
        raise SystemExit(f"--metrics-from: {json.dumps(loose[0])} admits pods a tenant can label in their own "
                         "namespace: give it a namespaceSelector on kubernetes.io/metadata.name (or an ipBlock)")
    own = own_namespace_peer(os.environ.get("POD_NAMESPACE", ""))
    return PolicySettings(enabled=mode == "on", metrics_from=tuple(([own] if own else []) + peers))



def _tracking_uri(text: str) -> str:
    """--tracking-uri: the shape spec.tracking.uri must have (no credentials in it), or empty."""
    import re

    from ludus.api.models import TRACKING_URI_PATTERN

    if text and not re.fullmatch(TRACKING_URI_PATTERN, text):
        raise argparse.ArgumentTypeError(f"not an http(s)://host[:port][/path] without credentials: {text!r}")
    return text.rstrip("/")


def operator_settings(args: argparse.Namespace) -> OperatorSettings:
    """The parsed flags as settings: each flag's dest is the field of the same name."""
    from ludus.runtime.peering import own_identity

    return OperatorSettings(
        namespaces=tuple(args.namespace) if not args.all_namespaces else (),
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        log_level=args.log_level,
        workers=args.workers,
        connections=args.connections,
        api_qps=args.api_qps,
        api_burst=args.api_burst,
        gang_scheduling=args.gang_scheduling,
        network_policy=args.network_policy,
        pod_security=args.pod_security,
        metrics_from=args.metrics_from,
        peering=args.peering,
        priority=peering_priority(args.priority),
        identity=own_identity(),
        progress_interval=args.progress_interval,
        status_batch_seconds=args.status_batch_seconds,
        tracking_uri=args.tracking_uri,
    )


def run_operator(args: argparse.Namespace) -> int:
    import kopf

    import ludus.handlers  # noqa: F401 - registers the handlers
    from ludus.controller import Controller
    from ludus.controller.continuous import ContinuousController
    from ludus.controller.sweep import SweepController
    from ludus.runtime.settings import tune_gc

    config = operator_settings(args)
    kopf.configure(
        debug=args.log_level == "debug", verbose=args.log_level == "info", quiet=args.log_level == "error"
    )
    logging.getLogger().setLevel(args.log_level.upper())
    controller = Controller(
        workers=config.workers, gang=config.gang_scheduling, progress_interval=config.progress_interval,
        status_batch_seconds=config.status_batch_seconds, pod_security=config.pod_security,
        policy=network_policy_settings(config.network_policy, config.metrics_from), tracking_uri=config.tracking_uri)
    continuous = ContinuousController(lambda: controller.now(), controller.active)
    continuous.tracking_uri = config.tracking_uri
    sweep = SweepController(lambda: controller.now(), controller.active)
    sweep.tracking_uri = config.tracking_uri
    memo = kopf.Memo(config=config, controller=controller,
                     sweep=sweep, continuous=continuous)
    tune_gc()
    kopf.run(
        clusterwide=config.clusterwide,
        namespaces=list(config.namespaces),
        standalone=config.peering is None,
        peering_name=config.peering,
        priority=config.priority,
        identity=config.identity,  # type: ignore[arg-type]  # Kopf's Identity is a NewType of str
        liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None,
        memo=memo,
    )
    return 0


def write_crd(args: argparse.Namespace) -> int:
    from ludus.api.crd import (
        render_continuous_crd_yaml,
        render_crd_yaml,
        render_peering_crds_yaml,
        render_sweep_crd_yaml,
    )

    text = (render_peering_crds_yaml() if args.peering else render_sweep_crd_yaml() if args.sweep
            else render_continuous_crd_yaml() if args.continuous else render_crd_yaml())
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


OPERATOR_COMMANDS = frozenset({"operator", "crd"})


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] not in OPERATOR_COMMANDS:
        from ludus.sdk.cli import main as user_main  # typer, rich and kubernetes: never in the operator

        return user_main(words)
    args = _parser().parse_args(words)
    if args.command == "operator":
        return run_operator(args)
    return write_crd(args)


if __name__ == "__main__":
    raise SystemExit(main())
