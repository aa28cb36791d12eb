"""Credentials for the API server, including those that expire.

Kopf's own kubeconfig login reads static fields only. Clusters whose users
authenticate through an exec plugin (EKS, GKE, AKS, OIDC helpers such as
kubelogin) hand out short-lived tokens: here the plugin is run the way kubectl
runs it (client.authentication.k8s.io ExecCredential), and the token's expiry
travels in `ConnectionInfo.expiration` so both Kopf and `ludus.runtime.kube` log in
again before or when it lapses (on a 401).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import kopf
import yaml

EXEC_TIMEOUT_SECONDS = 60.0


def _kubeconfig_paths() -> list[Path]:
    raw = os.environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in raw.split(os.pathsep) if p]
    if not paths:
        default = Path("~/.kube/config").expanduser()
        paths = [default] if default.exists() else []
    return [p for p in paths if p.exists()]


def current_user(paths: list[Path] | None = None) -> Mapping[str, Any]:
    """The current context's user entry, merged across KUBECONFIG files as kubectl does (first wins)."""
    users: dict[str, Any] = {}
    contexts: dict[str, Any] = {}
    current = None
    for path in paths if paths is not None else _kubeconfig_paths():
        config = yaml.safe_load(path.read_text()) or {}
        current = current or config.get("current-context")
        for item in config.get("contexts") or []:
            contexts.setdefault(item["name"], item.get("context") or {})
        for item in config.get("users") or []:
            users.setdefault(item["name"], item.get("user") or {})
    context = contexts.get(current or "", {})
    user: Mapping[str, Any] = users.get(context.get("user", ""), {})
    return user


def parse_exec_credential(output: str) -> dict[str, Any]:
    """An ExecCredential's status as ConnectionInfo fields (token or client certificate, and expiry)."""
    status = (json.loads(output) or {}).get("status") or {}
    fields: dict[str, Any] = {}
    if status.get("token"):
        fields["token"] = status["token"]
    if status.get("clientCertificateData"):
        fields["certificate_data"] = status["clientCertificateData"].encode()
        fields["private_key_data"] = status.get("clientKeyData", "").encode()
    if status.get("expirationTimestamp"):
        fields["expiration"] = datetime.fromisoformat(str(status["expirationTimestamp"]).replace("Z", "+00:00"))
    if not fields.get("token") and not fields.get("certificate_data"):
        raise ValueError("the exec credential plugin returned neither a token nor a client certificate")
    return fields


def run_exec_plugin(spec: Mapping[str, Any], server: str) -> dict[str, Any]:
    """Run a kubeconfig `user.exec` plugin and return what it grants."""
    api_version = spec.get("apiVersion", "client.authentication.k8s.io/v1")
    info = {
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": False, "cluster": {"server": server}},
    }
    env = {**os.environ, "KUBERNETES_EXEC_INFO": json.dumps(info)}
    env.update({e["name"]: e["value"] for e in spec.get("env") or []})
    done = subprocess.run(
        [spec["command"], *(spec.get("args") or [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=EXEC_TIMEOUT_SECONDS,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"exec credential plugin {spec['command']} exited {done.returncode}: {done.stderr[-500:]}")
    return parse_exec_credential(done.stdout)


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the ServiceAccount; elsewhere: the current kubeconfig, exec plugins included."""
    info = kopf.login_with_service_account(**kwargs)
    if info is not None:
        return info
    info = kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    spec = current_user().get("exec")
    if not spec:
        return info
    granted = run_exec_plugin(spec, str(info.server))
    fields = {
        name: getattr(info, name)
        for name in (
            "server", "priority", "default_namespace", "ca_path", "ca_data", "insecure", "scheme", "proxy_url",
        )
    }
    return kopf.ConnectionInfo(**fields, **granted)
