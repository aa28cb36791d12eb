"""Gang scheduling hooks: the PodGroup and what each worker carries to join it."""

from __future__ import annotations

import pytest

from ludus.builders.podgroup import build_pod_group
from ludus.builders.pods import build_rendezvous_pod, build_worker_pod
from ludus.trainingjob.reconcile import reconcile
from tests.factories import T0, make_job


@pytest.mark.parametrize(
    ("gang", "api", "label", "annotation", "scheduler"),
    [
        ("volcano", "scheduling.volcano.sh/v1beta1", None, ("scheduling.k8s.io/group-name", "digits"), "volcano"),
        ("coscheduling", "scheduling.x-k8s.io/v1alpha1", ("scheduling.x-k8s.io/pod-group", "digits"), None,
         "scheduler-plugins-scheduler"),
    ],
    ids=["volcano: PodGroup and group-name annotation", "coscheduling: PodGroup and pod-group label"],
)
def test_gang_scheduling_per_scheduler(gang, api, label, annotation, scheduler) -> None:
    job = make_job().workers(3).elastic(2, 4).build()
    group = build_pod_group(job, gang)
    if api:
        assert group["apiVersion"] == api and group["kind"] == "PodGroup"
        assert group["metadata"]["name"] == "digits" and group["spec"] == {"minMember": 3}  # 2 workers + store
        assert group["metadata"]["ownerReferences"][0]["uid"] == "uid-digits"
    else:
        assert group is None
    pod = build_worker_pod(job, 0, gang)
    if label:
        assert pod["metadata"]["labels"][label[0]] == label[1]
    if annotation:
        assert pod["metadata"]["annotations"][annotation[0]] == annotation[1]
    assert pod["spec"].get("schedulerName") == scheduler


def test_a_users_scheduler_name_wins() -> None:
    job = make_job().spec(template={"schedulerName": "my-volcano"}).build()
    assert build_worker_pod(job, 0, "volcano")["spec"]["schedulerName"] == "my-volcano"


def test_the_plan_creates_the_pod_group_before_the_pods() -> None:
    plan = reconcile(make_job().workers(2).build(), [], T0, gang="volcano")
    assert [m["kind"] for m in plan.create][:3] == ["Service", "PodGroup", "Pod"]
    assert [m["kind"] for m in reconcile(make_job().workers(2).build(), [], T0).create].count("PodGroup") == 0


@pytest.mark.parametrize("gang", ["volcano", "coscheduling"])
def test_the_rendezvous_store_is_one_of_the_gang(gang: str) -> None:
    job = make_job().workers(2).build()
    store, worker = build_rendezvous_pod(job, gang), build_worker_pod(job, 0, gang)
    assert store["spec"]["schedulerName"] == worker["spec"]["schedulerName"]
    assert store["metadata"].get("labels", {}).get("scheduling.x-k8s.io/pod-group") == \
        worker["metadata"]["labels"].get("scheduling.x-k8s.io/pod-group")
    assert store["metadata"].get("annotations") == worker["metadata"].get("annotations")
    assert "schedulerName" not in build_rendezvous_pod(job)["spec"]


def test_a_scale_applies_the_group_again_with_its_new_minimum() -> None:
    scaled = make_job().workers(4).status(desired=2, phase="Running").build()
    groups = [m for m in reconcile(scaled, [], T0, gang="coscheduling").create if m["kind"] == "PodGroup"]
    assert groups and groups[0]["spec"]["minMember"] == 5



def test_a_job_may_opt_out_of_the_operators_gang() -> None:
    job = make_job().workers(2).spec(scheduling={"gang": False}).build()
    plan = reconcile(job, [], T0, gang="coscheduling")
    assert [m["kind"] for m in plan.create] == ["Service", "Pod", "Pod", "Pod"]  # no PodGroup
    assert all("schedulerName" not in m["spec"] for m in plan.create if m["kind"] == "Pod")


def test_a_job_that_asks_for_a_gang_where_the_operator_has_none_is_told_once() -> None:
    builder = make_job().workers(2).spec(scheduling={"gang": True})
    plan = reconcile(builder.build(), [], T0, gang="none")
    assert [e.reason for e in plan.events] == ["GangSchedulingUnavailable"]
    assert "--gang-scheduling none" in plan.events[0].message
    with_gang = reconcile(builder.build(), [], T0, gang="coscheduling")
    assert with_gang.events == [] and with_gang.create[1]["kind"] == "PodGroup"
