"""A job larger than the nodes it may run on: found from the nodes' allocatable resources, so a job
that can never be placed says so and why, instead of waiting Pending behind the scheduler's count of
nodes that lack room (which reads the same as a busy cluster).

Two checks, both against what the nodes have in total, not what is free now: one worker larger than
any node its nodeSelector and tolerations allow, and the job's fewest workers with the store larger
than all those nodes together. Node affinity is not evaluated (the scheduler's own words still say).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

_SUFFIX: Final = {
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}
_QUANTITY: Final = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes quantity ("500m", "2Gi", "8") as a number of base units."""
    match = _QUANTITY.match(str(text).strip())
    if match is None or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def _show(resource: str, value: float) -> str:
    if resource == "memory" or resource.endswith("storage"):
        return f"{value / 2**30:.3g}Gi"
    if resource == "cpu":
        return f"{value:.3g}"
    return f"{value:g}"


@dataclass(frozen=True)
class NodeCapacity:
    """What the check needs of a node."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, Any], ...]
    allocatable: Mapping[str, float]
    cordoned: bool = False


def parse_node(body: Mapping[str, Any]) -> NodeCapacity:
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    allocatable: dict[str, float] = {}
    for resource, value in (status.get("allocatable") or {}).items():
        try:
            allocatable[resource] = parse_quantity(value)
        except ValueError:
            continue
    return NodeCapacity(name=str(meta.get("name", "")), labels=dict(meta.get("labels") or {}),
                        taints=tuple(spec.get("taints") or ()), allocatable=allocatable,
                        cordoned=bool(spec.get("unschedulable")))


def pod_requests(pod_spec: Mapping[str, Any]) -> dict[str, float]:
    """The resources a pod asks for: its containers' requests together."""
    total: dict[str, float] = {}
    for container in pod_spec.get("containers") or []:
        for resource, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[resource] = total.get(resource, 0.0) + parse_quantity(value)
    return total


def _tolerated(taint: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> bool:
    if taint.get("effect") == "PreferNoSchedule":
        return True
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and (not tol.get("key") or tol.get("key") == taint.get("key")):
            return True
        if tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def may_run_on(pod_spec: Mapping[str, Any], node: NodeCapacity) -> bool:
    """The node is one the pod's nodeSelector and tolerations allow (capacity aside)."""
    selector = pod_spec.get("nodeSelector") or {}
    tolerations = pod_spec.get("tolerations") or []
    return (not node.cordoned and all(node.labels.get(k) == v for k, v in selector.items())
            and all(_tolerated(taint, tolerations) for taint in node.taints))


def capacity_problem(worker: Mapping[str, Any], store: Mapping[str, Any], min_workers: int,
                     nodes: list[NodeCapacity]) -> str | None:
    """Why the job can never be placed on these nodes, or None if it could be (on an empty cluster).
    `worker` and `store` are pod specs; `min_workers` the fewest workers the job may run with."""
    if not nodes:
        return None  # no view of the nodes: say nothing rather than something wrong
    allowed = [n for n in nodes if may_run_on(worker, n)]
    if not allowed:
        return (f"no node matches the workers' nodeSelector {dict(worker.get('nodeSelector') or {})} and "
                f"tolerations (of {len(nodes)} nodes)")
    needs = pod_requests(worker)
    for resource, need in sorted(needs.items()):
        largest = max(allowed, key=lambda n: n.allocatable.get(resource, 0.0))
        have = largest.allocatable.get(resource, 0.0)
        if need > have:
            return (f"a worker asks for {_show(resource, need)} {resource}, more than any node it may run on has "
                    f"(the most is {_show(resource, have)}, on {largest.name}; {len(allowed)} such nodes)")
    store_needs = pod_requests(store)
    for resource in sorted(set(needs) | set(store_needs)):
        total = needs.get(resource, 0.0) * min_workers + store_needs.get(resource, 0.0)
        have = sum(n.allocatable.get(resource, 0.0) for n in allowed)
        if total > have:
            return (f"the job needs {_show(resource, total)} {resource} for {min_workers} workers and its store, "
                    f"more than the {len(allowed)} nodes it may run on have together ({_show(resource, have)})")
    return None
