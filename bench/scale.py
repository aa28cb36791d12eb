"""Scale benchmark: N TrainingJobs of W workers at once, against the API server's own ceiling.

`make bench` runs it. Each run has two arms on one cluster, in fresh namespaces:

- operator: the bench POSTs N TrainingJobs concurrently; `ludus operator` (its own process, the
  same admin identity as the bench client, so API Priority and Fairness treats both alike) makes
  the Service and pods; the arm ends when every job reports Running.
- ceiling: the bench itself POSTs the very same Services and pods (rendered by Ludus's builders,
  without the owner reference) with a plain concurrent loop; it ends when every pod is Running.

Both then delete everything and time the way to an empty namespace. Pods become Running through
kwok on fake nodes with room for every pod, and kube-scheduler and kube-controller-manager get the
same raised client rate for every arm. The API server writes an audit log (metadata only) from
which requests are counted per job by user agent and verb. etcd runs with --unsafe-no-fsync.
One warm-up run per size is discarded; figures are medians of the runs, with min and max.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import ssl
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from devcluster.cluster import Cluster  # noqa: E402
from devcluster.paths import free_port, versions  # noqa: E402
from ludus.api.models import TrainingJob  # noqa: E402
from ludus.builders import pods as pod_builders  # noqa: E402
from ludus.builders.service import build_headless_service  # noqa: E402

RESULTS = REPO / "docs" / "benchmarks" / "scale.json"
BENCH_ROOT = REPO / ".bench-cluster"
USER_AGENT = "ludus-bench/1"
CONCURRENCY = 64  # in-flight requests of the bench client; the operator's pool has 64 connections too
QPS = 5000  # kube-scheduler and kube-controller-manager client rate, raised alike for all arms
BENCH_NODES = 12
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "users": ["ludus-admin"]}, {"level": "None"}],
}
JOB_TIMEOUT_S = 900.0
NAMESPACE_GONE_TIMEOUT_S = 300.0
SETTLE_S = 3.0  # quiet time between arms, after the last arm's namespace is gone
OPERATOR_ARGS: list[str] = []  # extra `ludus operator` flags (--operator-args), the same for every run


# --- the API client ------------------------------------------------------------------------------
class Api:
    """One aiohttp session with the admin client certificate (the identity the operator uses too)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        context.load_cert_chain(user["client-certificate"], user["client-key"])
        self.server = cluster["server"]
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=CONCURRENCY),
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        self.limit = asyncio.Semaphore(CONCURRENCY)

    async def call(self, verb: str, path: str, body: Any = None, ok: tuple[int, ...] = (),
                   content_type: str = "application/json") -> dict[str, Any]:
        async with self.limit:
            for attempt in range(8):
                async with self.session.request(verb, self.server + path, json=body,
                                                headers={"Content-Type": content_type}) as rsp:
                    text = await rsp.text()
                    if rsp.status < 400 or rsp.status in ok:
                        return json.loads(text) if text else {}
                    if rsp.status == 429 or rsp.status >= 500:
                        await asyncio.sleep(0.1 * 2**attempt)
                        continue
                    raise RuntimeError(f"{verb} {path}: {rsp.status} {text[:300]}")
        raise RuntimeError(f"{verb} {path}: gave up after retries")

    async def watch(self, path: str, on_event: Any) -> None:
        """Follow a watch (its initial list arrives as ADDED events) until cancelled, resuming when the
        server ends the stream."""
        version = "0"
        while True:
            url = f"{self.server}{path}?watch=1&allowWatchBookmarks=true&resourceVersion={version}"
            async with self.session.get(url) as rsp:
                if rsp.status == 429 or rsp.status >= 500:  # e.g. a new CRD's watch cache still starting
                    await asyncio.sleep(0.5)
                    continue
                if rsp.status != 200:
                    raise RuntimeError(f"watch {path}: {rsp.status} {await rsp.text()}")
                async for line in rsp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = "0"  # expired: list again (ADDED events are idempotent for the tracker)
                        break
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        on_event(event["type"], obj, time.monotonic())
            print(f"watch {path} ended; resuming from {version}", file=sys.stderr, flush=True)

    async def close(self) -> None:
        await self.session.close()


# --- what the arms create ----------------------------------------------------------------------------
def job_manifest(name: str, namespace: str, workers: int) -> dict[str, Any]:
    return {
        "apiVersion": "ludus.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "ludus-trainer:bench",
            "replicas": workers,
            "resources": {"cpu": "100m", "memory": "128Mi"},
            "template": {
                "tolerations": [{"key": "ludus.dev/fake-node", "operator": "Exists", "effect": "NoSchedule"}],
                "nodeSelector": {"ludus.dev/node-kind": "fake"},
            },
        },
    }


def bare_objects(name: str, namespace: str, workers: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Service and pods Ludus makes for this job, without the owner reference (no job exists)."""
    body = job_manifest(name, namespace, workers)
    body["metadata"].update(uid="00000000-0000-0000-0000-000000000000", generation=1)
    job = TrainingJob.model_validate(body)
    objects = [build_headless_service(job), pod_builders.build_rendezvous_pod(job)]
    objects += [pod_builders.build_worker_pod(job, i) for i in range(workers)]
    for obj in objects:
        obj["metadata"].pop("ownerReferences", None)
    return objects[0], objects[1:]


def collection(obj: dict[str, Any]) -> str:
    ns = obj["metadata"]["namespace"]
    return f"/api/v1/namespaces/{ns}/{obj['kind'].lower()}s"


# --- measuring -------------------------------------------------------------------------------------------
@dataclass
class Tracker:
    """What the watches saw, with this process's monotonic clock."""

    pods_seen: dict[str, float] = field(default_factory=dict)  # pod name -> first seen
    pods_running: dict[str, float] = field(default_factory=dict)
    pods_live: set[str] = field(default_factory=set)
    pod_job: dict[str, str] = field(default_factory=dict)
    jobs_running: dict[str, float] = field(default_factory=dict)
    jobs_live: set[str] = field(default_factory=set)
    services_live: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _follow(self, live: set[str], running: dict[str, float], kind: str, obj: dict[str, Any], now: float) -> str:
        """Track one object's existence and the first time it was seen Running; returns its name."""
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            live.discard(name)
        else:
            live.add(name)
            if (obj.get("status") or {}).get("phase") == "Running":
                running.setdefault(name, now)
        self.changed.set()
        return name

    def on_pod(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name = self._follow(self.pods_live, self.pods_running, kind, obj, now)
        if kind != "DELETED":
            self.pods_seen.setdefault(name, now)
            self.pod_job[name] = obj["metadata"].get("labels", {}).get("ludus.dev/job-name", "")

    def on_job(self, kind: str, obj: dict[str, Any], now: float) -> None:
        self._follow(self.jobs_live, self.jobs_running, kind, obj, now)

    def on_service(self, kind: str, obj: dict[str, Any], now: float) -> None:
        self._follow(self.services_live, {}, kind, obj, now)

    async def until(self, condition: Any, timeout: float = JOB_TIMEOUT_S) -> float:
        deadline = time.monotonic() + timeout
        while not condition():
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("benchmark arm did not converge")
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, 1.0))
            except TimeoutError:
                pass
        return time.monotonic()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def per_job_latency(tracker: Tracker, started: dict[str, float], pods_per_job: int) -> list[float]:
    """For each job: the moment its last pod appeared, minus the moment the job (or its first object) was made."""
    last: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    for pod, seen in tracker.pods_seen.items():
        job = tracker.pod_job.get(pod, "")
        last[job] = max(last[job], seen)
        count[job] += 1
    return [last[j] - t for j, t in started.items() if count[j] >= pods_per_job]


def creation_figures(
    verb: str, t0: float, all_running: float, pods_done: float, pods: int, latencies: list[float]
) -> dict[str, float]:
    """The timings both arms report, named by what started the clock (`apply` a job, `create` objects)."""
    return {
        f"first_{verb}_to_all_running_s": round(all_running - t0, 2),
        f"first_{verb}_to_all_pods_created_s": round(pods_done - t0, 2),
        "pods_created_per_s": round(pods / (pods_done - t0), 1),
        "job_created_to_all_pods_p50_s": round(percentile(latencies, 50), 3),
        "job_created_to_all_pods_p99_s": round(percentile(latencies, 99), 3),
    }


class ProcessSampler:
    """CPU seconds and peak RSS of one process, from /proc (VmHWM is the kernel's own peak)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def audit_counts(namespace: str, agents: tuple[str, ...], since: float, until: float) -> dict[str, int]:
    """Requests from these user agents on objects in `namespace` between two wall-clock times, by verb
    and resource, from every audit log file (the API server rotates them)."""
    counts: Counter[str] = Counter()
    for path in sorted((BENCH_ROOT / "logs").glob("audit*.log")):
        with path.open("rb") as handle:
            for line in handle:
                if namespace.encode() not in line:
                    continue
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                if ref.get("namespace") != namespace or not event.get("userAgent", "").startswith(agents):
                    continue
                received = dt.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
                if not since <= received.timestamp() <= until:
                    continue
                resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
                counts[f"{event['verb']} {resource}"] += 1
    return dict(sorted(counts.items()))


OPERATOR_AGENTS = ("ludus-operator", "kopf")
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def writes(counts: dict[str, int]) -> int:
    return sum(n for key, n in counts.items() if key.split()[0] in WRITE_VERBS)


def metric_sum(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


# --- the arms ----------------------------------------------------------------------------------------------
async def _watch_all(api: Api, namespace: str, tracker: Tracker, jobs: bool) -> list[asyncio.Task[None]]:
    tasks = [
        asyncio.create_task(api.watch(f"/api/v1/namespaces/{namespace}/pods", tracker.on_pod)),
        asyncio.create_task(api.watch(f"/api/v1/namespaces/{namespace}/services", tracker.on_service)),
    ]
    if jobs:
        tasks.append(asyncio.create_task(
            api.watch(f"/apis/ludus.dev/v1alpha1/namespaces/{namespace}/trainingjobs", tracker.on_job)))
    for task in tasks:
        task.add_done_callback(_loud)
    await asyncio.sleep(0.5)  # let the watches open before the first create
    return tasks


def _loud(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        print(f"a watch failed: {task.exception()!r}", file=sys.stderr, flush=True)


async def _namespace(api: Api, name: str) -> None:
    await api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # The ServiceAccount admission wants the default ServiceAccount before pods can be created.
    for _ in range(200):
        rsp = await api.call("GET", f"/api/v1/namespaces/{name}/serviceaccounts", ok=(404,))
        if rsp.get("items"):
            return
        await asyncio.sleep(0.1)


class OperatorArm:
    def __init__(self, cluster: Cluster, namespace: str, log: Path) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ludus", "operator", "--namespace", namespace, "--log-level", "warning",
             "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
             # The ceiling arm creates what every run since the first created: no NetworkPolicy either.
             "--network-policy", "off", *OPERATOR_ARGS],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "PYTHONPATH": str(REPO / "operator")},
            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.sampler = ProcessSampler(self.proc.pid)

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"operator exited; see {self.log}")
                try:
                    async with session.get(f"http://127.0.0.1:{self.health_port}/healthz") as rsp:
                        if rsp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("operator not healthy")

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as rsp:
                return await rsp.text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def run_operator_arm(api: Api, cluster: Cluster, n: int, w: int, tag: str) -> dict[str, Any]:
    namespace = f"op-{tag}"
    await _namespace(api, namespace)
    operator = OperatorArm(cluster, namespace, cluster.logs / f"bench-operator-{tag}.log")
    await operator.ready()
    tracker = Tracker()
    watches = await _watch_all(api, namespace, tracker, jobs=True)
    wall0 = time.time()
    cpu0 = operator.sampler.cpu_seconds()
    names = [f"job-{i:04d}" for i in range(n)]
    created: dict[str, float] = {}

    async def create(name: str) -> None:
        await api.call("POST", f"/apis/ludus.dev/v1alpha1/namespaces/{namespace}/trainingjobs",
                       job_manifest(name, namespace, w))
        created[name] = time.monotonic()

    t0 = time.monotonic()
    await asyncio.gather(*(create(name) for name in names))
    all_running = await tracker.until(lambda: len(tracker.jobs_running) >= n)
    pods_done = max(tracker.pods_seen.values())
    cpu_run = operator.sampler.cpu_seconds() - cpu0
    rss_run = operator.sampler.peak_rss_mb()
    wall_running = time.time()
    text = await operator.metrics()

    t_delete = time.monotonic()
    await asyncio.gather(*(api.call("DELETE", f"/apis/ludus.dev/v1alpha1/namespaces/{namespace}/trainingjobs/{j}",
                                    {"propagationPolicy": "Background"}, ok=(404,)) for j in names))
    clean = await tracker.until(lambda: not tracker.pods_live and not tracker.services_live and not tracker.jobs_live)
    cpu_total = operator.sampler.cpu_seconds() - cpu0
    rss_peak = operator.sampler.peak_rss_mb()
    text_after = await operator.metrics()
    wall_clean = time.time()
    operator.stop()
    for task in watches:
        task.cancel()
    await _drop_namespace(api, namespace)
    run_counts = audit_counts(namespace, OPERATOR_AGENTS, wall0, wall_running)
    all_counts = audit_counts(namespace, OPERATOR_AGENTS, wall0, wall_clean)
    latencies = per_job_latency(tracker, created, w + 1)
    pods = (w + 1) * n
    return {
        **creation_figures("apply", t0, all_running, pods_done, pods, latencies),
        "operator_cpu_s_to_running": round(cpu_run, 2),
        "operator_cpu_s_with_delete": round(cpu_total, 2),
        "operator_peak_rss_mb_at_running": round(rss_run, 1),
        "operator_peak_rss_mb": round(rss_peak, 1),
        "operator_requests_to_running": run_counts,
        "operator_requests_with_delete": all_counts,
        "operator_writes_per_job": round(writes(run_counts) / n, 2),
        "reconcile_errors": metric_sum(text_after, "ludus_reconcile_errors_total"),
        "reconcile_retries": metric_sum(text_after, "ludus_reconcile_retries_total"),
        "status_patches_per_job": round(run_counts.get("patch trainingjobs/status", 0) / n, 2),
        "delete_to_clean_s": round(clean - t_delete, 2),
        "reconcile_passes": metric_sum(text, "ludus_reconcile_duration_seconds_count"),
    }


async def run_bare_arm(api: Api, n: int, w: int, tag: str) -> dict[str, Any]:
    namespace = f"bare-{tag}"
    await _namespace(api, namespace)
    tracker = Tracker()
    watches = await _watch_all(api, namespace, tracker, jobs=False)
    wall0 = time.time()
    objects = [bare_objects(f"job-{i:04d}", namespace, w) for i in range(n)]
    started: dict[str, float] = {}

    async def create(service: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        started[service["metadata"]["name"]] = time.monotonic()
        await api.call("POST", collection(service), service)
        await asyncio.gather(*(api.call("POST", collection(p), p) for p in pods))

    t0 = time.monotonic()
    await asyncio.gather(*(create(s, p) for s, p in objects))
    pods = (w + 1) * n
    all_running = await tracker.until(lambda: len(tracker.pods_running) >= pods)
    pods_done = max(tracker.pods_seen.values())
    wall_running = time.time()

    t_delete = time.monotonic()
    deletions = [api.call("DELETE", f"{collection(s)}/{s['metadata']['name']}", ok=(404,)) for s, _ in objects]
    deletions += [api.call("DELETE", f"{collection(p)}/{p['metadata']['name']}", ok=(404,))
                  for _, ps in objects for p in ps]
    await asyncio.gather(*deletions)
    clean = await tracker.until(lambda: not tracker.pods_live and not tracker.services_live)
    for task in watches:
        task.cancel()
    await _drop_namespace(api, namespace)
    counts = audit_counts(namespace, (USER_AGENT,), wall0, wall_running)
    latencies = per_job_latency(tracker, started, w + 1)
    return {
        **creation_figures("create", t0, all_running, pods_done, pods, latencies),
        "client_requests": counts,
        "writes_per_job": round(writes(counts) / n, 2),
        "delete_to_clean_s": round(clean - t_delete, 2),
    }


# --- the cluster and the report ----------------------------------------------------------------------
def bench_cluster() -> Cluster:
    cluster = Cluster(BENCH_ROOT, kueue=False)  # the scale figures measure Ludus alone
    BENCH_ROOT.mkdir(parents=True, exist_ok=True)
    policy = BENCH_ROOT / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    audit = BENCH_ROOT / "logs" / "audit.log"
    os.environ["LUDUS_APISERVER_ARGS"] = " ".join([
        f"--audit-policy-file={policy}", f"--audit-log-path={audit}", "--audit-log-format=json",
        "--audit-log-mode=blocking", "--audit-log-maxsize=100000",
    ])
    os.environ["LUDUS_CONTROL_PLANE_QPS"] = str(QPS)
    cluster.down(quiet=True)
    for old in audit.parent.glob("audit*.log"):
        old.unlink()
    cluster.up()
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "crd" / "trainingjobs.ludus.dev.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/trainingjobs.ludus.dev", "--timeout=60s")
    nodes = []
    for i in range(BENCH_NODES):
        capacity = {"cpu": "1000", "memory": "4Ti", "pods": "1000"}
        nodes.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"bench-node-{i}", "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"type": "kwok", "ludus.dev/node-kind": "fake",
                                    "kubernetes.io/hostname": f"bench-node-{i}"}},
            "spec": {"taints": [{"key": "ludus.dev/fake-node", "value": "true", "effect": "NoSchedule"}]},
            "status": {"capacity": capacity, "allocatable": capacity},
        })
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(nodes))
    return cluster


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of every numeric figure; the request counts of the median run."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)):
            values = [r[key] for r in runs]
            out[key] = {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values),
                        "runs": values}
        else:
            out[key] = value
    return out


def machine() -> dict[str, Any]:
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.machine())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 1024 / 1024
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model, "memory_gib": round(mem, 1),
            "platform": platform.platform(), "python": platform.python_version()}


def package_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("kopf", "aiohttp", "pydantic", "prometheus-client", "ludus")}


def write_document(target: str, started: float, result: dict[str, Any], output: Path) -> None:
    """A benchmark's JSON: the make target that produced it (with its arguments), when, on what, and
    the result; what bench/report.py renders."""
    document = {
        "command": f"make {target}" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else ""),
        "date": time.strftime("%Y-%m-%d", time.gmtime(started)),
        "duration_s": round(time.time() - started),
        "machine": machine(),
        "versions": {**versions(), **package_versions()},
        "result": result,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")


async def _drop_namespace(api: Api, name: str) -> None:
    """Delete an arm's namespace and wait until it is gone, so the next arm never shares the cluster
    with the namespace controller still deleting the last one's Events."""
    await api.call("DELETE", f"/api/v1/namespaces/{name}", ok=(404,))
    deadline = time.monotonic() + NAMESPACE_GONE_TIMEOUT_S
    while time.monotonic() < deadline:
        if (await api.call("GET", f"/api/v1/namespaces/{name}", ok=(404,))).get("kind") != "Namespace":
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(SETTLE_S)  # the audit log's batch flushes; controllers finish their last syncs


async def bench(sizes: list[int], workers: int, runs: int) -> dict[str, Any]:
    cluster = bench_cluster()
    api = Api(cluster.kubeconfig)
    results: dict[str, Any] = {}
    try:
        for n in sizes:
            op_runs, bare_runs = [], []
            for run in range(runs + 1):  # run 0 is the warm-up, discarded
                tag = f"{n}-{run}"
                # Alternate which arm goes first so neither always meets a cluster still settling.
                arms = ["op", "bare"] if run % 2 else ["bare", "op"]
                for arm in arms:
                    if arm == "op":
                        result = await run_operator_arm(api, cluster, n, workers, tag)
                        (op_runs if run else []).append(result)
                    else:
                        result = await run_bare_arm(api, n, workers, tag)
                        (bare_runs if run else []).append(result)
                    print(f"N={n} run={run}{' (warm-up)' if not run else ''} {arm}: "
                          f"{json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)})}", flush=True)
            op, bare = summarise(op_runs), summarise(bare_runs)
            ratios = [o["first_apply_to_all_running_s"] / b["first_create_to_all_running_s"]
                      for o, b in zip(op_runs, bare_runs, strict=True)]
            results[str(n)] = {
                "operator": op,
                "ceiling": bare,
                "operator_over_ceiling": {"median": round(statistics.median(ratios), 3),
                                          "min": round(min(ratios), 3), "max": round(max(ratios), 3),
                                          "runs": [round(r, 3) for r in ratios]},
            }
    finally:
        await api.close()
        cluster.down(quiet=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 500, 1000], help="N: jobs per run, per size")
    parser.add_argument("--workers", type=int, default=4, help="W: workers per job")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per size (plus one warm-up)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--operator-args", default="", help="extra flags for `ludus operator`, e.g. '--workers 64'")
    args = parser.parse_args()
    OPERATOR_ARGS[:] = args.operator_args.split()
    started = time.time()
    results = asyncio.run(bench(args.jobs, args.workers, args.runs))
    document = {
        "command": "make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else ""),
        "date": time.strftime("%Y-%m-%d", time.gmtime(started)),
        "duration_s": round(time.time() - started),
        "machine": machine(),
        "versions": {**versions(), **package_versions()},
        "settings": {
            "workers_per_job": args.workers,
            "pods_per_job": args.workers + 1,
            "runs": args.runs,
            "warm_up_runs_discarded": 1,
            "bench_client_concurrency": CONCURRENCY,
            "operator": "its own process with the bench's admin identity; flags: "
                        + (" ".join(OPERATOR_ARGS) or "the defaults"),
            "identity": "Both arms use the same client certificate (system:masters: APF's exempt level)",
            "scheduler_and_controller_manager_qps": QPS,
            "etcd": "--unsafe-no-fsync",
            "api_server": "APF on, default inflight limits, "
            "metadata audit log of the admin user (blocking mode: none dropped)",
            "fake_nodes": f"{BENCH_NODES} kwok nodes x 1000 pods / 1000 CPUs, plus the harness's 4",
            "between_arms": f"the last arm's namespace deleted and gone, then {SETTLE_S:g} s",
        },
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
