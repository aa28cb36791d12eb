"""A job larger than the nodes it may run on, found from their allocatable resources."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ludus.api import constants as c
from ludus.trainingjob.policies.capacity import capacity_problem, parse_node, parse_quantity
from ludus.trainingjob.reconcile import capacity_of, reconcile, unschedulable
from tests.factories import T0, make_job, pod, store

NOW = T0 + timedelta(minutes=1)
FAKE = {"key": "ludus.dev/fake-node", "operator": "Exists", "effect": "NoSchedule"}


def _node(name: str, cpu: str, memory: str = "64Gi", gpus: int = 0, taint: bool = True,
          labels: dict[str, str] | None = None) -> Any:
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return parse_node({"metadata": {"name": name, "labels": labels or {"ludus.dev/node-kind": "fake"}},
                       "spec": {"taints": [{"key": "ludus.dev/fake-node", "value": "true", "effect": "NoSchedule"}]}
                       if taint else {},
                       "status": {"allocatable": allocatable}})


def _spec(cpu: str, memory: str = "1Gi", gpus: int = 0, selector: bool = True) -> dict[str, Any]:
    requests = {"cpu": cpu, "memory": memory, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return {"containers": [{"name": "trainer", "resources": {"requests": requests}}], "tolerations": [FAKE],
            **({"nodeSelector": {"ludus.dev/node-kind": "fake"}} if selector else {})}


STORE = {"containers": [{"name": "rdzv", "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}}}],
         "tolerations": [FAKE]}
NODES = [_node("cpu-0", "32"), _node("cpu-1", "32"), _node("gpu-0", "64", gpus=8), _node("gpu-1", "64", gpus=8)]


@pytest.mark.parametrize(("text", "value"), [("500m", 0.5), ("2Gi", 2 * 2**30), ("8", 8.0), ("1.5k", 1500.0),
                                             ("100M", 1e8), ("1e3", 1000.0)])
def test_quantities_parse_as_kubernetes_writes_them(text: str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@given(st.integers(min_value=0, max_value=10**6))
def test_milli_units_are_thousandths(n: int) -> None:
    assert parse_quantity(f"{n}m") == pytest.approx(n / 1000)


def test_a_job_that_fits_an_empty_cluster_has_no_problem() -> None:
    assert capacity_problem(_spec("16"), STORE, 4, NODES) is None


def test_a_worker_larger_than_any_node_says_which_resource_and_the_largest_node() -> None:
    problem = capacity_problem(_spec("100"), STORE, 1, NODES)
    assert problem is not None and "100 cpu" in problem and "the most is 64" in problem and "gpu-" in problem
    gpus = capacity_problem(_spec("1", gpus=16), STORE, 1, NODES)
    assert gpus is not None and "16 nvidia.com/gpu" in gpus


def test_a_job_larger_than_all_its_nodes_together_says_so() -> None:
    problem = capacity_problem(_spec("60"), STORE, 4, NODES)  # each fits a GPU node; 240 > 192 in all
    assert problem is not None and "4 workers" in problem and "192" in problem


def test_only_nodes_the_selector_and_tolerations_allow_count() -> None:
    untainted = [_node("plain", "1000", taint=False, labels={"pool": "other"}), *NODES]
    assert capacity_problem(_spec("100"), STORE, 1, untainted) is not None  # the big node is not selected
    no_match = capacity_problem(_spec("1") | {"nodeSelector": {"pool": "missing"}}, STORE, 1, NODES)
    assert no_match is not None and "nodeSelector" in no_match


def test_without_a_view_of_the_nodes_nothing_is_said() -> None:
    assert capacity_problem(_spec("100"), STORE, 1, []) is None


def _pending(job: str, index: int) -> Any:
    waiting = pod(job, index, "Pending")
    object.__setattr__(waiting, "unschedulable", "0/4 nodes are available: 4 Insufficient cpu.")
    return waiting


def test_an_unschedulable_pod_of_a_job_too_large_turns_the_condition_and_warns_once() -> None:
    builder = make_job().workers(2).on_fake_nodes().spec(resources={"cpu": "100"})
    pods = [store("digits"), _pending("digits", 0), _pending("digits", 1)]
    assert unschedulable(reconcile(builder.build(), pods, NOW))
    plan = reconcile(builder.build(), pods, NOW, too_large=capacity_of(builder.build(), NODES))
    cond = next(x for x in plan.status.conditions if x.type == c.COND_SCHEDULED)
    assert (cond.status, cond.reason) == ("False", c.REASON_TOO_LARGE) and "100 cpu" in cond.message
    assert [e.reason for e in plan.events if e.type == "Warning"] == [c.REASON_TOO_LARGE]
    builder.status(conditions=[cond.model_dump(by_alias=True, mode="json")], phase=plan.status.phase)
    again = reconcile(builder.build(), pods, NOW, too_large=capacity_of(builder.build(), NODES))
    assert [e for e in again.events if e.type == "Warning"] == []
