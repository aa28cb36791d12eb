"""A real node in the built-in cluster: kubelet, containerd, CNI bridge, kube-proxy and CoreDNS.

Everything runs on this host as root, beside the kwok nodes:
- its own containerd instance (state under /var/lib/ludus, socket under /run/ludus), with the
  CRI plugin, runc, the CNI plugins from Debian, and a locally built pause image;
- a Linux bridge `ludus0` (10.244.0.1/24) that CNI's bridge plugin attaches pods to; pods get no
  route out of the host (no masquerade): they reach each other, the API server and CoreDNS only;
- kube-proxy (iptables) so `kubernetes.default.svc` works for in-cluster clients such as the operator;
- CoreDNS as a host process on 10.244.0.1:53 serving cluster.local from the API server;
- the kubelet, labelled `ludus.dev/node-kind=real`, authenticated with a system:node certificate;
- rancher's local-path provisioner, so that claims of the default StorageClass (`local-path`) bind to
  a directory on this node as they would to a disk on a real cluster.

Images are never pulled: `import_image` copies them from Docker into containerd's k8s.io namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from devcluster import processes
from devcluster.paths import HERE, binary


class ControlPlane(Protocol):
    """What a node needs of the cluster it joins (`devcluster.cluster.Cluster`), named here so that
    the node does not import the cluster that starts and stops it."""

    @property
    def root(self) -> Path: ...

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def pki(self) -> Path: ...

    @property
    def logs(self) -> Path: ...

    def state(self) -> dict[str, Any]: ...

    def save_state(self, state: dict[str, Any]) -> None: ...

    def spawn(self, name: str, argv: list[str]) -> int: ...

    def cert(self, name: str, subject: str, sans: str | None = None) -> None: ...

    def wait_for(self, check: Callable[[], object], timeout: float, what: str) -> None: ...

    def client_kubeconfig(self, port: int, cert: str) -> dict[str, Any]: ...

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]: ...


NODE_NAME = "ludus-node-0"
NODE_LABEL = ("ludus.dev/node-kind", "real")
BRIDGE = "ludus0"
NODE_IP = "10.244.0.1"
POD_SUBNET = "10.244.0.0/24"
# Every node's pods: each node has its own /24 of it, and its bridge routes to the others' on this host.
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
LAYER_GC_REF = "containerd.io/gc.ref.content.l."  # a manifest's hold on its layer blobs
IMPORT_PIN = "ludus.local/importing:replaced"  # names the image an import replaces until the import is done
STATE = Path(os.environ.get("LUDUS_NODE_STATE", "/var/lib/ludus"))
RUN = Path("/run/ludus")
CONTAINERD_SOCK = RUN / "containerd" / "containerd.sock"
PAUSE_IMAGE = "ludus.local/pause:3.10"
NODE_COMPONENTS = ("containerd", "kube-proxy", "coredns", "kubelet", "local-path-provisioner", "kube-router")
# Real nodes this host may run (python -m devcluster up --nodes N): node i is 10.244.<i>.1.
MAX_REAL_NODES = 8
# What a second (third, ...) node runs of its own; kube-proxy, CoreDNS and the provisioner serve every node.
EXTRA_NODE_COMPONENTS = ("containerd", "kubelet")
STORAGE_CLASS = "local-path"
PROVISIONER = "rancher.io/local-path"
PROVISIONER_NAMESPACE = "local-path-storage"
# Its helper pods (mkdir, rm -rf) need a shell: the trainer image has one and is always imported.
HELPER_IMAGE = "ludus-trainer:latest"


def _forward_rules(bridge: str) -> tuple[list[str], ...]:
    return (
        ["-i", bridge, "-j", "ACCEPT", "-m", "comment", "--comment", "ludus test node"],
        ["-o", bridge, "-j", "ACCEPT", "-m", "comment", "--comment", "ludus test node"],
    )


def negative_oom_allowed() -> bool:
    """Whether this host lets root lower a process's oom_score_adj (the kubelet's sandboxes ask -998)."""
    probe = subprocess.run(["sh", "-c", "echo -1 > /proc/self/oom_score_adj"], capture_output=True)
    return probe.returncode == 0


def host_problem() -> str | None:
    """Why this host cannot run a kubelet, or None when it can."""
    if os.geteuid() != 0:
        return "the real node needs root (kubelet, containerd and CNI manage namespaces and cgroups)"
    for tool in ("containerd", "runc", "ctr", "iptables", "ip", "docker", "ipset"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (scripts/host-packages.sh installs it)"
    if not Path("/usr/lib/cni/bridge").exists():
        return "the CNI plugins are missing (Debian's containernetworking-plugins)"
    cgroup = Path("/sys/fs/cgroup")
    v2_controllers = cgroup / "cgroup.controllers"
    has_memory = (cgroup / "memory").is_dir() or (
        v2_controllers.exists() and "memory" in v2_controllers.read_text(errors="ignore").split()
    )
    if not has_memory:
        return "no memory cgroup controller is available to the kubelet"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine answers, so the images cannot be built here (scripts/engine.sh)"
    return None


class RealNode:
    """The node's processes are recorded in the cluster's state, so `Cluster.down` stops them too.

    Node `index` 0 is the first; others (`python -m devcluster up --nodes 2`) are more kubelets with
    their own containerd, bridge `ludus<i>`, pod subnet 10.244.<i>.0/24, cgroup root and state, routed
    to each other through this host; they share the first node's kube-proxy, CoreDNS and provisioner."""

    def __init__(self, cluster: ControlPlane, index: int = 0) -> None:
        self.cluster = cluster
        if not 0 <= index < MAX_REAL_NODES:
            raise ValueError(f"real node {index}: this host runs nodes 0 to {MAX_REAL_NODES - 1}")
        self.index = index
        suffix = "" if index == 0 else f"-{index}"
        self.suffix = suffix
        self.dir = cluster.root / f"node{suffix}"
        self.name = f"ludus-node-{index}"
        self.bridge = f"ludus{index}"
        self.ip = f"10.244.{index}.1"
        self.subnet = f"10.244.{index}.0/24"
        self.state = STATE if index == 0 else STATE / f"node{suffix}"
        self.run = RUN if index == 0 else RUN / f"node{suffix}"
        self.sock = self.run / "containerd" / "containerd.sock"
        self.components = NODE_COMPONENTS if index == 0 else tuple(f"{c}{suffix}" for c in EXTRA_NODE_COMPONENTS)

    # --- lifecycle ------------------------------------------------------------------------------
    def is_up(self) -> bool:
        state = self.cluster.state()
        pids = state.get("pids", {})
        if not all(name in pids and processes.alive(pids[name]) for name in self.components):
            return False
        return self._node_ready()

    def up(self) -> None:
        problem = host_problem()
        if problem:
            raise RuntimeError(f"this host cannot run a real node: {problem}")
        if self.is_up():
            return
        started = time.monotonic()
        if self.index and not RealNode(self.cluster).is_up():
            raise RuntimeError("start the first real node before another")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._bridge()
        self._cgroup_root()
        self._certs()
        self._write_configs()
        self._spawn(f"containerd{self.suffix}", ["containerd", f"--config={self.dir / 'containerd.toml'}"])
        self.cluster.wait_for(lambda: self._ctr("version").returncode == 0, 60, "containerd")
        self.import_image(PAUSE_IMAGE)
        if self.index == 0:
            self._spawn("kube-proxy", [str(binary("kube-proxy")), f"--config={self.dir / 'kube-proxy.yaml'}",
                                       "--v=1"])
            self._spawn("coredns", [str(binary("coredns")), "-conf", str(self.dir / "Corefile")])
        self._spawn(f"kubelet{self.suffix}", [
            str(binary("kubelet")),
            f"--config={self.dir / 'kubelet.yaml'}",
            f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.ip}",
            f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]}",
            f"--root-dir={self.state / 'kubelet'}",
            "--v=1",
        ])
        log = self.cluster.logs / f"kubelet{self.suffix}.log"
        self.cluster.wait_for(self._node_ready, 120, f"node {self.name} Ready (log: {log})")
        if self.index == 0:
            self._storage()
            self._network_policies()
        print(f"real node {self.name} ready in {time.monotonic() - started:.1f}s", flush=True)

    def down(self) -> None:
        """Stop the kubelet first, then every container it started, then the runtime and the rest."""
        state = self.cluster.state()
        pids = state.get("pids", {})
        shared = ("coredns", "kube-proxy") if self.index == 0 else ()
        containerd = f"containerd{self.suffix}"
        for name in (f"kubelet{self.suffix}", *shared, *(("kube-router",) if self.index == 0 else ())):
            if name in pids:
                processes.stop(pids[name])
                processes.reap(pids.pop(name))
        if containerd in pids and processes.alive(pids[containerd]):
            self._kill_all_tasks()
            processes.stop(pids[containerd])
            processes.reap(pids.pop(containerd))
        pids.pop(containerd, None)
        self._kill_leftover_shims()
        self._kill_strays()
        self._unmount_pods()
        if self.index == 0:
            kube_proxy = binary("kube-proxy")
            subprocess.run([str(kube_proxy), "--cleanup"], capture_output=True)
            subprocess.run([str(binary("kube-router")), "--cleanup-config"], capture_output=True, timeout=60)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for rule in _forward_rules(self.bridge):
            subprocess.run(["iptables", "-D", "FORWARD", *rule], capture_output=True)
        if state:
            state["pids"] = pids
            self.cluster.save_state(state)

    def _network_policies(self) -> None:
        """kube-router's firewall, so NetworkPolicies are enforced for every real node's pods (not its
        router or service proxy: the CNI bridge and kube-proxy do those). One instance per network
        namespace: a second in this one would remove the first one's chains, so the first node's instance
        also polices the pods of the other nodes on this host (patches/kube-router-same-netns-nodes.patch),
        whose addresses it is given for every node that may join."""
        others = ",".join(f"10.244.{index}.1" for index in range(1, MAX_REAL_NODES))
        self._spawn("kube-router", [
            "env", f"KUBE_ROUTER_SAME_NETNS_NODE_IPS={others}",
            str(binary("kube-router")),
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--hostname-override={self.name}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--health-port=0", "--metrics-port=0",
            "--iptables-sync-period=30s",
            "--v=1",
        ])

    def _storage(self) -> None:
        """The default StorageClass and its provisioner: a claim binds when a pod first uses it
        (WaitForFirstConsumer), to a directory a helper pod makes under STATE/local-path."""
        base = STATE / "local-path"
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o777)  # the helper pods run as the image's user, never root
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(storage_objects(base)))
        self._spawn("local-path-provisioner", [
            str(binary("local-path-provisioner")), "start",
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--namespace={PROVISIONER_NAMESPACE}",
            "--configmap-name=local-path-config",
            "--service-account-name=default",
            f"--helper-image={HELPER_IMAGE}",
            f"--provisioner-name={PROVISIONER}",
            "--worker-threads=2",
        ])

    # --- images ---------------------------------------------------------------------------------
    def import_image(self, image: str) -> None:
        """Copy a Docker image into containerd, unless its name already holds that image, unpacked."""
        image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image], capture_output=True,
                                  text=True, check=True).stdout.strip()
        ref = image if "/" in image.split(":")[0] else f"docker.io/library/{image}"
        if self._holds(ref, image_id):
            return
        leases_before = self._leases()
        # ctr moves the name to the new image before unpacking it, on top of the layers both share; the
        # CRI records only the first image a name held by its ID, so nothing else may reference the old
        # one then, and a garbage collection in that window deletes a layer the unpack is building on
        # ("parent snapshot ... does not exist"). A second name keeps it until the import is done.
        self._ctr("images", "tag", "--force", ref, IMPORT_PIN)  # fails, harmlessly, on a first import
        try:
            save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
            assert save.stdout is not None
            ctr = subprocess.Popen(self._ctr_cmd("images", "import", "-"), stdin=save.stdout,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            save.stdout.close()  # only ctr reads the pipe: if it fails, docker save gets EPIPE instead of hanging
            _, err = ctr.communicate()
            save.wait()
        finally:
            self._ctr("images", "rm", IMPORT_PIN)
        if ctr.returncode != 0 or save.returncode != 0:
            raise RuntimeError(f"importing {image} failed: {err.decode()[-500:]}")
        self._keep_only_what_runs(ref, self._leases() - leases_before)

    def _holds(self, ref: str, image_id: str) -> bool:
        """Whether `ref` names the image with this Docker ID (its config's digest) and it is unpacked. Asked
        of containerd, not of a label set after an import: an import that fails moves the name anyway,
        to an image it did not finish unpacking, and a label would still vouch for the one before."""
        manifest = unpacked_target(self._ctr("images", "check", f"name=={ref}").stdout)
        if manifest is None:
            return False
        content = self._ctr("content", "get", manifest)
        return content.returncode == 0 and json.loads(content.stdout).get("config", {}).get("digest") == image_id

    def _keep_only_what_runs(self, ref: str, import_leases: set[str]) -> None:
        """Leave one unpacked copy of each image on disk, as containerd's `discard_unpacked_layers` does
        for pulls. An import would otherwise keep, per node, the trainer's 5 GB layer twice (the blob
        and its unpacked snapshot), plus every image it replaced: the CRI keeps each image under its ID
        too, and ctr holds what it imports under a lease that lasts a day."""
        manifest = next((digest for name, digest in self._images() if name == ref), None)
        if manifest is not None:
            layer_refs = [key for key in self._content_labels(manifest) if key.startswith(LAYER_GC_REF)]
            if layer_refs:
                self._ctr("content", "label", manifest, *(f"{key}=" for key in layer_refs))
        for alias in replaced_aliases(self._images()):
            self._ctr("images", "rm", alias)
        # Deleting a lease with --sync runs containerd's garbage collector now; a lease of our own makes
        # sure it runs even when the import left none.
        own = self._ctr("leases", "create").stdout.split()
        self._ctr("leases", "delete", "--sync", *sorted(import_leases), *own[:1])

    def _images(self) -> list[tuple[str, str]]:
        """(reference, target digest) of every image record in the node's k8s.io namespace."""
        lines = self._ctr("images", "ls").stdout.splitlines()[1:]
        return [(parts[0], parts[2]) for parts in (line.split() for line in lines) if len(parts) >= 3]

    def _content_labels(self, digest: str) -> dict[str, str]:
        for line in self._ctr("content", "ls").stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == digest:
                labels = parts[-1] if "=" in parts[-1] else ""
                return dict(item.split("=", 1) for item in labels.split(",") if "=" in item)
        return {}

    def _leases(self) -> set[str]:
        return set(self._ctr("leases", "ls", "-q").stdout.split())

    # --- helpers --------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        pid = self.cluster.spawn(name, argv)
        state = self.cluster.state()
        state.setdefault("pids", {})[name] = pid
        self.cluster.save_state(state)

    def _ctr_cmd(self, *args: str) -> list[str]:
        return ["ctr", f"--address={self.sock}", "--namespace=k8s.io", *args]

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._ctr_cmd(*args), capture_output=True, text=True)

    def _node_ready(self) -> bool:
        out = self.cluster.kubectl("get", "node", self.name, "-o", "json", check=False)
        if out.returncode != 0:
            return False
        conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _bridge(self) -> None:
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True).returncode != 0:
            subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", f"{self.ip}/24", "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        for key, value in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")):
            path = Path("/proc/sys") / key
            if path.exists():
                path.write_text(value)
        # Bridged pod traffic passes iptables' FORWARD chain, whose policy Docker sets to DROP.
        for rule in _forward_rules(self.bridge):
            if subprocess.run(["iptables", "-C", "FORWARD", *rule], capture_output=True).returncode != 0:
                subprocess.run(["iptables", "-I", "FORWARD", *rule], check=True)

    def _cgroup_root(self) -> None:
        """A node after the first keeps its pods under a cgroup of its own: two kubelets under one root
        would each remove the other's pod cgroups as orphans. cgroup v1 needs it in every hierarchy."""
        if self.index == 0:
            return
        base = Path("/sys/fs/cgroup")
        roots = [base / self.name] if (base / "cgroup.controllers").exists() else [
            d / self.name for d in base.iterdir() if d.is_dir() and not d.is_symlink() and d.name != "unified"]
        for root in roots:
            root.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):  # a cpuset cgroup starts empty; copy the parent's
                if (root / name).exists() and not (root / name).read_text().strip():
                    (root / name).write_text((root.parent / name).read_text())

    def _certs(self) -> None:
        pki = self.cluster.pki
        if not (pki / f"kubelet{self.suffix}.crt").exists():
            self.cluster.cert(f"kubelet{self.suffix}", f"/O=system:nodes/CN=system:node:{self.name}")
            self.cluster.cert(f"kubelet-serving{self.suffix}", f"/CN={self.name}", f"IP:{self.ip},DNS:{self.name}")
        if not (pki / "kube-proxy.crt").exists():
            self.cluster.cert("kube-proxy", "/CN=system:kube-proxy")

    def _write_configs(self) -> None:
        pki, port = self.cluster.pki, self.cluster.state()["ports"]["apiserver"]
        for name, cert in (("kubelet", f"kubelet{self.suffix}"), ("kube-proxy", "kube-proxy")):
            (self.dir / f"{name}.kubeconfig").write_text(yaml.safe_dump(self.cluster.client_kubeconfig(port, cert)))
        cni_dir = self.dir / "cni"
        (cni_dir / "net.d").mkdir(parents=True, exist_ok=True)
        (cni_dir / "net.d" / "10-ludus.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0",
            "name": "ludus",
            "plugins": [
                {
                    "type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                    # Routes to the Service range and to the other nodes' pods only: pods reach Services
                    # through kube-proxy, other nodes through this host, and have no default route off it.
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet, "gateway": self.ip}]],
                             "routes": [{"dst": SERVICE_CIDR}, {"dst": CLUSTER_CIDR}],
                             "dataDir": str(self.state / "cni-ipam")},
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }, indent=2))
        runc_binary = "" if negative_oom_allowed() else f'\n        BinaryName = "{HERE / "runc-oom-clamp"}"'
        (self.dir / "containerd.toml").write_text(f"""version = 2
root = "{self.state / 'containerd'}"
state = "{self.run / 'containerd-state'}"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.state / 'opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Some hosts (VM sandboxes, rootless) refuse negative oom_score_adj, which the kubelet asks for
  # pause containers (-998); clamp to containerd's own score instead of failing every sandbox.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false{runc_binary}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_dir / 'net.d'}"
""")
        (self.dir / "resolv.conf").write_text(f"nameserver {NODE_IP}\n")
        own = {} if self.index == 0 else {
            # Its own pods' cgroups and logs: each kubelet removes what it finds there and does not know.
            "cgroupRoot": f"/{self.name}", "podLogsDir": str(self.state / "pod-logs")}
        (self.dir / "kubelet.yaml").write_text(yaml.safe_dump({
            **own,
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.ip,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(pki / "ca.crt")}},
            "authorization": {"mode": "AlwaysAllow"},
            "tlsCertFile": str(pki / f"kubelet-serving{self.suffix}.crt"),
            "tlsPrivateKeyFile": str(pki / f"kubelet-serving{self.suffix}.key"),
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "clusterDNS": [NODE_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": str(self.dir / "resolv.conf"),
            "failSwapOn": False,
            "failCgroupV1": False,
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # A test node on a shared disk: tiny absolute thresholds, so a build elsewhere on the disk
            # never makes the kubelet garbage-collect the imported images in the middle of a test.
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "256Mi", "imagefs.available": "256Mi",
                             "nodefs.inodesFree": "1%"},
            "maxPods": 110,
            "podPidsLimit": -1,
        }))
        (self.dir / "kube-proxy.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.dir / "kube-proxy.kubeconfig")},
            "mode": "iptables",
            "clusterCIDR": CLUSTER_CIDR,
            "hostnameOverride": NODE_NAME,
            "conntrack": {"maxPerCore": 0},
            "metricsBindAddress": "127.0.0.1:10249",
            "healthzBindAddress": "",
        }))
        # cluster.local from the API server; every other name gets NXDOMAIN (not SERVFAIL, which
        # stops glibc's search-list walk), and nothing is forwarded off this host.
        (self.dir / "Corefile").write_text(f"""cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.cluster.kubeconfig} ludus-test
        pods insecure
    }}
    cache 5
}}
.:53 {{
    bind {NODE_IP}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
""")

    def _kill_all_tasks(self) -> None:
        for line in self._ctr("tasks", "ls", "-q").stdout.split():
            self._ctr("tasks", "kill", "-s", "SIGKILL", line)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self._ctr("tasks", "ls", "-q").stdout.strip():
            for line in self._ctr("tasks", "ls", "-q").stdout.split():
                self._ctr("tasks", "delete", "-f", line)
            time.sleep(0.2)

    def _kill_leftover_shims(self) -> None:
        marker = str(self.sock)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            except OSError:
                continue
            if "containerd-shim" in cmdline and marker in cmdline:
                try:
                    os.kill(int(entry), 9)
                except OSError:
                    pass

    def _kill_strays(self) -> None:
        """Node processes not in the state file (an interrupted `up`) still use our config paths."""
        markers = (str(self.dir), str(self.state / "kubelet"))
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            except OSError:
                continue
            if any(marker in cmdline for marker in markers) and "python" not in cmdline.split(" ")[0]:
                try:
                    os.kill(int(entry), 9)
                except OSError:
                    pass

    def _unmount_pods(self) -> None:
        """This node's mounts (the first node's state holds the others': they go down first)."""
        roots = (str(self.state), str(self.run))
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(roots)]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)


def unpacked_target(check: str) -> str | None:
    """The manifest digest `ctr images check name==REF` shows for REF when it is unpacked; None when the
    name is not there or its image is not (all) unpacked."""
    rows = [line.split() for line in check.splitlines()[1:] if line.strip()]
    if len(rows) != 1 or len(rows[0]) < 4 or rows[0][-1] != "true":
        return None
    return rows[0][2]


def replaced_aliases(images: list[tuple[str, str]]) -> list[str]:
    """The CRI names each image by its ID as well as by its tag; once the tag points at a newer
    image, the old ID's record is all that keeps the old image on disk."""
    named = {digest for name, digest in images if not name.startswith("sha256:")}
    return [name for name, digest in images if name.startswith("sha256:") and digest not in named]


def storage_objects(base: Path) -> list[dict[str, object]]:
    """The provisioner's namespace and configuration, and the StorageClass (the cluster's default)."""
    helper = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
        "spec": {"containers": [{"name": "helper", "image": HELPER_IMAGE, "imagePullPolicy": "IfNotPresent"}]},
    }
    config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(base)]}]}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROVISIONER_NAMESPACE}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "local-path-config", "namespace": PROVISIONER_NAMESPACE},
         "data": {"config.json": json.dumps(config),
                  "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
                  "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
                  "helperPod.yaml": yaml.safe_dump(helper)}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": STORAGE_CLASS,
                      "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": PROVISIONER, "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"},
    ]
