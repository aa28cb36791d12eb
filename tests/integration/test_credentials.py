"""Expiring credentials on the real API server: a 401 makes the client log in again and retry.

The kubeconfig's user is an exec plugin, as on EKS/GKE/AKS or with an OIDC helper.
Its first answer is a token the API server refuses (one that expired); its next is
a real ServiceAccount token. The operator's client must survive the first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import kopf
import pytest
import yaml

from devcluster.kubectl import Kubectl
from ludus.runtime import credentials, metrics
from ludus.runtime.kube import ApiError, KubeClient, pod_path
from tests.fixtures import TestCluster

PLUGIN = """#!/bin/sh
# Count the calls; the first gets a token the API server refuses.
n=$(cat "{calls}" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "{calls}"
if [ "$n" -eq 1 ]; then token=expired-token; else token=$(cat "{token}"); fi
printf '{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"%s"}}}}' "$token"
"""


def _reader(k: Kubectl, namespace: str) -> str:
    """A ServiceAccount that may list pods in the namespace, and a token for it."""
    k.run("create", "serviceaccount", "reader")
    k.run("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    k.run("create", "rolebinding", "pod-reader", "--role=pod-reader", f"--serviceaccount={namespace}:reader")
    return k.run("create", "token", "reader", "--duration=10m").stdout.strip()


def test_a_401_runs_the_exec_plugin_again_and_the_request_goes_through(
    cluster: TestCluster, k: Kubectl, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text(_reader(k, namespace))
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(PLUGIN.format(calls=tmp_path / "calls", token=tmp_path / "token"))
    plugin.chmod(0o755)
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "exec", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin), "interactionMode": "Never",
        }}}],
        "contexts": [{"name": "exec", "context": {"cluster": admin["clusters"][0]["name"], "user": "exec"}}],
        "current-context": "exec",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))

    settings = kopf.OperatorSettings()

    async def scenario() -> dict:
        info = credentials.login(settings=settings)
        assert info is not None and info.token == "expired-token"
        client = KubeClient(info, relogin=lambda: credentials.login(settings=settings))
        try:
            return await client.request("GET", pod_path(namespace))
        finally:
            await client.close()

    before = metrics.CREDENTIAL_REFRESHES._value.get()
    listing = asyncio.run(scenario())
    assert listing["kind"] == "PodList"
    assert (tmp_path / "calls").read_text().strip() == "2"  # logged in, refused, logged in again
    assert metrics.CREDENTIAL_REFRESHES._value.get() == before + 1


def test_without_a_way_to_log_in_again_the_401_reaches_the_caller(
    cluster: TestCluster, namespace: str
) -> None:
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    cluster_entry = admin["clusters"][0]["cluster"]
    info = kopf.ConnectionInfo(server=cluster_entry["server"], ca_path=cluster_entry["certificate-authority"],
                               token="expired-token")

    async def scenario() -> None:
        client = KubeClient(info)
        try:
            await client.request("GET", pod_path(namespace))
        finally:
            await client.close()

    with pytest.raises(ApiError) as refused:
        asyncio.run(scenario())
    assert refused.value.status == 401
