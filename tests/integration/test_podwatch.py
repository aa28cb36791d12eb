"""The operator's own pod watch against the real API server: list, follow, delete, relist on 410."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import pytest

from ludus.api import constants as c
from ludus.runtime.kube import KubeClient, pod_path
from ludus.runtime.podwatch import PodIndex, PodWatch, _pods_path, _Relist
from tests.fixtures import TestCluster


def _pod(name: str, namespace: str, job: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {c.LABEL_JOB_NAME: job, c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_ROLE: "worker"},
        },
        # Nothing matches the selector: the pod stays Pending, which is all this test needs.
        "spec": {"nodeSelector": {"ludus.dev/nowhere": "true"}, "containers": [{"name": "c", "image": "none"}]},
    }


async def _until(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _scenario(namespace: str) -> None:
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings(), logger=logging.getLogger("test"))
    assert info is not None
    client = KubeClient(info)
    await client.create(_pod("before-0", namespace, "before"))  # exists before the watch starts
    await client.create({**_pod("stray", namespace, "x"), "metadata": {"name": "stray", "namespace": namespace}})
    index, touched = PodIndex(), []
    watch = PodWatch(index, (namespace,), lambda key, name: touched.append((key, name)))
    task = asyncio.create_task(watch.run(client))
    try:
        await asyncio.wait_for(watch.synced.wait(), 20)
        assert [p.name for p in index.pods_of((namespace, "before"))] == ["before-0"]
        assert len(index) == 1, "only pods with Ludus's labels are followed"
        assert (namespace, "before") in {key for key, _ in touched}

        await client.create(_pod("job-worker-0", namespace, "job"))
        await _until(lambda: index.pods_of((namespace, "job")), "the new pod in the index")
        assert ((namespace, "job"), "job-worker-0") in touched
        await client.request("DELETE", pod_path(namespace, "job-worker-0"), {"gracePeriodSeconds": 0})
        await _until(lambda: not index.pods_of((namespace, "job")), "the deleted pod gone from the index")

        # A resume point the server no longer holds is answered with 410 Gone: the watch relists.
        with pytest.raises(_Relist):
            await watch._watch(client, _pods_path(namespace), "1", lambda ns: ns == namespace)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


def test_the_pod_watch_lists_follows_and_relists(
    cluster: TestCluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    asyncio.run(_scenario(namespace))
