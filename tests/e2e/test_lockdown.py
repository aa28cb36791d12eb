"""The pods locked down, on real pods with kube-router's NetworkPolicy firewall running: while digits
trains, a pod in another namespace and a pod of another job cannot open a TCP connection to its store or
its workers, a worker of the same job can; no container has an API token; `/` is read-only."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devcluster.jobs import real_job, result_from_logs, unique, wait_phase, worker_logs
from devcluster.kubectl import Kubectl, wait_for
from devcluster.node import NODE_NAME
from devcluster.operator_process import OperatorProcess
from tests.fixtures import TestCluster

SLOW = ["--epochs", "40", "--log-every", "5", "--step-delay", "0.1"]
_PROBE = """
import json, socket, sys
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        out[target] = "open"
    except OSError as err:
        out[target] = type(err).__name__
print(json.dumps(out))
"""


def _probe_pod(name: str, labels: dict[str, str] | None = None, node: str = NODE_NAME) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "automountServiceAccountToken": False,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "probe", "image": "ludus-trainer:latest", "imagePullPolicy": "Never",
                                     "command": ["sleep", "600"],
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}]}}


@pytest.fixture
def other_namespace(cluster: TestCluster) -> Iterator[Kubectl]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_for(lambda: cluster.kubectl.in_namespace(name).run("get", "sa", "default", check=False).returncode == 0)
    yield cluster.kubectl.in_namespace(name)
    cluster.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def _connect(k: Kubectl, pod: str, targets: list[str], container: str | None = None) -> dict[str, str]:
    args = ["exec", pod, *(["-c", container] if container else []), "--", "python", "-c", _PROBE, *targets]
    return json.loads(k.run(*args).stdout.strip().splitlines()[-1])


def test_only_the_jobs_own_pods_reach_it_and_the_containers_hold_no_token_and_a_read_only_root(
    k: Kubectl, other_namespace: Kubectl, operator: OperatorProcess, real_node: object
) -> None:
    name = unique("locked")
    body = real_job(name, args=SLOW)
    k.apply(body, _probe_pod("same-namespace", {"ludus.dev/job-name": "another-job"}))
    other_namespace.apply(_probe_pod("elsewhere"))
    wait_for(lambda: (k.json("tj", name).get("status") or {}).get("phase") == "Running", timeout=120,
             what="Running")
    policy = k.json("networkpolicy", name)
    assert policy["metadata"]["ownerReferences"][0]["name"] == name

    # The operator (a host process here) reads worker 0's progress through the policy: its metrics page
    # serves, so a refused connection below is the policy's doing, not a port nobody listens on yet.
    wait_for(lambda: ((k.json("tj", name).get("status") or {}).get("progress") or {}).get("step", 0) > 0,
             timeout=90, what="progress read through the policy")
    store_ip = k.json("pod", f"{name}-rdzv")["status"]["podIP"]
    worker0_ip = k.json("pod", f"{name}-worker-0")["status"]["podIP"]
    targets = [f"{store_ip}:29400", f"{worker0_ip}:9090"]
    # A scraper on the node (Prometheus here is a host process) still reads the metrics page.
    with urllib.request.urlopen(f"http://{worker0_ip}:9090/metrics", timeout=5) as page:
        assert b"ludus_trainer_step" in page.read()
    for probe_k, pod in ((other_namespace, "elsewhere"), (k, "same-namespace")):
        wait_for(lambda probe_k=probe_k, pod=pod: probe_k.json("pod", pod)["status"].get("phase") == "Running",
                 what=f"{pod} running")
        refused = _connect(probe_k, pod, targets)
        assert all(v != "open" for v in refused.values()), (pod, refused)
    # A worker of the same job reaches the store and the other worker, at the same moment.
    assert _connect(k, f"{name}-worker-1", targets, "trainer") == {t: "open" for t in targets}
    # The control: it is the policy that refused. Widened to admit the other namespace, the same probe connects.
    other = {"kubernetes.io/metadata.name": other_namespace.namespace}
    widened = {"from": [{"namespaceSelector": {"matchLabels": other}}]}
    k.run("patch", "networkpolicy", name, "--type=json", "-p",
          json.dumps([{"op": "add", "path": "/spec/ingress/-", "value": widened}]))
    wait_for(lambda: _connect(other_namespace, "elsewhere", targets) == {t: "open" for t in targets}, timeout=60,
             interval=1, what="the probe admitted once the policy admits its namespace")

    check = ("import os, pathlib\n"
             "print(os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount/token'))\n"
             "try:\n    open('/written', 'w')\nexcept OSError as err:\n    print(type(err).__name__, err.errno)\n"
             "else:\n    print('written')\n"
             "pathlib.Path('/tmp/ok').write_text('x'); print('tmp writable')\n")
    for pod, container in ((f"{name}-worker-0", "trainer"), (f"{name}-rdzv", None)):
        out = k.run("exec", pod, *(["-c", container] if container else []), "--", "python", "-c", check).stdout
        assert out.split() == ["False", "OSError", "30", "tmp", "writable"], (pod, out)  # 30: EROFS

    wait_phase(k, name, "Succeeded", timeout=300)
    result = result_from_logs(worker_logs(k, name))
    assert result is not None and result["accuracy"] >= 0.95
