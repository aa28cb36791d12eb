"""`kubectl scale` through the scale subresource, inside the elastic range and beyond it."""

from __future__ import annotations

import json

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from tests.factories import make_job


def _workers_status(k: Kubectl, name: str) -> str:
    return (k.json("tj", name).get("status") or {}).get("workers", "")


def test_scale_adds_a_worker_within_range_and_refuses_beyond(k: Kubectl, operator: OperatorProcess) -> None:
    k.apply(make_job("elastic").workers(2).elastic(1, 3).on_fake_nodes().manifest())
    wait_for(lambda: _workers_status(k, "elastic") == "2/2", what="2/2")

    k.run("scale", "tj/elastic", "--replicas=3")
    wait_for(lambda: _workers_status(k, "elastic") == "3/3", what="3/3 after scale up")
    assert k.json("pod", "elastic-worker-2")["status"]["phase"] == "Running"

    refused = k.run("scale", "tj/elastic", "--replicas=4", check=False)
    assert refused.returncode != 0 and "spec.replicas must lie within" in refused.stderr
    assert k.json("tj", "elastic")["spec"]["replicas"] == 3

    k.run("scale", "tj/elastic", "--replicas=1")
    wait_for(lambda: _workers_status(k, "elastic") == "1/1", what="1/1 after scale down")
    wait_for(lambda: k.get_or_none("pod", "elastic-worker-2") is None
             and k.get_or_none("pod", "elastic-worker-1") is None,
             what="highest workers removed")
    assert k.json("tj", "elastic")["status"]["restarts"] == 0
    # The scale subresource reports the worker selector and count, as HPA-style tooling reads them.
    path = f"/apis/ludus.dev/v1alpha1/namespaces/{k.namespace}/trainingjobs/elastic/scale"
    scale = json.loads(k.run("get", "--raw", path).stdout)
    assert scale["spec"]["replicas"] == 1 and scale["status"]["replicas"] == 1
    assert scale["status"]["selector"] == "ludus.dev/job-name=elastic,ludus.dev/role=worker"
