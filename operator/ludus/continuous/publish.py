"""The pod that publishes a promoted model on the claim, and its outcome read back (pure).

The operator never mounts claims, so a short pod (the trainer image, `ludus_trainer.publish`) does
it: it checks the run's exported weights against the SHA-256 in their metadata, then points the
`champion` link at the run's model directory with one rename. A reader of `champion` sees the old
model or the new one, never a mix; the model files themselves are never copied or changed. In object
storage the pod reads the model with the template's keys and writes `champion.json` in one PUT instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining
from ludus.builders.labels import controller_reference
from ludus.builders.pods import (
    CACHE_ENV,
    CONTAINER_SECURITY_CONTEXT,
    TMP_VOLUME,
    TMP_VOLUME_MOUNT,
    registered_model_name,
    store_env,
    tracker_access,
)
from ludus.continuous.runs import CHAMPION_LINK, CHAMPION_POINTER, base_dir, claim_of, store_uri

STORE_MOUNT: Final = "/ludus/store"
CONTAINER: Final = "publish"


def publish_pod_name(ct: str, run_number: int) -> str:
    return f"{ct}-publish-{run_number}"


def record_pod_name(ct: str, run_number: int) -> str:
    return f"{ct}-record-{run_number}"


def _registry(ct: ContinuousTraining, tracking_run: str | None, reason: str) -> tuple[list[str], list[dict[str, Any]]]:
    """With spec.template.tracking and the run's MLflow run known: the arguments and access that move the
    registered model's champion alias to the run's version after the switch."""
    tracking = ct.spec.template.tracking
    if tracking is None or tracking.uri is None or not tracking_run:
        return [], []
    name = registered_model_name(ct.metadata.namespace, ct.metadata.name)
    return (["--registered-model", name, "--tracking-run", tracking_run, "--reason", reason or "Promoted"],
            tracker_access(tracking))


def _publisher(ct: ContinuousTraining, run: str, base: str | None, tracking_run: str | None = None,
               reason: str = "") -> dict[str, Any]:
    """On a claim: switch the link on the mounted claim. In object storage (`base`): verify the model with the
    template's keys and write the pointer in one PUT."""
    t = ct.spec.template
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": t.image,
        "imagePullPolicy": t.image_pull_policy,
        "command": ["python", "-m", "ludus_trainer.publish", "--root", f"{STORE_MOUNT}/{base_dir(ct)}",
                    "--run", run, "--link", CHAMPION_LINK],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": dict(CONTAINER_SECURITY_CONTEXT),
        "terminationMessagePath": c.TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "store", "mountPath": STORE_MOUNT}, dict(TMP_VOLUME_MOUNT)],
    }
    if base is not None:
        container["command"] = ["python", "-m", "ludus_trainer.publish", "--uri", base, "--run", run,
                                "--pointer", CHAMPION_POINTER]
        container["env"] = [*store_env(t.checkpoint), *CACHE_ENV]
        container["volumeMounts"] = [dict(TMP_VOLUME_MOUNT)]
    args, access = _registry(ct, tracking_run, reason)
    if args:
        container["command"] = [*container["command"], *args]
        container["env"] = [*container.get("env", []), *access]
    return container


def publish_pod(ct: ContinuousTraining, run: str, run_number: int, tracking_run: str | None = None,
                reason: str = "") -> dict[str, Any]:
    """A pod that switches `<subPath>/champion` to `runs/<run>/model` (or writes `champion.json` pointing at
    `runs/<run>/model` in object storage), then moves MLflow's champion alias, owned by the resource."""
    base = store_uri(ct)
    claim = [{"name": "store", "persistentVolumeClaim": {"claimName": claim_of(ct)}}] if base is None else []
    return _owned_pod(ct, publish_pod_name(ct.metadata.name, run_number), run,
                      _publisher(ct, run, base, tracking_run, reason), [*claim, dict(TMP_VOLUME)])


def record_pod(ct: ContinuousTraining, run: str, run_number: int, tracking_run: str | None, reason: str,
               message: str) -> dict[str, Any] | None:
    """A pod that tags a rejected run's version of the registered model with why (None without tracking or
    without the run's MLflow run)."""
    args, access = _registry(ct, tracking_run, reason)
    if not args:
        return None
    t = ct.spec.template
    container: dict[str, Any] = {
        "name": CONTAINER, "image": t.image, "imagePullPolicy": t.image_pull_policy,
        "command": ["python", "-m", "ludus_trainer.registry", *args, "--message", message[:1000]],
        "env": [*access, *CACHE_ENV],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": dict(CONTAINER_SECURITY_CONTEXT),
        "terminationMessagePath": c.TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [dict(TMP_VOLUME_MOUNT)],
    }
    return _owned_pod(ct, record_pod_name(ct.metadata.name, run_number), run, container, [dict(TMP_VOLUME)])


def _owned_pod(ct: ContinuousTraining, name: str, run: str, container: dict[str, Any],
               volumes: list[dict[str, Any]]) -> dict[str, Any]:
    """A short pod of the resource's own: the template's user and placement, no API token."""
    t = ct.spec.template
    security: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if t.template.run_as_user is not None:
        uid = t.template.run_as_user
        security.update({"runAsUser": uid, "runAsGroup": uid, "fsGroup": uid})
    meta = ct.metadata
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": security,
        "containers": [container],
        "automountServiceAccountToken": False,
        "volumes": volumes,
    }
    for key, value in (("nodeSelector", t.template.node_selector), ("tolerations", t.template.tolerations),
                       ("affinity", t.template.affinity)):
        if value:
            spec[key] = value.copy() if isinstance(value, dict) else list(value)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": {c.LABEL_CT: meta.name, c.LABEL_PUBLISH: run, c.LABEL_MANAGED_BY: c.MANAGED_BY},
            "ownerReferences": [controller_reference(c.CT_KIND, meta)],
        },
        "spec": spec,
    }


def _registry_outcome(report: Mapping[str, Any]) -> str:
    """The pod's word on the alias, checked: a version number, or why not (cut short)."""
    version = report.get("registryVersion")
    if isinstance(version, str) and version.isdigit() and len(version) <= 12:
        return f"MLflow's champion alias is on version {version}"
    error = report.get("registryError")
    return f"MLflow's champion alias was not moved: {str(error)[:300]}" if error else ""


@dataclass(frozen=True)
class Published:
    """A publish pod's end: ok, and the checksum it verified or why it failed."""

    ok: bool
    sha256: str = ""
    message: str = ""
    reason: str = ""  # why it failed, when the pod says (NoExportedModel)
    registry: str = ""  # what became of MLflow's champion alias, for the Promoted event


def published(pod: Mapping[str, Any]) -> Published | None:
    """The outcome of a finished publish pod; None while it runs."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase not in ("Succeeded", "Failed"):
        return None
    message = ""
    for cs in status.get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated") or {}
        message = str(terminated.get("message") or "").strip()
    report: dict[str, Any] = {}
    try:
        parsed = json.loads(message) if message.startswith("{") else {}
        report = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        report = {}
    if phase == "Succeeded":
        return Published(True, sha256=str(report.get("sha256", ""))[:64], message=str(report.get("message", ""))[:200],
                         registry=_registry_outcome(report))
    why = str(report.get("error") or message or status.get("message") or status.get("reason") or "it failed")
    reason = str(report.get("reason") or "")
    return Published(False, message=why[-500:], reason=reason if reason == c.CT_REASON_NO_EXPORT else "")
