"""Kubernetes' Pod Security Standards, checked on the pods Ludus builds before it creates them.

A namespace without Pod Security labels admits any pod, and a TrainingJob's template reaches the pod
(volumes, annotations, the user it runs as). The platform team sets one level for the operator
(`--pod-security`, Helm `podSecurity`); a job whose pods would exceed it is refused with InvalidSpec
naming the TrainingJob field, before any pod exists. The rules are those of
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.30), over the fields a pod
can carry; `restricted` also refuses what Ludus itself locks down (the API token, a writable root).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

PodSecurityLevel = Literal["privileged", "baseline", "restricted"]
LEVELS: Final[tuple[PodSecurityLevel, ...]] = ("privileged", "baseline", "restricted")

_BASELINE_CAPABILITIES: Final = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
_SAFE_SYSCTLS: Final = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
_SELINUX_TYPES: Final = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
_RESTRICTED_VOLUMES: Final = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
})
_APPARMOR_PREFIX: Final = "container.apparmor.security.beta.kubernetes.io/"


@dataclass(frozen=True)
class Violation:
    """One field of a pod that its level forbids: where (in the pod) and why."""

    path: str
    message: str


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(spec.get(key) or []):
            yield f"spec.{key}[{i}]", container


def _seccomp_unconfined(context: Mapping[str, Any] | None) -> bool:
    return ((context or {}).get("seccompProfile") or {}).get("type") == "Unconfined"


def _selinux(path: str, context: Mapping[str, Any] | None) -> Iterator[Violation]:
    options = (context or {}).get("seLinuxOptions") or {}
    if options.get("type", "") not in _SELINUX_TYPES:
        yield Violation(f"{path}.seLinuxOptions.type", "a custom SELinux type is not allowed")
    for key in ("user", "role"):
        if options.get(key):
            yield Violation(f"{path}.seLinuxOptions.{key}", f"a custom SELinux {key} is not allowed")


def _baseline_pod(pod: Mapping[str, Any]) -> Iterator[Violation]:
    spec = pod.get("spec") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            yield Violation(f"spec.{key}", "host namespaces are not allowed")
    context = spec.get("securityContext") or {}
    if ((context.get("windowsOptions") or {}).get("hostProcess")):
        yield Violation("spec.securityContext.windowsOptions.hostProcess", "host processes are not allowed")
    if _seccomp_unconfined(context):
        yield Violation("spec.securityContext.seccompProfile.type", "an Unconfined seccomp profile is not allowed")
    if ((context.get("appArmorProfile") or {}).get("type")) == "Unconfined":
        yield Violation("spec.securityContext.appArmorProfile.type", "an Unconfined AppArmor profile is not allowed")
    yield from _selinux("spec.securityContext", context)
    for i, sysctl in enumerate(context.get("sysctls") or []):
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            yield Violation(f"spec.securityContext.sysctls[{i}].name", f"sysctl {sysctl.get('name')!r} is not safe")
    for i, volume in enumerate(spec.get("volumes") or []):
        if "hostPath" in volume:
            yield Violation(f"spec.volumes[{i}].hostPath", "hostPath volumes are not allowed")
    for key, value in ((pod.get("metadata") or {}).get("annotations") or {}).items():
        if key.startswith(_APPARMOR_PREFIX) and value != "runtime/default" and not str(value).startswith("localhost/"):
            yield Violation(f"metadata.annotations[{key}]", "an AppArmor profile other than runtime/default or "
                            "localhost/* is not allowed")


def _baseline_container(path: str, container: Mapping[str, Any]) -> Iterator[Violation]:
    context = container.get("securityContext") or {}
    if context.get("privileged"):
        yield Violation(f"{path}.securityContext.privileged", "privileged containers are not allowed")
    if ((context.get("windowsOptions") or {}).get("hostProcess")):
        yield Violation(f"{path}.securityContext.windowsOptions.hostProcess", "host processes are not allowed")
    added = set((context.get("capabilities") or {}).get("add") or []) - _BASELINE_CAPABILITIES
    if added:
        yield Violation(f"{path}.securityContext.capabilities.add", f"capabilities {sorted(added)} are not allowed")
    if context.get("procMount", "Default") != "Default":
        yield Violation(f"{path}.securityContext.procMount", "only the Default /proc mount is allowed")
    if _seccomp_unconfined(context):
        yield Violation(f"{path}.securityContext.seccompProfile.type", "an Unconfined seccomp profile is not allowed")
    if ((context.get("appArmorProfile") or {}).get("type")) == "Unconfined":
        yield Violation(f"{path}.securityContext.appArmorProfile.type", "an Unconfined AppArmor profile is not allowed")
    yield from _selinux(f"{path}.securityContext", context)
    for i, port in enumerate(container.get("ports") or []):
        if port.get("hostPort"):
            yield Violation(f"{path}.ports[{i}].hostPort", "host ports are not allowed")


def _restricted(pod: Mapping[str, Any]) -> Iterator[Violation]:
    spec = pod.get("spec") or {}
    for i, volume in enumerate(spec.get("volumes") or []):
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            kind = sorted(kinds - _RESTRICTED_VOLUMES)[0]
            yield Violation(f"spec.volumes[{i}].{kind}", f"{kind} volumes are not allowed")
    pod_context = spec.get("securityContext") or {}
    if pod_context.get("runAsUser") == 0:
        yield Violation("spec.securityContext.runAsUser", "running as root (UID 0) is not allowed")
    if spec.get("automountServiceAccountToken") is not False:
        yield Violation("spec.automountServiceAccountToken", "the ServiceAccount token is not mounted at this level")
    for path, container in _containers(spec):
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            yield Violation(f"{path}.securityContext.allowPrivilegeEscalation", "privilege escalation must be off")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            yield Violation(f"{path}.securityContext.runAsNonRoot", "containers must run as non-root")
        if context.get("runAsUser") == 0:
            yield Violation(f"{path}.securityContext.runAsUser", "running as root (UID 0) is not allowed")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield Violation(f"{path}.securityContext.seccompProfile.type", "a RuntimeDefault or Localhost seccomp "
                            "profile is required")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            yield Violation(f"{path}.securityContext.capabilities.drop", "capabilities must drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            yield Violation(f"{path}.securityContext.capabilities.add", "only NET_BIND_SERVICE may be added")
        if context.get("readOnlyRootFilesystem") is not True:
            yield Violation(f"{path}.securityContext.readOnlyRootFilesystem", "the root file system is read-only "
                            "at this level")


def pod_violations(pod: Mapping[str, Any], level: PodSecurityLevel) -> list[Violation]:
    """What in `pod` the level forbids (nothing at `privileged`)."""
    if level == "privileged":
        return []
    spec = pod.get("spec") or {}
    found = list(_baseline_pod(pod))
    for path, container in _containers(spec):
        found.extend(_baseline_container(path, container))
    if level == "restricted":
        found.extend(_restricted(pod))
    return found


def _job_field(path: str, pod: Mapping[str, Any], template_volumes: int) -> str:
    """The TrainingJob field a pod's violating field comes from (the template's volumes are last)."""
    if path.startswith("spec.volumes["):
        index, rest = path[len("spec.volumes["):].split("]", 1)
        first_own = len((pod.get("spec") or {}).get("volumes") or []) - template_volumes
        if int(index) >= first_own:
            return f"spec.template.volumes[{int(index) - first_own}]{rest}"
    if path == "spec.automountServiceAccountToken":
        return "spec.template.automountServiceAccountToken"
    if path.endswith("securityContext.readOnlyRootFilesystem"):
        return "spec.template.readOnlyRootFilesystem"
    if path == "spec.securityContext.runAsUser":
        return "spec.template.runAsUser"
    if path.startswith("metadata.annotations["):
        return "spec.template." + path[len("metadata."):]
    return f"the pod's {path}"


def refusal(pods: Sequence[Mapping[str, Any]], level: PodSecurityLevel, template_volumes: int) -> str | None:
    """Why a job's pods exceed `level`, naming the TrainingJob field; None when they do not."""
    for pod in pods:
        for violation in pod_violations(pod, level):
            field = _job_field(violation.path, pod, template_volumes)
            return f"{field}: {violation.message} (the operator's pod security level is {level})"
    return None
