"""Where Kueue's admission says a job's pods may run: its ResourceFlavors' node labels and tolerations.

Kueue admits a Workload by assigning each pod set a ResourceFlavor per resource
(`status.admission.podSetAssignments[].flavors`); a flavor names the nodes it stands for with
`spec.nodeLabels` and lets its pods onto them with `spec.tolerations`. Kueue's own integrations merge
those into their pods when they start a job and take them out when they suspend it
(pkg/podset: FromAssignment, Merge); Ludus does the same for its pods, which it builds fresh on every
start, so a suspended job's next admission starts from its own template again.

Pure: the Workload's body and the flavors in, a placement (or why there is none) out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Placement", "PlacementError", "admission_placements", "assigned_flavors", "place_pod",
           "selector_conflict"]


class PlacementError(ValueError):
    """The admission cannot be applied: a node label the pod's own template sets otherwise (permanent:
    nothing but a new spec mends it), or a flavor the operator has not seen yet (its watch may be a
    moment behind Kueue's admission: the job waits for it)."""

    def __init__(self, message: str, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Placement:
    """What one pod set's flavors add to its pods."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.node_selector and not self.tolerations


def assigned_flavors(workload: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each pod set's flavors as Kueue admitted them, in the order of the resources' names (so that a
    label two flavors set differently is decided the same way every pass)."""
    admission = (workload.get("status") or {}).get("admission") or {}
    out: dict[str, tuple[str, ...]] = {}
    for assignment in admission.get("podSetAssignments") or []:
        if not isinstance(assignment, Mapping) or not isinstance(assignment.get("name"), str):
            continue
        flavors = assignment.get("flavors") or {}
        if not isinstance(flavors, Mapping):
            continue
        ordered = [str(flavors[r]) for r in sorted(flavors) if isinstance(flavors[r], str)]
        out[assignment["name"]] = tuple(dict.fromkeys(ordered))
    return out


def _placement(flavor_names: tuple[str, ...], flavors: Mapping[str, Mapping[str, Any]]) -> Placement:
    selector: dict[str, str] = {}
    tolerations: list[Mapping[str, Any]] = []
    for name in flavor_names:
        flavor = flavors.get(name)
        if flavor is None:
            raise PlacementError(f"ResourceFlavor {name} (assigned by Kueue) is not known yet", permanent=False)
        spec = flavor.get("spec") or {}
        for key, value in (spec.get("nodeLabels") or {}).items():
            selector.setdefault(str(key), str(value))  # the first flavor's value, as Kueue keeps it
        for toleration in spec.get("tolerations") or []:
            if isinstance(toleration, Mapping) and toleration not in tolerations:
                tolerations.append(dict(toleration))
    return Placement(selector, tuple(tolerations))


def admission_placements(workload: Mapping[str, Any], flavors: Mapping[str, Mapping[str, Any]]
                         ) -> dict[str, Placement]:
    """Each admitted pod set's placement from the flavors Kueue assigned it (by flavor name)."""
    return {pod_set: _placement(names, flavors) for pod_set, names in assigned_flavors(workload).items()}


def selector_conflict(selector: Mapping[str, str], placement: Placement | None) -> str | None:
    """Why `placement` cannot be merged into pods with this node selector (None: it can)."""
    for key, value in (placement.node_selector if placement else {}).items():
        if key in selector and selector[key] != value:
            return (f"the admitted flavor needs nodeSelector {key}={value}, but the pod template sets "
                    f"{key}={selector[key]}")
    return None


def place_pod(pod: dict[str, Any], placement: Placement | None) -> dict[str, Any]:
    """`pod` with the placement merged in: the flavors' node labels added to its node selector (one
    its template sets to another value is a conflict, as in Kueue), their tolerations appended once."""
    if placement is None or placement.empty:
        return pod
    spec = dict(pod["spec"])
    selector = dict(spec.get("nodeSelector") or {})
    conflict = selector_conflict(selector, placement)
    if conflict is not None:
        raise PlacementError(conflict)
    selector.update(placement.node_selector)
    tolerations = list(spec.get("tolerations") or [])
    tolerations += [dict(t) for t in placement.tolerations if t not in tolerations]
    spec["nodeSelector"] = selector
    spec["tolerations"] = tolerations
    return {**pod, "spec": spec}
