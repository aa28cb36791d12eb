"""Kueue admission as pure decisions: the Workload a queued job asks for, and what each state of that
Workload does to the job (the mirror of Kueue's own job integrations)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ludus.api import constants as c
from ludus.builders.workload import LABEL_JOB_UID, workload_name
from ludus.trainingjob.queueing import WorkloadState, parse_workload
from ludus.trainingjob.reconcile import KUEUE_RECHECK_SECONDS, managed_here, reconcile
from tests.factories import T0, JobBuilder, make_job, running

NOW = T0 + timedelta(minutes=5)


def _queued(*, suspended: bool = False, by_queue: bool = True, priority_class: str | None = None) -> JobBuilder:
    builder = make_job().workers(2)
    builder._body["metadata"]["labels"] = {c.LABEL_KUEUE_QUEUE: "team-a-queue"}
    if suspended:
        builder.spec(suspend=True).status(phase=c.PHASE_SUSPENDED)
        if by_queue:
            builder._body["metadata"]["annotations"] = {c.ANNOTATION_QUEUED: "true",
                                                        c.ANNOTATION_QUEUE_SUSPENDED: "true"}
    if priority_class:
        builder.spec(template={"priorityClassName": priority_class})
    return builder


def _workload(*conditions: dict[str, Any], admission: dict[str, Any] | None = None, workers: int = 2
              ) -> WorkloadState:
    pod_sets = [{"name": "store", "count": 1}, {"name": "workers", "count": workers}]
    return parse_workload({
        "metadata": {"name": "trainingjob-digits-uid-d", "resourceVersion": "7", "generation": 1, "uid": "wl-uid",
                     "labels": {c.LABEL_JOB_NAME: "digits", LABEL_JOB_UID: "uid-digits"}},
        "spec": {"queueName": "team-a-queue", "podSets": pod_sets},
        "status": {"conditions": list(conditions), **({"admission": admission} if admission else {})},
    })


def _cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T12:00:00Z"}


ADMITTED = _workload(_cond("QuotaReserved", "True", "QuotaReserved"), _cond("Admitted", "True", "Admitted"),
                     admission={"clusterQueue": "cq-gpu", "podSetAssignments": []})


def _admitted_condition(plan):  # noqa: ANN001, ANN202
    return next((x for x in plan.status.conditions if x.type == c.COND_ADMITTED), None)


def test_a_job_without_the_queue_label_has_nothing_to_do_with_kueue() -> None:
    plan = reconcile(make_job().workers(2).build(), [], NOW)
    assert plan.workload is None and plan.queue_suspend is None and _admitted_condition(plan) is None


def test_a_new_queued_job_asks_for_a_workload_and_waits_suspended_without_pods() -> None:
    plan = reconcile(_queued(priority_class="high").build(), [], NOW)
    assert plan.queue_suspend is True and plan.create == []
    assert plan.status.phase == c.PHASE_SUSPENDED
    wl = plan.workload
    assert wl is not None and wl["kind"] == "Workload" and wl["metadata"]["name"] == workload_name(_queued().build())
    assert wl["spec"]["queueName"] == "team-a-queue"
    assert [(s["name"], s["count"]) for s in wl["spec"]["podSets"]] == [("store", 1), ("workers", 2)]
    worker = wl["spec"]["podSets"][1]["template"]["spec"]["containers"][0]
    assert worker["resources"]["requests"]["cpu"]  # Kueue counts the quota from the same requests the pods get
    assert wl["spec"]["priorityClassRef"] == {"group": "scheduling.k8s.io", "kind": "PriorityClass", "name": "high"}
    assert wl["metadata"]["ownerReferences"][0]["uid"] == "uid-digits"
    cond = _admitted_condition(plan)
    assert (cond.status, cond.reason) == ("False", c.REASON_QUEUED) and "team-a-queue" in cond.message
    assert [e.reason for e in plan.events if e.reason == c.REASON_QUEUED] == [c.REASON_QUEUED]


def test_a_queue_kueue_cannot_serve_is_named_once_in_a_warning() -> None:
    pending = _workload(_cond("QuotaReserved", "False", "Inadmissible", "LocalQueue team-a-queue doesn't exist"))
    plan = reconcile(_queued(suspended=True).build(), [], NOW, workload=pending)
    cond = _admitted_condition(plan)
    assert (cond.status, cond.reason) == ("False", c.REASON_INADMISSIBLE)
    assert "LocalQueue team-a-queue doesn't exist" in cond.message
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", c.REASON_INADMISSIBLE)]
    again = _queued(suspended=True).status(conditions=[cond.model_dump(by_alias=True, mode="json")]).build()
    assert reconcile(again, [], NOW, workload=pending).events == []  # said once, not every pass
    assert plan.queue_suspend is None and plan.workload is None and plan.create == []


def test_admission_lifts_the_queues_suspension_and_names_the_cluster_queue() -> None:
    plan = reconcile(_queued(suspended=True).build(), [], NOW, workload=ADMITTED)
    assert plan.queue_suspend is False
    cond = _admitted_condition(plan)
    assert (cond.status, cond.reason) == ("True", c.REASON_ADMITTED) and "cq-gpu" in cond.message
    assert [e.reason for e in plan.events] == [c.REASON_ADMITTED]


def test_a_suspension_of_the_users_own_is_not_lifted_by_admission() -> None:
    plan = reconcile(_queued(suspended=True, by_queue=False).build(), [], NOW, workload=ADMITTED)
    assert plan.queue_suspend is None and plan.create == []


def test_an_admitted_running_job_creates_its_pods_as_any_job() -> None:
    plan = reconcile(_queued().build(), [], NOW, workload=ADMITTED)
    assert plan.queue_suspend is None and len(plan.create) == 4


def test_a_running_job_whose_workload_lost_its_admission_is_suspended() -> None:
    requeued = _workload(_cond("QuotaReserved", "False", "Pending", "couldn't assign flavors"))
    plan = reconcile(_queued().build(), running("digits", 2), NOW, workload=requeued)
    assert plan.queue_suspend is True and len(plan.delete) == 3 and plan.create == []


def test_eviction_suspends_through_the_normal_path_then_gives_the_quota_back_once_the_pods_are_gone() -> None:
    evicted = _workload(_cond("QuotaReserved", "True", "QuotaReserved"), _cond("Admitted", "True", "Admitted"),
                        _cond("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: x)"),
                        admission={"clusterQueue": "cq-gpu", "podSetAssignments": []})
    plan = reconcile(_queued().build(), running("digits", 2), NOW, workload=evicted)
    assert plan.queue_suspend is True and len(plan.delete) == 3  # SIGTERM: the trainer checkpoints
    assert plan.workload_status is None  # not while its pods still hold the resources
    warning = [e for e in plan.events if e.reason == c.REASON_EVICTED]
    assert len(warning) == 1 and "Preempted" in warning[0].message
    still_there = reconcile(_queued(suspended=True).build(), running("digits", 2), NOW, workload=evicted)
    assert still_there.workload_status is None and still_there.queue_suspend is None
    gone = reconcile(_queued(suspended=True).build(), [], NOW, workload=evicted)
    assert gone.workload_status is not None
    state, status = gone.workload_status
    assert state.resource_version == "7" and status["admission"] is None
    by_type = {cond["type"]: cond for cond in status["conditions"]}
    assert (by_type["QuotaReserved"]["status"], by_type["QuotaReserved"]["reason"]) == ("False", "Pending")
    assert (by_type["Requeued"]["status"], by_type["Requeued"]["reason"]) == ("True", "Preempted")
    assert by_type["Admitted"]["status"] == "False"
    assert by_type["Evicted"]["status"] == "True"  # Kueue's own, left for Kueue to clear


def test_a_finished_job_marks_its_workload_finished_once() -> None:
    done = _queued().status(phase=c.PHASE_SUCCEEDED).build()
    plan = reconcile(done, [], NOW, workload=ADMITTED)
    assert plan.workload_status is not None
    finished = {cond["type"]: cond for cond in plan.workload_status[1]["conditions"]}["Finished"]
    assert (finished["status"], finished["reason"]) == ("True", "Succeeded")
    already = _workload(_cond("Finished", "True", "Succeeded"))
    assert reconcile(done, [], NOW, workload=already).workload_status is None


def test_without_kueue_installed_the_job_waits_saying_so_and_looks_again() -> None:
    plan = reconcile(_queued().build(), [], NOW, kueue_served=False)
    cond = _admitted_condition(plan)
    assert (cond.status, cond.reason) == ("False", c.REASON_KUEUE_MISSING) and "install Kueue" in cond.message
    assert plan.queue_suspend is True and plan.workload is not None  # asked again: Kueue may be there now
    assert plan.requeue_after == KUEUE_RECHECK_SECONDS
    assert [e.reason for e in plan.events if e.type == "Warning"] == [c.REASON_KUEUE_MISSING]


def test_a_job_larger_than_its_cluster_queue_could_ever_give_is_inadmissible_not_queued() -> None:
    message = ("couldn't assign flavors to pod set workers: insufficient quota for cpu in flavor default, "
               "previously considered podsets requests (50m) + current podset request (40) > maximum capacity (5)")
    too_big = _workload(_cond("QuotaReserved", "False", "Pending", message))
    plan = reconcile(_queued(suspended=True).build(), [], NOW, workload=too_big)
    cond = _admitted_condition(plan)
    assert cond.reason == c.REASON_INADMISSIBLE and "maximum capacity (5)" in cond.message
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", c.REASON_INADMISSIBLE)]


SPOT = {"metadata": {"name": "spot"}, "spec": {"nodeLabels": {"pool": "spot"},
                                               "tolerations": [{"key": "spot", "operator": "Exists"}]}}


def _admitted_on(flavor: str, flavors: dict[str, Any]) -> WorkloadState:
    body = {"metadata": {"name": "trainingjob-digits-uid-d", "resourceVersion": "7", "generation": 1,
                         "labels": {c.LABEL_JOB_NAME: "digits", LABEL_JOB_UID: "uid-digits"}},
            "spec": {"queueName": "team-a-queue",
                     "podSets": [{"name": "store", "count": 1}, {"name": "workers", "count": 2}]},
            "status": {"conditions": [_cond("QuotaReserved", "True", "QuotaReserved"),
                                      _cond("Admitted", "True", "Admitted")],
                       "admission": {"clusterQueue": "cq", "podSetAssignments": [
                           {"name": "store", "flavors": {"cpu": flavor}},
                           {"name": "workers", "flavors": {"cpu": flavor, "memory": flavor}}]}}}
    return parse_workload(body, flavors)


def test_the_pods_of_an_admitted_job_go_where_its_flavor_says() -> None:
    plan = reconcile(_queued().build(), [], NOW, workload=_admitted_on("spot", {"spot": SPOT}))
    pods = [m for m in plan.create if m["kind"] == "Pod"]
    assert len(pods) == 3
    for pod in pods:  # the store and the workers: each pod set is admitted on the flavor
        assert pod["spec"]["nodeSelector"]["pool"] == "spot"
        assert {"key": "spot", "operator": "Exists"} in pod["spec"]["tolerations"]


def test_a_flavor_not_seen_yet_holds_the_start_and_a_conflicting_template_finishes_the_workload() -> None:
    pending = reconcile(_queued(suspended=True).build(), [], NOW, workload=_admitted_on("spot", {}))
    assert pending.queue_suspend is None and pending.create == [] and pending.workload_status is None
    assert "ResourceFlavor spot (assigned by Kueue) is not known yet" in _admitted_condition(pending).message
    clash = _queued(suspended=True).spec(template={"nodeSelector": {"pool": "on-demand"}}).build()
    plan = reconcile(clash, [], NOW, workload=_admitted_on("spot", {"spot": SPOT}))
    cond = _admitted_condition(plan)
    assert (cond.status, cond.reason) == ("False", c.REASON_FAILED_TO_START)
    assert "needs nodeSelector pool=spot, but the pod template sets pool=on-demand" in cond.message
    assert plan.queue_suspend is None and plan.create == []
    assert plan.workload_status is not None  # finished: the quota goes to the next job, as Kueue's integrations do
    assert [e.reason for e in plan.events] == [c.REASON_FAILED_TO_START]


def _admitted(workers: int) -> WorkloadState:
    return _workload(_cond("QuotaReserved", "True", "QuotaReserved"), _cond("Admitted", "True", "Admitted"),
                     admission={"clusterQueue": "cq-gpu", "podSetAssignments": []}, workers=workers)


def test_a_running_job_scaled_past_its_admission_stops_then_asks_kueue_again_for_the_new_size() -> None:
    scaled = _queued().workers(8)
    plan = reconcile(scaled.build(), running("digits", 2), NOW, workload=_admitted(2))
    assert plan.queue_suspend is True and plan.create == [] and len(plan.delete) == 3  # SIGTERM: a checkpoint
    assert plan.workload_change is None  # not while its pods still hold the quota
    cond = _admitted_condition(plan)
    assert (cond.status, cond.reason) == ("False", c.REASON_RESIZED)
    assert "scaled to 8 workers" in cond.message and "admitted 2" in cond.message and "cq-gpu" in cond.message
    assert [e.reason for e in plan.events if e.reason == c.REASON_RESIZED] == [c.REASON_RESIZED]
    still_there = reconcile(_queued(suspended=True).workers(8).build(), running("digits", 2), NOW,
                            workload=_admitted(2))
    assert still_there.workload_change is None and still_there.create == []
    gone = reconcile(_queued(suspended=True).workers(8).build(), [], NOW, workload=_admitted(2))
    assert gone.workload_change is not None and gone.create == [] and gone.queue_suspend is None
    state, pod_sets = gone.workload_change
    assert (state.name, state.uid, state.resource_version) == ("trainingjob-digits-uid-d", "wl-uid", "7")
    assert pod_sets is None  # deleted, as decided on: a new Workload follows
    again = reconcile(_queued(suspended=True).workers(8).build(), [], NOW, workload=None)
    assert again.workload is not None
    assert [(s["name"], s["count"]) for s in again.workload["spec"]["podSets"]] == [("store", 1), ("workers", 8)]


def test_an_admitted_but_not_started_job_scaled_up_is_not_started_on_the_old_admission() -> None:
    plan = reconcile(_queued(suspended=True).workers(8).build(), [], NOW, workload=_admitted(2))
    assert plan.queue_suspend is None and plan.create == []
    assert plan.workload_change is not None and plan.workload_change[1] is None


def test_a_job_scaled_down_runs_within_what_kueue_admitted() -> None:
    plan = reconcile(_queued().workers(1).build(), running("digits", 2), NOW, workload=_admitted(2))
    assert plan.queue_suspend is None and plan.workload_change is None
    assert _admitted_condition(plan).reason == c.REASON_ADMITTED


def test_a_waiting_workload_is_brought_to_the_jobs_new_size_in_place() -> None:
    pending = _workload(_cond("QuotaReserved", "False", "Pending", "insufficient quota"), workers=2)
    plan = reconcile(_queued(suspended=True).workers(3).build(), [], NOW, workload=pending)
    assert plan.workload_change is not None and plan.queue_suspend is None and plan.create == []
    state, pod_sets = plan.workload_change
    assert state.resource_version == "7" and pod_sets is not None
    assert [(s["name"], s["count"]) for s in pod_sets] == [("store", 1), ("workers", 3)]
    assert pod_sets[1]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    same = reconcile(_queued(suspended=True).build(), [], NOW, workload=pending)
    assert same.workload_change is None


def _multikueue(*, suspended: bool = True) -> JobBuilder:
    builder = _queued(suspended=suspended)
    builder.spec(managedBy=c.MANAGED_BY_MULTIKUEUE)
    return builder


def _dispatched(*conditions: dict[str, Any]) -> WorkloadState:
    return parse_workload({
        "metadata": {"name": "trainingjob-digits-uid-d", "resourceVersion": "9", "generation": 1, "uid": "wl-uid",
                     "labels": {c.LABEL_JOB_NAME: "digits", LABEL_JOB_UID: "uid-digits"}},
        "spec": {"queueName": "team-a-queue",
                 "podSets": [{"name": "store", "count": 1}, {"name": "workers", "count": 2}]},
        "status": {"conditions": list(conditions), "clusterName": "worker-1",
                   "admission": {"clusterQueue": "cq-gpu", "podSetAssignments": []}},
    })


def test_who_manages_a_job_is_its_spec_managed_by() -> None:
    assert managed_here({}) and managed_here({"managedBy": c.MANAGED_BY_LUDUS})
    assert managed_here({"managedBy": c.MANAGED_BY_MULTIKUEUE})  # its queue part: the Workload here
    assert not managed_here({"managedBy": "example.com/other-controller"})


def test_a_multikueue_job_waits_in_the_managers_queue_like_any_queued_job() -> None:
    plan = reconcile(_multikueue(suspended=False).build(), [], NOW)
    assert plan.workload is not None and plan.queue_suspend is True and plan.create == []
    assert _admitted_condition(plan).reason == c.REASON_QUEUED


def test_a_dispatched_multikueue_job_runs_no_pods_here_and_leaves_its_status_to_the_worker_copy() -> None:
    job = _multikueue().build()
    admitted = _dispatched(_cond("QuotaReserved", "True", "QuotaReserved"), _cond("Admitted", "True", "Admitted"))
    plan = reconcile(job, [], NOW, workload=admitted)
    assert plan.create == [] and plan.delete == [] and plan.workload is None
    assert plan.status == job.status  # nothing written: MultiKueue copies the worker's status here
    assert plan.queue_suspend is False  # admitted, as Kueue's integrations lift it for a MultiKueue job
    done = _multikueue(suspended=False).status(phase=c.PHASE_SUCCEEDED).build()
    finished = reconcile(done, [], NOW, workload=admitted)
    assert finished.workload_status is not None and finished.create == []
    assert {x["type"]: x["status"] for x in finished.workload_status[1]["conditions"]}["Finished"] == "True"


def test_the_worker_copy_of_a_multikueue_job_uses_the_managers_workload_and_never_makes_one() -> None:
    builder = _queued(suspended=True)
    builder._body["metadata"]["labels"][c.LABEL_KUEUE_PREBUILT_WORKLOAD] = "trainingjob-digits-abcde"
    plan = reconcile(builder.build(), [], NOW, workload=None)
    assert plan.workload is None and plan.create == []
    cond = _admitted_condition(plan)
    assert cond.reason == c.REASON_QUEUED and "trainingjob-digits-abcde" in cond.message
    started = reconcile(builder.build(), [], NOW, workload=ADMITTED)
    assert started.queue_suspend is False
