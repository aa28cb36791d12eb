"""The built-in test cluster: a real control plane on loopback, with kwok's fake nodes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real
binaries built from the Go module proxy (devcluster/build.sh); kwok plays
the kubelet for fake nodes. Everything listens on 127.0.0.1 only. etcd runs
with `--unsafe-no-fsync`, as envtest does: the data is thrown away anyway.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devcluster import processes
from devcluster.node import RealNode
from devcluster.objectstore import ObjectStore
from devcluster.paths import HERE, REPO, binary, free_port
from devcluster.tracking import TrackingServer

FAKE_NODE_TAINT = {"key": "ludus.dev/fake-node", "value": "true", "effect": "NoSchedule"}
FAKE_NODE_LABEL = ("ludus.dev/node-kind", "fake")
GPU_NODES = ("kwok-gpu-0", "kwok-gpu-1")
CPU_NODES = ("kwok-cpu-0", "kwok-cpu-1")
NODE_IP = "10.244.0.1"  # the real node's bridge address (devcluster/node.py)
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kube-scheduler-plugins")
# The gang scheduler's name: pods that name it are placed by scheduler-plugins' Coscheduling.
GANG_SCHEDULER = "scheduler-plugins-scheduler"
# Kueue: its namespace, API group, and the name TrainingJobs are registered under as an external framework.
KUEUE_NAMESPACE = "kueue-system"
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_EXTERNAL_FRAMEWORK = "TrainingJob.v1alpha1.ludus.dev"


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


@dataclass
class Cluster:
    """One cluster's files under `root`; its processes are recorded there so `down` finds them."""

    root: Path
    # Kueue's controller runs beside the control plane unless LUDUS_KUEUE=0 (`make cluster-up KUEUE=0`).
    kueue: bool = True

    @classmethod
    def default(cls) -> Cluster:
        return cls(Path(os.environ.get("LUDUS_CLUSTER_DIR", REPO / ".cluster")),
                   kueue=os.environ.get("LUDUS_KUEUE", "1") != "0")

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    # --- lifecycle -----------------------------------------------------------------------------
    def is_up(self) -> bool:
        state = self.state()
        if not state or not all(processes.alive(p) for p in state.get("pids", {}).values()):
            return False
        try:
            return self._readyz(state["ports"]["apiserver"])
        except OSError:
            return False

    def up(self) -> None:
        if self.is_up():
            print(f"cluster already running; export KUBECONFIG={self.kubeconfig}", file=sys.stderr)
            return
        self.down(quiet=True)
        try:
            self._start()
        except BaseException:
            self.down(quiet=True)
            raise

    def _start(self) -> None:
        started = time.monotonic()
        binaries = {name: binary(name) for name in COMPONENTS}
        binary("kubectl")
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        ports = {"etcd": free_port(), "etcd_peer": free_port(), "apiserver": free_port(), "kwok": free_port()}
        self._make_pki()
        self._write_kubeconfigs(ports["apiserver"])
        pids: dict[str, int] = {}
        self.save_state({**self.state(), "ports": ports, "pids": pids})

        pids["etcd"] = self.spawn("etcd", [
            str(binaries["etcd"]),
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ports['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{ports['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
            f"--initial-cluster=default=http://127.0.0.1:{ports['etcd_peer']}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ])
        self.save_state({**self.state(), "ports": ports, "pids": pids})
        pki = self.pki
        pids["kube-apiserver"] = self.spawn("kube-apiserver", [
            str(binaries["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            # Pods on the real node reach the API server through kube-proxy at the bridge address
            # (devcluster/node.py); clients on this host use 127.0.0.1.
            "--bind-address=0.0.0.0",
            f"--advertise-address={NODE_IP}",
            f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--cert-dir={self.root / 'apiserver-certs'}",
            "--profiling=false",
            "--v=1",
            *self._extra_args("APISERVER"),
        ])
        self.save_state({**self.state(), "ports": ports, "pids": pids})
        self.wait_for(lambda: self._readyz(ports["apiserver"]), 90, "kube-apiserver /readyz")

        scheduler_config = self.root / "scheduler.yaml"
        scheduler_config.write_text(yaml.safe_dump({
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {
                "kubeconfig": str(self.root / "kube-scheduler.kubeconfig"),
                "qps": self._client_qps(),
                "burst": 2 * self._client_qps(),
            },
            "leaderElection": {"leaderElect": False},
        }))
        pids["kube-scheduler"] = self.spawn("kube-scheduler", [
            str(binaries["kube-scheduler"]),
            f"--config={scheduler_config}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--v=1",
        ])
        # A second scheduler for gangs: pods that name it (and their PodGroup) are placed all or none.
        self.kubectl("apply", "-f", str(binary("podgroups-crd.yaml")))
        gang_config = self.root / "scheduler-plugins.yaml"
        gang_config.write_text(yaml.safe_dump({
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            # It reads PodGroups, which the built-in scheduler's identity may not: the admin's.
            "clientConnection": {"kubeconfig": str(self.kubeconfig), "qps": self._client_qps(),
                                 "burst": 2 * self._client_qps()},
            "leaderElection": {"leaderElect": False},
            "profiles": [{
                "schedulerName": GANG_SCHEDULER,
                "plugins": {"multiPoint": {"enabled": [{"name": "Coscheduling"}]},
                            "queueSort": {"enabled": [{"name": "Coscheduling"}], "disabled": [{"name": "*"}]}},
                "pluginConfig": [{"name": "Coscheduling", "args": {"permitWaitingTimeSeconds": 10}}],
            }],
        }))
        # Restarted when it exits, as its Deployment would be: a scheduler exits on purpose when it finds
        # its cache inconsistent with the API server (it does after the API server outage test).
        pids["kube-scheduler-plugins"] = self.spawn("kube-scheduler-plugins", [
            "sh", "-c", 'while :; do "$0" "$@"; echo "exited $?; restarting" >&2; sleep 1; done',
            str(binaries["kube-scheduler-plugins"]),
            f"--config={gang_config}",
            # A gang rejected at Permit is retried only on events its plugin registered (a pod or a
            # PodGroup added), not when capacity frees up: look again at least this often.
            "--pod-max-in-unschedulable-pods-duration=10s",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--v=1",
        ])
        pids["kube-controller-manager"] = self.spawn("kube-controller-manager", [
            str(binaries["kube-controller-manager"]),
            f"--kubeconfig={self.root / 'kube-controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--kube-api-qps={self._client_qps()}",
            f"--kube-api-burst={2 * self._client_qps()}",
            "--concurrent-gc-syncs=20",
            "--v=1",
        ])
        pids["kwok"] = self.spawn("kwok", [
            str(binaries["kwok"]),
            f"--kubeconfig={self.root / 'kwok.kubeconfig'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--config={HERE / 'config' / 'kwok-stages.yaml'}",
            f"--config={HERE / 'config' / 'kwok-options.yaml'}",
            f"--server-address=127.0.0.1:{ports['kwok']}",
            "--node-lease-duration-seconds=40",
        ])
        self.save_state({**self.state(), "ports": ports, "pids": pids})
        if self.kueue:
            self._start_kueue(ports, pids)
        self.kubectl("apply", "-f", "-", input=self.fake_nodes_yaml())
        self.wait_for(self._fake_nodes_ready, 60, "fake nodes Ready")
        self.wait_for(lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
                   60, "the default ServiceAccount")
        print(
            f"cluster up in {time.monotonic() - started:.1f}s\n  export KUBECONFIG={self.kubeconfig}",
            file=sys.stderr,
        )

    def _start_kueue(self, ports: dict[str, int], pids: dict[str, int]) -> None:
        """Kueue's controller as a host process: its CRDs and its webhooks (for Kueue's own objects; the
        API server calls them on 127.0.0.1 with our CA) from the same pinned module."""
        for name in ("kueue_webhook", "kueue_health", "kueue_metrics"):
            ports[name] = free_port()
        crds = binary("crds")
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
        # Kueue reads its API from discovery once at start: the CRDs must be served before it starts.
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
        self.kubectl("create", "namespace", KUEUE_NAMESPACE, check=False)
        certs = self.root / "kueue-certs"
        certs.mkdir(exist_ok=True)
        shutil.copy(self.pki / "kueue-webhook.crt", certs / "tls.crt")
        shutil.copy(self.pki / "kueue-webhook.key", certs / "tls.key")
        config = self.root / "kueue.yaml"
        config.write_text(yaml.safe_dump({
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": KUEUE_NAMESPACE,
            "health": {"healthProbeBindAddress": f"127.0.0.1:{ports['kueue_health']}"},
            "metrics": {"bindAddress": f"127.0.0.1:{ports['kueue_metrics']}"},
            "webhook": {"port": ports["kueue_webhook"], "host": "127.0.0.1", "certDir": str(certs)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "clientConnection": {"qps": 200, "burst": 400},
            # Its visibility API (pending workloads) would need the API server's aggregation layer.
            "featureGates": {"VisibilityOnDemand": False},
            # TrainingJobs are an external framework: Ludus creates and follows their Workloads.
            "integrations": {"frameworks": ["batch/job"], "externalFrameworks": [KUEUE_EXTERNAL_FRAMEWORK]},
            # A manager cluster's MultiKueue dispatches TrainingJobs through its generic adapter
            # (devcluster/multicluster.py connects a worker cluster; without one this is inert).
            "multiKueue": {"externalFrameworks": [{"name": KUEUE_EXTERNAL_FRAMEWORK}]},
        }))
        pids["kueue"] = self.spawn("kueue", [
            "env", f"KUBECONFIG={self.kubeconfig}", f"KUEUE_METRICS_CERT_DIR={certs}",
            str(binary("kueue")), f"--config={config}", "--zap-log-level=2",
        ])
        self.save_state({**self.state(), "ports": ports, "pids": pids})
        self.wait_for(lambda: _http_ok(f"http://127.0.0.1:{ports['kueue_health']}/readyz"), 90, "Kueue /readyz")
        self.kubectl("apply", "-f", "-", input=self._kueue_webhooks(ports["kueue_webhook"]))

    def _kueue_webhooks(self, port: int) -> str:
        """Kueue's webhook configurations for its own API group, pointed at the host process."""
        ca = base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()
        docs = []
        for doc in yaml.safe_load_all(binary("webhooks.yaml").read_text()):
            if not doc:
                continue
            hooks = [h for h in doc["webhooks"] if any(KUEUE_GROUP in r["apiGroups"] for r in h["rules"])]
            for hook in hooks:
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca}
            doc["metadata"]["name"] = f"kueue-{doc['metadata']['name']}"
            doc["webhooks"] = hooks
            docs.append(doc)
        return yaml.safe_dump_all(docs)

    def object_store(self) -> ObjectStore:
        """The S3-compatible store beside this cluster (started by `make demo` and the e2e fixtures), whose
        pods reach it at the first node's bridge address."""
        return ObjectStore(self.root / "objectstore")

    def tracking_server(self) -> TrackingServer:
        """MLflow's tracking server beside this cluster (its runs kept with the cluster's files)."""
        return TrackingServer(self.root / "mlflow")

    def down(self, *, quiet: bool = False) -> None:
        self.object_store().down()
        self.tracking_server().down()
        worker = self.root / "worker"  # devcluster/multicluster.py's second control plane, if it ran
        if (worker / "state.json").exists():
            Cluster(worker).down(quiet=quiet)
        pids = self.state().get("pids", {})
        extra = sorted({int(name.rsplit("-", 1)[1]) for name in pids
                        if name.startswith(("kubelet-", "containerd-"))}, reverse=True)
        for index in extra:  # the other nodes first: the first node's state holds theirs
            RealNode(self, index).down()
        if any(name in pids for name in ("kubelet", "containerd")):
            RealNode(self).down()
        state = self.state()
        pids = state.get("pids", {})
        # Stop in reverse order so nothing logs errors about a vanished API server.
        for name in reversed(list(pids)):
            processes.stop(pids[name])
        for name in reversed(list(pids)):
            processes.reap(pids[name])
        for sub in ("etcd", "state.json"):
            path = self.root / sub
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        if not quiet:
            print("cluster down", file=sys.stderr)

    # --- helpers --------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(cmd, input=input, text=True, capture_output=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def _extra_args(self, component: str) -> list[str]:
        """LUDUS_<COMPONENT>_ARGS adds flags (the benchmark raises limits this way, for every arm alike)."""
        raw = os.environ.get(f"LUDUS_{component}_ARGS", "")
        return raw.split() if raw else []

    @staticmethod
    def _client_qps() -> int:
        """kube-scheduler's and kube-controller-manager's client rate, raised alike (LUDUS_CONTROL_PLANE_QPS)."""
        return int(os.environ.get("LUDUS_CONTROL_PLANE_QPS", "500"))

    def wait_for(self, check: Callable[[], object], timeout: float, what: str) -> None:
        """Poll `check` until it is true; a time-out names this cluster's logs."""
        processes.wait_until(check, timeout, what, self.logs)

    def save_state(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state, indent=2))

    def restart(self, name: str) -> None:
        """Stop one component and start it again with the same command (tests of outages use it)."""
        state = self.state()
        processes.stop(state["pids"][name])
        processes.reap(state["pids"][name])
        state = self.state()
        state["pids"][name] = self.spawn(name, state["argv"][name])
        self.save_state(state)
        if name == "kube-apiserver":
            self.wait_for(lambda: self._readyz(state["ports"]["apiserver"]), 90, "kube-apiserver /readyz")

    def spawn(self, name: str, argv: list[str]) -> int:
        state = self.state()
        state.setdefault("argv", {})[name] = argv
        if state.get("ports"):
            self.save_state(state)
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at once; see {self.logs / (name + '.log')}")
        return proc.pid

    def _readyz(self, port: int) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=context, timeout=2) as resp:
            return bool(resp.status == 200)

    def _fake_nodes_ready(self) -> bool:
        out = self.kubectl("get", "nodes", "-l", "=".join(FAKE_NODE_LABEL), "-o", "json").stdout
        nodes = json.loads(out)["items"]
        ready = [
            n for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        ]
        return len(ready) == len(GPU_NODES) + len(CPU_NODES)

    @staticmethod
    def fake_nodes_yaml() -> str:
        docs = []
        for name in (*CPU_NODES, *GPU_NODES):
            gpu = name in GPU_NODES
            capacity = {"cpu": "64" if gpu else "32", "memory": "512Gi" if gpu else "256Gi", "pods": "110"}
            if gpu:
                capacity["nvidia.com/gpu"] = "8"
            labels = {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                FAKE_NODE_LABEL[0]: FAKE_NODE_LABEL[1],
            }
            if gpu:
                labels["nvidia.com/gpu.present"] = "true"
            docs.append({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
                "spec": {"taints": [FAKE_NODE_TAINT]},
                "status": {"capacity": capacity, "allocatable": capacity},
            })
        return yaml.safe_dump_all(docs)

    # --- certificates ---------------------------------------------------------------------------
    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.pki)

    def _make_pki(self) -> None:
        """A throwaway CA, the API server's serving cert, one client cert per component."""
        if (self.pki / "done-v3").exists():
            return
        # A new CA invalidates every certificate signed by the old one, the real node's among them.
        shutil.rmtree(self.pki, ignore_errors=True)
        self.pki.mkdir(parents=True, exist_ok=True)
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                      "-days", "3650", "-subj", "/CN=ludus-test-ca")
        self._openssl("genrsa", "-out", "sa.key", "2048")
        self._openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        sans = (f"IP:127.0.0.1,IP:10.96.0.1,IP:{NODE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")
        self.cert("apiserver", "/CN=kube-apiserver", sans)
        self.cert("admin", "/O=system:masters/CN=ludus-admin")
        self.cert("kube-controller-manager", "/CN=system:kube-controller-manager")
        self.cert("kube-scheduler", "/CN=system:kube-scheduler")
        self.cert("kwok", "/O=system:masters/CN=kwok")
        # Kueue's webhook server, which the API server calls on 127.0.0.1.
        self.cert("kueue-webhook", "/CN=kueue-webhook", "IP:127.0.0.1,DNS:localhost")
        (self.pki / "done-v3").write_text("ok")

    def cert(self, name: str, subject: str, sans: str | None = None) -> None:
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                      "-subj", subject)
        ext = ["-extfile", f"{name}.ext"] if sans else []
        if sans:
            (self.pki / f"{name}.ext").write_text(f"subjectAltName={sans}\n")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                      "-out", f"{name}.crt", "-days", "3650", *ext)

    def client_kubeconfig(self, port: int, cert: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "ludus-test", "cluster": {
                "server": f"https://127.0.0.1:{port}", "certificate-authority": str(self.pki / "ca.crt")}}],
            "users": [{"name": cert, "user": {
                "client-certificate": str(self.pki / f"{cert}.crt"),
                "client-key": str(self.pki / f"{cert}.key")}}],
            "contexts": [{"name": "ludus-test", "context": {"cluster": "ludus-test", "user": cert}}],
            "current-context": "ludus-test",
        }

    def _write_kubeconfigs(self, port: int) -> None:
        self.kubeconfig.write_text(yaml.safe_dump(self.client_kubeconfig(port, "admin")))
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            (self.root / f"{name}.kubeconfig").write_text(yaml.safe_dump(self.client_kubeconfig(port, name)))
