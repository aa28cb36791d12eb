"""Where the dev cluster's files live and the pinned binaries it runs (cached by version)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def versions() -> dict[str, str]:
    out = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("LUDUS_CACHE_DIR", Path.home() / ".cache" / "ludus"))


def binary(name: str) -> Path:
    """Path of a pinned binary; builds the cache first if it is missing."""
    v = versions()
    folder = {
        "etcd": f"etcd-{v['ETCD_VERSION']}",
        "kwok": f"kwok-{v['KWOK_VERSION']}-p{v['KWOK_PATCHES']}",
        "helm": f"helm-{v['HELM_VERSION']}",
        "coredns": f"coredns-{v['COREDNS_VERSION']}",
        "local-path-provisioner": f"local-path-provisioner-{v['LOCAL_PATH_PROVISIONER_VERSION']}",
        "kube-scheduler-plugins": f"scheduler-plugins-{v['SCHEDULER_PLUGINS_VERSION']}",
        "podgroups-crd.yaml": f"scheduler-plugins-{v['SCHEDULER_PLUGINS_VERSION']}",
        "kube-router": f"kube-router-{v['KUBE_ROUTER_VERSION']}-d{v['KUBE_ROUTER_DEPS']}-p{v['KUBE_ROUTER_PATCHES']}",
        "kueue": f"kueue-{v['KUEUE_VERSION']}-p{v['KUEUE_PATCHES']}",
        "crds": f"kueue-{v['KUEUE_VERSION']}-p{v['KUEUE_PATCHES']}",
        "webhooks.yaml": f"kueue-{v['KUEUE_VERSION']}-p{v['KUEUE_PATCHES']}",
        "weed": f"seaweedfs-{v['SEAWEEDFS_VERSION']}",
        "venv/bin/python": f"mlflow-{v['MLFLOW_VERSION']}",
    }.get(name, f"kubernetes-{v['KUBERNETES_VERSION']}-2")
    path = cache_dir() / "bin" / folder / name
    if not path.exists():
        subprocess.run([str(HERE / "build.sh")], check=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
