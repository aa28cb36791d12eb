"""`make demo`: a local cluster with a real node, the operator installed as users install it,
and the digits TrainingJob trained on real pods to completion, with its progress streamed.

Exit status 0 only when the job Succeeded. `make demo-down` stops everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devcluster import claim  # noqa: E402
from devcluster.cluster import Cluster  # noqa: E402
from devcluster.node import NODE_IP, RealNode, host_problem  # noqa: E402
from devcluster.paths import binary  # noqa: E402

NAMESPACE = "ludus-demo"
JOB = "digits"
EXAMPLE = REPO / "manifests" / "examples" / "digits-s3.yaml"
SWEEP_EXAMPLE = REPO / "manifests" / "examples" / "sweep-digits.yaml"
CT_EXAMPLE = REPO / "manifests" / "examples" / "continuous-digits.yaml"
BUCKET = "ludus-demo"
S3_SECRET = "s3-checkpoints"
LUDUS = Path(sys.executable).parent / "ludus"
TIMEOUT_SECONDS = 600
# The demo reads progress every 2 s so that `kubectl get tj -w` shows it move; the default is 30 s.
PROGRESS_INTERVAL = "2"


_SAY = threading.Lock()


def say(message: str) -> None:
    """One whole line at a time: three threads print (the CLI's two streams and the watch)."""
    with _SAY:
        sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
        sys.stdout.flush()


def kubectl(cluster: Cluster, *args: str, check: bool = True) -> str:
    return cluster.kubectl(*args, check=check).stdout


def follow_with_the_cli(cli: subprocess.Popen[str], results: dict[str, dict]) -> None:
    """Read what `ludus apply` prints while it follows the job: the workers' lines, prefixed
    `[worker-N]`, shown as people want to read them; the CLI's own lines shown as they are."""
    assert cli.stdout is not None
    seen_eval: set[str] = set()
    for raw in cli.stdout:
        prefix, _, line = raw.rstrip("\n").partition(" ")
        if not prefix.startswith("[worker-"):
            say(f"  ludus | {raw.rstrip()}")
        elif line.startswith("LUDUS_STARTUP ") and "first_step" not in results:
            results["first_step"] = {"at": time.monotonic()}
            marks = json.loads(line.split(" ", 1)[1])
            results["startup"] = marks
            say("  start-up (s since the container started): "
                + ", ".join(f"{k} {v:.1f}" for k, v in marks.items()))
        elif line.startswith("LUDUS_PROGRESS "):
            record = json.loads(line.split(" ", 1)[1])
            say(f"  {prefix} step {record['step']}/{record['totalSteps']}  epoch {record['epoch']}  "
                f"loss {record['loss']:.4f}  {record['samplesPerSecond'] or 0:.0f} samples/s")
        elif line.startswith("LUDUS_EVAL ") and line not in seen_eval:
            seen_eval.add(line)
            say(f"  {prefix} eval " + line.split(" ", 1)[1].strip())
        elif line.startswith("LUDUS_RESULT ") and "result" not in results:
            results["result_at"] = {"at": time.monotonic()}
            results["result"] = json.loads(line.split(" ", 1)[1])


class Timeline:
    """apply -> Running -> first step -> last step -> Succeeded, as this script saw them (0.2 s polls)."""

    def __init__(self, applied: float) -> None:
        self.applied = applied
        self.moments: dict[str, float] = {}

    def saw(self, phase: str, results: dict[str, dict]) -> None:
        now = time.monotonic() - self.applied
        if phase in ("Running", "Succeeded") and "Running" not in self.moments:
            self.moments["Running"] = now
        if "first_step" in results and "first step" not in self.moments:
            self.moments["first step"] = results["first_step"]["at"] - self.applied
        if "result" in results and "last step" not in self.moments:
            self.moments["last step"] = results["result_at"]["at"] - self.applied
        if phase in ("Succeeded", "Failed") and phase not in self.moments:
            self.moments[phase] = now

    def report(self) -> str:
        parts = ["apply 0.0s"] + [f"{name} {at:.1f}s" for name, at in self.moments.items()]
        return "\n  timeline: " + " -> ".join(parts)


def goodput_report(goodput: dict) -> str:
    if not goodput:
        return ""
    badput = ", ".join(f"{k} {v['seconds']:.1f}s" for k, v in goodput.get("badput", {}).items() if v["seconds"])
    return (f"  goodput: {goodput['fraction']:.0%} of {goodput['wallSeconds']:.0f}s went into training "
            f"({goodput['productiveSeconds']:.1f}s); the rest: {badput}")


def experiment_tracker(cluster: Cluster, body: dict) -> str:
    """MLflow's tracking server beside the cluster; `body`'s spec (or a Sweep's template) gets its address
    where the pods reach it. Returns the UI's address on this machine."""
    server = cluster.tracking_server()
    if not server.is_up():
        say("starting the experiment tracker (MLflow's tracking server, SQLite and artifacts under .cluster/)")
        server.up()
    spec = body["spec"]["template"] if body["kind"] in ("Sweep", "ContinuousTraining") else body["spec"]
    spec["tracking"]["uri"] = server.url(NODE_IP)
    return server.url()


def start_the_sweep(cluster: Cluster) -> None:
    """The small example Sweep, left running: its trials appear in MLflow as children of one parent run."""
    body = yaml.safe_load(SWEEP_EXAMPLE.read_text())
    experiment_tracker(cluster, body)
    name = body["metadata"]["name"]
    kubectl(cluster, "-n", NAMESPACE, "delete", "sweep", name, "--ignore-not-found", "--wait=true")
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=json.dumps(body))
    say(f"Sweep {name} started in the background ({body['spec']['maxTrials']} trials, "
        f"{body['spec']['parallelTrials']} at a time): ludus sweep get {name} -n {NAMESPACE}; in MLflow it is one "
        "parent run with a child per trial")


def start_the_continuous_training(cluster: Cluster) -> None:
    """The ContinuousTraining example on the demo's object store, given its first data version and left
    running: its run's model becomes version 1 of a registered model in MLflow, with the champion alias."""
    body = yaml.safe_load(CT_EXAMPLE.read_text())
    experiment_tracker(cluster, body)
    body["spec"]["template"]["checkpoint"]["endpoint"] = cluster.object_store().endpoint(NODE_IP)
    name = body["metadata"]["name"]
    kubectl(cluster, "-n", NAMESPACE, "delete", "ct", name, "--ignore-not-found", "--wait=true")
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=json.dumps(body))
    cluster.kubectl("-n", NAMESPACE, "annotate", "ct", name, f"ludus.dev/data-version={time.strftime('%Y-%m-%d')}",
                    "--overwrite")
    say(f"ContinuousTraining {name} started its first run: ludus history {name} -n {NAMESPACE}; in MLflow each "
        f"run's model is a version of the registered model {NAMESPACE}.{name}, the champion alias on the promoted one")


def object_storage(cluster: Cluster) -> Path:
    """The S3 server beside the cluster (SeaweedFS), the demo's bucket, the keys in a Secret in the demo's
    namespace, and the example with this store's address (where the pods reach it): the manifest to apply."""
    say("starting the object store (SeaweedFS's S3 gateway) for the checkpoints; "
        f"bucket {BUCKET}, Secret {S3_SECRET} in {NAMESPACE}")
    store = cluster.object_store()
    store.up()
    store.make_bucket(BUCKET)
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=json.dumps(store.secret(S3_SECRET)))
    body = yaml.safe_load(EXAMPLE.read_text())
    body["spec"]["checkpoint"]["endpoint"] = store.endpoint(NODE_IP)
    ui = experiment_tracker(cluster, body)
    say(f"MLflow's UI: {ui} (experiment {body['spec']['tracking']['experiment']})")
    manifest = cluster.root / EXAMPLE.name
    manifest.write_text(yaml.safe_dump(body, sort_keys=False))
    return manifest


def main() -> int:
    problem = host_problem()
    if problem:
        say(f"this machine cannot run the demo's real node: {problem}")
        return 2
    started = time.monotonic()
    cluster = Cluster.default()
    return claim.run_holding(cluster.root, "make demo", lambda: run_demo(cluster, started), say)


def run_demo(cluster: Cluster, started: float) -> int:
    say("starting the control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    cluster.up()
    say("starting the real node (containerd, CNI, kube-proxy, CoreDNS, kubelet)")
    node = RealNode(cluster)
    node.up()
    for image in ("ludus-operator:latest", "ludus-trainer:latest"):
        say(f"loading {image} into the node's runtime (never pulled)")
        node.import_image(image)

    say("installing Ludus: kubectl apply -k manifests/, with the image built here "
        "(scripts/demo-kustomize; progress read every 2 s for the demo)")
    kubectl(cluster, "apply", "-k", str(REPO / "scripts" / "demo-kustomize"))
    arg = {"op": "add", "path": "/spec/template/spec/containers/0/args/-",
           "value": f"--progress-interval={PROGRESS_INTERVAL}"}
    kubectl(cluster, "-n", "ludus-system", "patch", "deployment/ludus-operator", "--type=json",
            "-p", json.dumps([arg]))
    kubectl(cluster, "-n", "ludus-system", "rollout", "restart", "deployment/ludus-operator")
    kubectl(cluster, "-n", "ludus-system", "rollout", "status", "deployment/ludus-operator", "--timeout=180s")

    kubectl(cluster, "create", "namespace", NAMESPACE, check=False)
    kubectl(cluster, "-n", NAMESPACE, "delete", "trainingjob", JOB, "--ignore-not-found", "--wait=true")
    manifest = object_storage(cluster)
    # Dogfooding: the job is created and followed by the `ludus` CLI, as a user would.
    shown = manifest.relative_to(REPO) if manifest.is_relative_to(REPO) else manifest
    say(f"ludus apply -f {shown} -n {NAMESPACE}   (the CLI follows logs, status, evaluation)")
    applied = time.monotonic()
    cli = subprocess.Popen([str(LUDUS), "apply", "-f", str(manifest), "-n", NAMESPACE],
                           env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "160"},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results: dict[str, dict] = {}
    reader = threading.Thread(target=follow_with_the_cli, args=(cli, results), daemon=True)
    reader.start()
    threading.Thread(target=lambda: [say(f"  ludus | {line.rstrip()}") for line in cli.stderr or []],
                     daemon=True).start()
    for _ in range(150):  # the CLI creates the job; watch it once it exists
        if kubectl(cluster, "-n", NAMESPACE, "get", "trainingjob", JOB, "--ignore-not-found", "-o", "name"):
            break
        time.sleep(0.2)
    say(f"kubectl get tj {JOB} -w:")
    watch = subprocess.Popen([str(binary("kubectl")), f"--kubeconfig={cluster.kubeconfig}", "-n", NAMESPACE,
                              "get", "trainingjob", JOB, "-w"], stdout=subprocess.PIPE, text=True)
    threading.Thread(target=lambda: [say(f"  kubectl | {line.rstrip()}") for line in watch.stdout or []],
                     daemon=True).start()
    timeline = Timeline(applied)
    phase, status = "", {}
    while time.monotonic() - applied < TIMEOUT_SECONDS and cli.poll() is None:
        job = json.loads(kubectl(cluster, "-n", NAMESPACE, "get", "trainingjob", JOB, "-o", "json", check=False)
                         or "{}")
        status = job.get("status") or {}
        phase = status.get("phase", "")
        timeline.saw(phase, results)
        time.sleep(0.2)
    try:
        cli_code = cli.wait(timeout=60)
    except subprocess.TimeoutExpired:
        cli.terminate()
        cli_code = -1
    reader.join(timeout=10)
    watch.terminate()
    job = json.loads(kubectl(cluster, "-n", NAMESPACE, "get", "trainingjob", JOB, "-o", "json"))
    status = job.get("status") or {}
    phase = status.get("phase", "")
    timeline.saw(phase, results)
    print()
    print(kubectl(cluster, "-n", NAMESPACE, "get", "trainingjob", JOB, "-o", "wide"), end="")
    if phase != "Succeeded" or cli_code != 0:
        say(f"the job ended {phase or 'without finishing'} (ludus exited {cli_code}); "
            f"see: ludus describe {JOB} -n {NAMESPACE}")
        return 1
    result = results.get("result", {})
    say(f"TrainingJob {JOB} Succeeded on real pods in {time.monotonic() - applied:.0f}s "
        f"(demo total {time.monotonic() - started:.0f}s)")
    for metric in ("accuracy", "precision", "recall", "f1"):
        if metric in result:
            print(f"  {metric:<9} {result[metric]:.4f}")
    print(timeline.report())
    print(goodput_report(status.get("goodput") or {}))
    newest = status.get("checkpoint") or {}
    print(f"  newest checkpoint: step {newest.get('step')} at {newest.get('uri')} ({newest.get('sizeBytes')} bytes)")
    tracked = status.get("tracking") or {}
    print(f"  MLflow run {tracked.get('runId')}: {tracked.get('url')}   (UI: {cluster.tracking_server().url()})")
    start_the_sweep(cluster)
    start_the_continuous_training(cluster)
    record = {"command": "make bench-demo", "date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count()},
              "timeline": {k: round(v, 2) for k, v in timeline.moments.items()},
              "startup": results.get("startup", {}), "goodput": status.get("goodput")}
    if os.environ.get("LUDUS_DEMO_RECORD"):  # make bench-demo
        Path(os.environ["LUDUS_DEMO_RECORD"]).write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nThe cluster keeps running: export KUBECONFIG={cluster.kubeconfig}   (make demo-down stops it)")
    return 0 if float(result.get("accuracy", 0)) >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
