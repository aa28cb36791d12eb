"""Two real nodes: the digits job's workers on different kubelets (each its own containerd, bridge and
pod subnet), so the rendezvous and gloo's all-reduce cross from one node's pod network to the other's,
and its checkpoints in object storage, which both nodes reach."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from devcluster.agents import starts
from devcluster.jobs import real_job, result_from_logs, unique, wait_phase, worker_logs
from devcluster.kubectl import Kubectl, wait_for
from devcluster.node import RealNode
from devcluster.objectstore import ObjectStore
from devcluster.operator_process import OperatorProcess

# Accounting rules (no target: they count and let the packet go on) for traffic between the two bridges,
# in the mangle table: it sees every forwarded packet before the filter table, where kube-router's
# firewall may accept it before any rule of ours.
_RULES = (["-i", "ludus0", "-o", "ludus1"], ["-i", "ludus1", "-o", "ludus0"])
_TABLE = ["-t", "mangle"]
_COMMENT = ["-m", "comment", "--comment", "ludus e2e cross-node"]


@pytest.fixture
def cross_node_counters() -> Iterator[None]:
    for rule in _RULES:
        subprocess.run(["iptables", *_TABLE, "-I", "FORWARD", "1", *rule, *_COMMENT], check=True)
    yield
    for rule in _RULES:
        subprocess.run(["iptables", *_TABLE, "-D", "FORWARD", *rule, *_COMMENT], check=False)


def _packets() -> dict[str, int]:
    """Packets counted so far by each accounting rule, keyed by direction."""
    out = subprocess.run(["iptables", *_TABLE, "-L", "FORWARD", "-v", "-x", "-n"], capture_output=True, text=True,
                         check=True).stdout
    counts = {}
    for line in out.splitlines():
        if "ludus e2e cross-node" in line:
            fields = line.split()  # pkts bytes (no target) prot opt in out source destination ...
            bridges = [f for f in fields if f.startswith("ludus") and f[5:].isdigit()]
            counts["->".join(bridges)] = int(fields[0])
    return counts


INTERVAL = 20
SLOW = ["--epochs", "30", "--log-every", "1", "--step-delay", "0.05"]


def test_digits_across_two_real_nodes_checkpoints_to_object_storage_and_resumes_on_both_after_losing_node_1s_worker(
    k: Kubectl, operator: OperatorProcess, real_node: RealNode, second_node: RealNode, cross_node_counters: None,
    s3_checkpoint: dict[str, Any], object_store: ObjectStore,
) -> None:
    """One worker per node, so the rendezvous and gloo's all-reduce cross from one node's pod network to the
    other's; the checkpoints go to the S3 server, as no disk is shared between nodes. The worker on node 1
    is deleted mid-run: its replacement and the survivor resume from the newest committed checkpoint. Its
    exported model, in the bucket as well, is what a second job then fine-tunes from by init.uri."""
    name = unique("across")
    body = real_job(name, args=SLOW, interval=INTERVAL)
    body["spec"]["checkpoint"].update({**s3_checkpoint, "uri": f"{s3_checkpoint['uri']}/{name}"})
    # One worker per node: what a platform team asks of multi-node training.
    body["spec"]["template"]["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"ludus.dev/job-name": name, "ludus.dev/role": "worker"}}}]
    k.apply(body)

    def step() -> int:
        return int(((k.json("tj", name).get("status") or {}).get("progress") or {}).get("step") or 0)

    wait_for(lambda: step() >= 2 * INTERVAL + 5, timeout=300, interval=1, what=f"{name} past two checkpoints")
    pods = {p["metadata"]["name"]: p for p in k.items("pods", f"ludus.dev/job-name={name},ludus.dev/role=worker")}
    assert {p["spec"]["nodeName"] for p in pods.values()} == {"ludus-node-0", "ludus-node-1"}, pods.keys()
    subnets = {str(ipaddress.ip_network(f"{p['status']['podIP']}/24", strict=False)) for p in pods.values()}
    assert subnets == {"10.244.0.0/24", "10.244.1.0/24"}, subnets  # each node's own pod subnet
    checkpoint = k.json("tj", name)["status"]["checkpoint"]
    assert checkpoint["uri"].startswith(f"{s3_checkpoint['uri']}/{name}/ckpt-"), checkpoint
    assert checkpoint["sizeBytes"] > 0, checkpoint
    victim = next(n for n, p in pods.items() if p["spec"]["nodeName"] == "ludus-node-1")
    k.run("delete", "pod", victim, "--wait=false")
    wait_phase(k, name, "Succeeded", timeout=400)

    status = k.json("tj", name)["status"]
    assert status["restarts"] >= 1, status
    replaced = {p["spec"]["nodeName"] for p in k.items("pods", f"ludus.dev/job-name={name},ludus.dev/role=worker")}
    assert replaced == {"ludus-node-0", "ludus-node-1"}, replaced
    logs = worker_logs(k, name)
    resumed = [s for s in starts(logs) if s[0] > 0]
    assert resumed and resumed[-1][1] == 4, starts(logs)  # the whole group of 4 from a committed checkpoint
    # The deleted pod got SIGTERM and every rank saved before it went: at most one interval is redone.
    assert 0 <= status["goodput"]["stepsRedone"] <= INTERVAL, status["goodput"]
    result = result_from_logs(logs)
    assert result is not None and result["world_size"] == 4 and result["accuracy"] >= 0.95
    # What status.checkpoint names is committed in the bucket.
    newest = status["checkpoint"]
    fs = object_store.filesystem()
    assert fs.exists(newest["uri"].removeprefix("s3://") + "/COMMITTED"), newest
    # gloo's all-reduce of every step went from one node's bridge to the other's, both ways.
    packets = _packets()
    assert packets.get("ludus0->ludus1", 0) > 100 and packets.get("ludus1->ludus0", 0) > 100, packets

    # Its exported model is in the bucket too: a second job fine-tunes from it by init.uri, on either node.
    model = f"{s3_checkpoint['uri']}/{name}/model"
    assert fs.exists(model.removeprefix("s3://") + "/metadata.json"), fs.find(s3_checkpoint["uri"])
    finetune = unique("finetune")
    body = real_job(finetune, workers=1, nproc=1, args=["--epochs", "3"])
    body["spec"]["checkpoint"].update({**s3_checkpoint, "uri": f"{s3_checkpoint['uri']}/{finetune}"})
    body["spec"]["init"] = {"uri": model}
    k.apply(body)
    wait_phase(k, finetune, "Succeeded", timeout=300)
    pinned = k.json("tj", finetune)["status"]["initializedFrom"]
    metadata = json.loads(fs.cat(model.removeprefix("s3://") + "/metadata.json"))
    assert pinned["uri"] == model and pinned["file"] == f"{model}/weights.pt", pinned
    assert pinned["sha256"] == metadata["sha256"] and metadata["job"] == name, (pinned, metadata)
