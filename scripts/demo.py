"""`make demo`: a local cluster with a real node, the operator installed as users install it,
and the digits TrainingJob trained on real pods to completion, with its progress streamed.

Exit status 0 only when the job Succeeded. `make demo-down` stops everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devcluster.cluster import Cluster, binary  # noqa: E402
from devcluster.node import RealNode, host_problem  # noqa: E402

NAMESPACE = "ludus-demo"
JOB = "digits"
EXAMPLE = REPO / "manifests" / "examples" / "digits.yaml"
TIMEOUT_SECONDS = 600


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def kubectl(cluster: Cluster, *args: str, check: bool = True) -> str:
    return cluster.kubectl(*args, check=check).stdout


def stream_training_logs(cluster: Cluster, results: dict[str, dict]) -> None:
    """Follow the workers' logs; print progress and evaluation lines as people want to read them."""
    cmd = [str(binary("kubectl")), f"--kubeconfig={cluster.kubeconfig}", "-n", NAMESPACE, "logs", "-f",
           "--max-log-requests=8", "-l", f"ludus.dev/job-name={JOB},ludus.dev/role=worker", "--tail=-1"]
    seen_eval: set[str] = set()
    while "result" not in results:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("LUDUS_PROGRESS "):
                record = json.loads(line.split(" ", 1)[1])
                say(f"  step {record['step']}/{record['totalSteps']}  epoch {record['epoch']}  "
                    f"loss {record['loss']:.4f}  {record['samplesPerSecond'] or 0:.0f} samples/s"
                    + (f"  eta {record['etaSeconds']:.0f}s" if record.get("etaSeconds") else ""))
            elif line.startswith("LUDUS_EVAL ") and line not in seen_eval:
                seen_eval.add(line)
                say("  eval " + line.split(" ", 1)[1].strip())
            elif line.startswith("LUDUS_RESULT "):
                results["result"] = json.loads(line.split(" ", 1)[1])
        proc.wait()
        time.sleep(1)


def main() -> int:
    problem = host_problem()
    if problem:
        say(f"this machine cannot run the demo's real node: {problem}")
        return 2
    started = time.monotonic()
    cluster = Cluster.default()
    say("starting the control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    cluster.up()
    say("starting the real node (containerd, CNI, kube-proxy, CoreDNS, kubelet)")
    node = RealNode(cluster)
    node.up()
    for image in ("ludus-operator:latest", "ludus-trainer:latest"):
        say(f"loading {image} into the node's runtime (never pulled)")
        node.import_image(image)

    say("installing Ludus: kubectl apply -k manifests/")
    kubectl(cluster, "apply", "-k", str(REPO / "manifests"))
    kubectl(cluster, "-n", "ludus-system", "rollout", "restart", "deployment/ludus-operator")
    kubectl(cluster, "-n", "ludus-system", "rollout", "status", "deployment/ludus-operator", "--timeout=180s")

    kubectl(cluster, "create", "namespace", NAMESPACE, check=False)
    kubectl(cluster, "-n", NAMESPACE, "delete", "trainingjob", JOB, "--ignore-not-found", "--wait=true")
    say(f"applying {EXAMPLE.relative_to(REPO)} in namespace {NAMESPACE}")
    applied = time.monotonic()
    kubectl(cluster, "-n", NAMESPACE, "apply", "-f", str(EXAMPLE))

    results: dict[str, dict] = {}
    threading.Thread(target=stream_training_logs, args=(cluster, results), daemon=True).start()
    last = ""
    phase = ""
    while time.monotonic() - applied < TIMEOUT_SECONDS:
        job = json.loads(kubectl(cluster, "-n", NAMESPACE, "get", "trainingjob", JOB, "-o", "json"))
        status = job.get("status") or {}
        phase = status.get("phase", "")
        line = f"phase {phase or '-'}  workers {status.get('workers', '-')}  restarts {status.get('restarts', 0)}"
        if line != last:
            say(line)
            last = line
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    deadline = time.monotonic() + 20
    while "result" not in results and phase == "Succeeded" and time.monotonic() < deadline:
        time.sleep(0.5)

    print()
    print(kubectl(cluster, "-n", NAMESPACE, "get", "trainingjob", JOB), end="")
    if phase != "Succeeded":
        say(f"the job ended {phase or 'without finishing'}; see kubectl -n {NAMESPACE} describe tj {JOB}")
        return 1
    result = results.get("result", {})
    say(f"TrainingJob {JOB} Succeeded on real pods in {time.monotonic() - applied:.0f}s "
        f"(demo total {time.monotonic() - started:.0f}s)")
    for metric in ("accuracy", "precision", "recall", "f1"):
        if metric in result:
            print(f"  {metric:<9} {result[metric]:.4f}")
    print(f"\nThe cluster keeps running: export KUBECONFIG={cluster.kubeconfig}   (make demo-down stops it)")
    return 0 if float(result.get("accuracy", 0)) >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
