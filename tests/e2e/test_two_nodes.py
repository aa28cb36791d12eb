"""Two real nodes: the digits job's workers on different kubelets (each its own containerd, bridge and
pod subnet), so the rendezvous and gloo's all-reduce cross from one node's pod network to the other's."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator

import pytest

from devcluster.jobs import real_job, result_from_logs, unique, wait_phase, worker_logs
from devcluster.kubectl import Kubectl
from devcluster.node import RealNode
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


def test_digits_trains_with_its_workers_on_two_real_nodes_across_their_pod_networks(
    k: Kubectl, operator: OperatorProcess, real_node: RealNode, second_node: RealNode, cross_node_counters: None
) -> None:
    name = unique("across")
    body = real_job(name)
    # One worker per node: what a platform team asks of multi-node training.
    body["spec"]["template"]["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"ludus.dev/job-name": name, "ludus.dev/role": "worker"}}}]
    k.apply(body)
    wait_phase(k, name, "Succeeded")

    pods = {p["metadata"]["name"]: p for p in k.items("pods", f"ludus.dev/job-name={name},ludus.dev/role=worker")}
    nodes = {p["spec"]["nodeName"] for p in pods.values()}
    assert nodes == {"ludus-node-0", "ludus-node-1"}, nodes
    subnets = {str(ipaddress.ip_network(f"{p['status']['podIP']}/24", strict=False)) for p in pods.values()}
    assert subnets == {"10.244.0.0/24", "10.244.1.0/24"}, subnets  # each node's own pod subnet
    result = result_from_logs(worker_logs(k, name))
    assert result is not None and result["world_size"] == 4 and result["accuracy"] >= 0.95
    # gloo's all-reduce of every step went from one node's bridge to the other's, both ways.
    packets = _packets()
    assert packets.get("ludus0->ludus1", 0) > 100 and packets.get("ludus1->ludus0", 0) > 100, packets
