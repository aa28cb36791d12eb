"""Kueue's admission as node selectors and tolerations on the pods, as Kueue's integrations apply it."""

from __future__ import annotations

import pytest

from ludus.trainingjob.placement import Placement, PlacementError, admission_placements, assigned_flavors, place_pod

SPOT = {"metadata": {"name": "spot"}, "spec": {
    "nodeLabels": {"pool": "spot", "zone": "a"},
    "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]}}
A100 = {"metadata": {"name": "a100"}, "spec": {"nodeLabels": {"gpu": "a100", "zone": "b"}}}
FLAVORS = {"spot": SPOT, "a100": A100, "empty": {"metadata": {"name": "empty"}, "spec": {}}}


def _workload(*assignments: tuple[str, dict[str, str]]) -> dict:
    return {"status": {"admission": {"clusterQueue": "cq", "podSetAssignments": [
        {"name": name, "flavors": flavors, "count": 1} for name, flavors in assignments]}}}


def test_each_pod_set_gets_its_flavors_labels_and_tolerations() -> None:
    workload = _workload(("workers", {"cpu": "spot", "memory": "spot"}), ("store", {"cpu": "empty"}))
    assert assigned_flavors(workload) == {"workers": ("spot",), "store": ("empty",)}
    placements = admission_placements(workload, FLAVORS)
    assert placements["workers"] == Placement({"pool": "spot", "zone": "a"}, (SPOT["spec"]["tolerations"][0],))
    assert placements["store"].empty


def test_two_flavors_merge_keeping_the_first_resources_value_every_time() -> None:
    """cpu on spot, nvidia.com/gpu on a100: both flavors' labels; zone from cpu's (sorted first)."""
    workload = _workload(("workers", {"nvidia.com/gpu": "a100", "cpu": "spot"}))
    placement = admission_placements(workload, FLAVORS)["workers"]
    assert placement.node_selector == {"pool": "spot", "zone": "a", "gpu": "a100"}


def test_a_flavor_that_cannot_be_read_is_named() -> None:
    with pytest.raises(PlacementError, match="ResourceFlavor gone"):
        admission_placements(_workload(("workers", {"cpu": "gone"})), FLAVORS)


def test_no_admission_places_nothing_and_hostile_shapes_are_skipped() -> None:
    assert admission_placements({}, FLAVORS) == {}
    hostile = {"status": {"admission": {"podSetAssignments": [
        "x", {"name": 3}, {"name": "workers", "flavors": ["cpu"]}, {"name": "store", "flavors": {"cpu": 7}}]}}}
    assert assigned_flavors(hostile) == {"store": ()}


def test_the_pod_gets_the_placement_merged_and_a_conflicting_template_is_refused() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"nodeSelector": {"team": "a"},
                                               "tolerations": [{"key": "spot", "operator": "Exists",
                                                                "effect": "NoSchedule"}]}}
    placed = place_pod(pod, admission_placements(_workload(("workers", {"cpu": "spot"})), FLAVORS)["workers"])
    assert placed["spec"]["nodeSelector"] == {"team": "a", "pool": "spot", "zone": "a"}
    assert len(placed["spec"]["tolerations"]) == 1  # not added twice
    assert pod["spec"]["nodeSelector"] == {"team": "a"}  # the template is not changed
    assert place_pod(pod, None) is pod and place_pod(pod, Placement()) is pod
    clash = {"metadata": {"name": "p"}, "spec": {"nodeSelector": {"zone": "c"}}}
    with pytest.raises(PlacementError, match="needs nodeSelector zone=a, but the pod template sets zone=c"):
        place_pod(clash, Placement({"zone": "a"}))
