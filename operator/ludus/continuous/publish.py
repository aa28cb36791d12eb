"""The pod that publishes a promoted model on the claim, and its outcome read back (pure).

The operator never mounts claims, so a short pod (the trainer image, `ludus_trainer.publish`) does
it: it checks the run's exported weights against the SHA-256 in their metadata, then points the
`champion` link at the run's model directory with one rename. A reader of `champion` sees the old
model or the new one, never a mix; the model files themselves are never copied or changed. In object
storage the pod reads the model with the template's keys and writes `champion.json` in one PUT instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining
from ludus.builders.pods import CACHE_ENV, registered_model_name, store_env, tracker_access
from ludus.builders.short_pods import ended, recorder_container, short_container, short_pod
from ludus.continuous.runs import CHAMPION_LINK, CHAMPION_POINTER, base_dir, claim_of, store_uri

STORE_MOUNT: Final = "/ludus/store"


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
    if base is None:
        container = short_container(t, ["python", "-m", "ludus_trainer.publish", "--root",
                                        f"{STORE_MOUNT}/{base_dir(ct)}", "--run", run, "--link", CHAMPION_LINK])
        container["volumeMounts"] = [{"name": "store", "mountPath": STORE_MOUNT}, *container["volumeMounts"]]
    else:
        container = short_container(t, ["python", "-m", "ludus_trainer.publish", "--uri", base, "--run", run,
                                        "--pointer", CHAMPION_POINTER])
        container["env"] = [*store_env(t.checkpoint), *CACHE_ENV]
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
                      _publisher(ct, run, base, tracking_run, reason), claim)


def record_pod(ct: ContinuousTraining, run: str, run_number: int, tracking_run: str | None, reason: str,
               message: str) -> dict[str, Any] | None:
    """A pod that tags a rejected run's version of the registered model with why (None without tracking or
    without the run's MLflow run)."""
    args, _ = _registry(ct, tracking_run, reason)
    tracking = ct.spec.template.tracking
    if not args or tracking is None:
        return None
    container = recorder_container(ct.spec.template, tracking, args, message)
    return _owned_pod(ct, record_pod_name(ct.metadata.name, run_number), run, container)


def _owned_pod(ct: ContinuousTraining, name: str, run: str, container: dict[str, Any],
               volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return short_pod(c.CT_KIND, ct.metadata, ct.spec.template, name, {c.LABEL_CT: ct.metadata.name,
                                                                       c.LABEL_PUBLISH: run}, container, volumes or [])


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
    end = ended(pod)
    if end is None:
        return None
    report = end.report
    if end.ok:
        return Published(True, sha256=str(report.get("sha256", ""))[:64], message=str(report.get("message", ""))[:200],
                         registry=_registry_outcome(report))
    why = str(report.get("error") or end.message or "it failed")
    reason = str(report.get("reason") or "")
    return Published(False, message=why[-500:], reason=reason if reason == c.CT_REASON_NO_EXPORT else "")
