"""Pods reduced to the few facts the reconcile needs.

The pod index holds these small frozen records, not whole bodies: a pod body
with managedFields is kilobytes, and a thousand jobs hold thousands of pods.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ludus.api import constants as c

# DisruptionTarget condition reasons (Kubernetes ≥ 1.26) and what they mean for us.
_NODE_LOST_REASONS = frozenset({"DeletionByPodGC", "DeletionByTaintManager"})


@dataclass(frozen=True)
class PodObservation:
    """One pod of a TrainingJob as last seen on the watch."""

    name: str
    uid: str
    role: str
    index: int | None
    phase: str
    ready: bool = False
    deleting: bool = False
    exit_code: int | None = None
    reason: str = ""
    disruption: str = ""
    node_name: str = ""
    created_at: datetime | None = None
    owner_uid: str = ""
    ip: str = ""
    # What the trainer left in its termination message (`ludusEvaluation`), once the container ended.
    evaluation: Mapping[str, Any] | None = None
    # Why the scheduler cannot place it (PodScheduled False, Unschedulable): an unbound claim, no room.
    unschedulable: str = ""
    scheduler: str = ""  # spec.schedulerName
    seen_by_scheduler: bool = True  # a scheduler placed it or said why not (PodScheduled is set)
    # Why `observe_pod` could not read it ('' when it could): such a pod is kept as Unknown.
    unreadable: str = ""

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def disrupted(self) -> str:
        """The restart reason when something other than the training code ended this pod, else ''."""
        if self.disruption in _NODE_LOST_REASONS:
            return c.REASON_NODE_LOST
        if self.reason == "Evicted" or self.disruption:
            return c.REASON_POD_EVICTED
        if self.deleting and not self.finished:
            return c.REASON_POD_DELETED
        return ""


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _effective_phase(status: Mapping[str, Any], role: str) -> str:
    """The pod's phase, or where it is going: a worker's trainer container that has exited (workers
    never restart in place) makes the pod Succeeded or Failed, but the kubelet first reports the
    exit with the phase still Running, then the phase in a later update. Reading the exit at once
    ends a job as soon as its last worker exits, never through a Running phase with 0 workers."""
    phase = str(status.get("phase") or "Pending")
    if role == c.ROLE_WORKER and phase == "Pending" and _store_check_failed(status):
        return "Failed"  # its init container found the object store unusable: the trainer never starts
    if phase != "Running" or role != c.ROLE_WORKER:
        return phase
    for container in status.get("containerStatuses") or []:
        if container.get("name") == c.CONTAINER_TRAINER:
            terminated = (container.get("state") or {}).get("terminated")
            if terminated and terminated.get("exitCode") is not None:
                return "Succeeded" if int(terminated["exitCode"]) == 0 else "Failed"
    return phase


def _store_check_failed(status: Mapping[str, Any]) -> bool:
    for container in status.get("initContainerStatuses") or []:
        if container.get("name") == c.CONTAINER_STORE_CHECK:
            terminated = (container.get("state") or {}).get("terminated") or {}
            return terminated.get("exitCode") not in (None, 0)
    return False


def _ours(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The statuses of the containers Ludus writes termination messages from: the trainer, and the
    object-store check that runs before it."""
    return [*(s for s in status.get("containerStatuses") or [] if s.get("name") == c.CONTAINER_TRAINER),
            *(s for s in status.get("initContainerStatuses") or [] if s.get("name") == c.CONTAINER_STORE_CHECK)]


def _exit_code(status: Mapping[str, Any]) -> int | None:
    """The trainer's exit code; or the store check's, when that failed and the trainer never ran."""
    for container in _ours(status):
        for state_key in ("state", "lastState"):
            terminated = (container.get(state_key) or {}).get("terminated")
            if terminated and terminated.get("exitCode") is not None:
                code = int(terminated["exitCode"])
                if container.get("name") == c.CONTAINER_TRAINER or code != 0:
                    return code
    return None


# A termination message is at most 4096 bytes; anything longer did not come from the trainer.
_MAX_MESSAGE = 4096
# The trainer's report nests four levels ({"ludusEvaluation": {"latest": {metric: {...}}}}); deeper is
# not a report, and brackets nested thousands deep would exhaust the parser's recursion.
_MAX_DEPTH = 8


def nesting_depth(text: str) -> int:
    """How deep JSON brackets nest in `text` (strings are not skipped: an over-estimate is safe)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _evaluation(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The trainer's evaluation from its container's termination message; None for anything else
    (no message, log lines, truncated or foreign JSON, non-finite numbers)."""
    for container in _ours(status):
        for state_key in ("state", "lastState"):
            message = ((container.get(state_key) or {}).get("terminated") or {}).get("message")
            if not isinstance(message, str) or len(message) > _MAX_MESSAGE \
                    or not message.startswith('{"ludusEvaluation"') or nesting_depth(message) > _MAX_DEPTH:
                continue
            try:
                data = json.loads(message, parse_constant=lambda _: None)["ludusEvaluation"]
            except (ValueError, KeyError, TypeError, RecursionError):
                continue
            if isinstance(data, dict):
                return data
    return None


def observe_pod(body: Mapping[str, Any]) -> PodObservation:
    """Reduce a pod body to a PodObservation."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = body.get("status") or {}
    conditions = status.get("conditions") or []
    ready = any(cond.get("type") == "Ready" and cond.get("status") == "True" for cond in conditions)
    disruption = next(
        (
            str(cond.get("reason") or "")
            for cond in conditions
            if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True"
        ),
        "",
    )
    raw_index = labels.get(c.LABEL_REPLICA_INDEX)
    role = str(labels.get(c.LABEL_ROLE, ""))
    owner_uid = next(
        (str(ref.get("uid", "")) for ref in meta.get("ownerReferences") or [] if ref.get("controller")), ""
    )
    return PodObservation(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        role=role,
        index=int(raw_index) if raw_index is not None and str(raw_index).isdigit() else None,
        phase=_effective_phase(status, role),
        ready=ready,
        deleting=bool(meta.get("deletionTimestamp")),
        exit_code=_exit_code(status),
        reason=str(status.get("reason") or ""),
        disruption=disruption,
        node_name=str((body.get("spec") or {}).get("nodeName") or ""),
        created_at=_parse_time(meta.get("creationTimestamp")),
        owner_uid=owner_uid,
        ip=str(status.get("podIP") or ""),
        evaluation=_evaluation(status),
        unschedulable=next((str(cond.get("message") or "")[:400] for cond in conditions
                            if cond.get("type") == "PodScheduled" and cond.get("status") == "False"
                            and cond.get("reason") == "Unschedulable"), ""),
        scheduler=str((body.get("spec") or {}).get("schedulerName") or "default-scheduler"),
        seen_by_scheduler=bool((body.get("spec") or {}).get("nodeName"))
        or any(cond.get("type") == "PodScheduled" for cond in conditions),
    )


# How much of the error that made a pod unreadable is kept (it may quote what the pod reported).
MAX_UNREADABLE_REASON: Final = 200


def unreadable_pod(body: Mapping[str, Any], error: BaseException) -> PodObservation:
    """What is still known of a pod `observe_pod` could not read: who it is and whose (the API server
    validated its metadata), phase Unknown and why, so that its job can say so."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    index = str(labels.get(c.LABEL_REPLICA_INDEX, ""))
    owner_uid = next((str(ref.get("uid", "")) for ref in meta.get("ownerReferences") or []
                      if isinstance(ref, Mapping) and ref.get("controller")), "")
    return PodObservation(name=str(meta.get("name", ""))[:253], uid=str(meta.get("uid", ""))[:64],
                          role=str(labels.get(c.LABEL_ROLE, ""))[:63],
                          index=int(index) if index.isdigit() and len(index) < 6 else None, phase="Unknown",
                          owner_uid=owner_uid[:64],
                          unreadable=f"{type(error).__name__}: {error}"[:MAX_UNREADABLE_REASON])


def own_pods(job_uid: str, pods: Iterable[PodObservation]) -> list[PodObservation]:
    """The pods the job controls. Others may carry its labels: pods of an earlier job of the same name
    (deleted and re-created) until garbage collection removes them, or a pod anyone labelled so."""
    return [p for p in pods if p.owner_uid == job_uid]


def current_workers(pods: Iterable[PodObservation]) -> dict[int, PodObservation]:
    """Worker pods by index; of two with one index, the newer wins (the older is being replaced)."""
    out: dict[int, PodObservation] = {}
    for pod in pods:
        if pod.role != c.ROLE_WORKER or pod.index is None:
            continue
        seen = out.get(pod.index)
        if seen is None or (pod.created_at or datetime.min) >= (seen.created_at or datetime.min):
            out[pod.index] = pod
    return out


def rendezvous_pod(pods: Iterable[PodObservation]) -> PodObservation | None:
    return next((p for p in pods if p.role == c.ROLE_RENDEZVOUS), None)
