"""The short pods a Sweep or ContinuousTraining runs for itself in the trainer image (publishing a model,
recording a verdict in MLflow): the template's user and placement, no API token, owned by the resource."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ludus.api import constants as c
from ludus.api.models import ObjectMeta, Tracking, TrainingJobSpec
from ludus.builders.labels import controller_reference
from ludus.builders.pods import CACHE_ENV, CONTAINER_SECURITY_CONTEXT, TMP_VOLUME, TMP_VOLUME_MOUNT, tracker_access

CONTAINER = "publish"
MESSAGE_CHARS = 1000


def short_container(template: TrainingJobSpec, command: list[str]) -> dict[str, Any]:
    return {
        "name": CONTAINER,
        "image": template.image,
        "imagePullPolicy": template.image_pull_policy,
        "command": command,
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": dict(CONTAINER_SECURITY_CONTEXT),
        "terminationMessagePath": c.TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [dict(TMP_VOLUME_MOUNT)],
    }


def recorder_container(template: TrainingJobSpec, tracking: Tracking, args: Sequence[str],
                       message: str) -> dict[str, Any]:
    """`ludus_trainer.registry` with the tracker's address and the template's credentials for it."""
    container = short_container(template, ["python", "-m", "ludus_trainer.registry", *args,
                                           "--message", message[:MESSAGE_CHARS]])
    container["env"] = [*tracker_access(tracking), *CACHE_ENV]
    return container


def short_pod(kind: str, owner: ObjectMeta, template: TrainingJobSpec, name: str, labels: dict[str, str],
              container: dict[str, Any], volumes: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A pod of the resource's own, run once (the temporary directory always mounted)."""
    security: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if template.template.run_as_user is not None:
        uid = template.template.run_as_user
        security.update({"runAsUser": uid, "runAsGroup": uid, "fsGroup": uid})
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": security,
        "containers": [container],
        "automountServiceAccountToken": False,
        "volumes": [*volumes, dict(TMP_VOLUME)],
    }
    for key, value in (("nodeSelector", template.template.node_selector),
                       ("tolerations", template.template.tolerations), ("affinity", template.template.affinity)):
        if value:
            spec[key] = value.copy() if isinstance(value, dict) else list(value)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {**labels, c.LABEL_MANAGED_BY: c.MANAGED_BY},
            "ownerReferences": [controller_reference(kind, owner)],
        },
        "spec": spec,
    }


@dataclass(frozen=True)
class Ended:
    """A short pod's end as it said it: whether it succeeded, its JSON report (hostile: check what you read)
    and its termination message or the kubelet's words."""

    ok: bool
    report: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def ended(pod: Mapping[str, Any]) -> Ended | None:
    """The outcome of a finished short pod; None while it runs."""
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
    except (ValueError, RecursionError):
        report = {}
    if not message and phase == "Failed":
        message = str(status.get("message") or status.get("reason") or "")
    return Ended(phase == "Succeeded", report, message)
