"""Conditions follow Kubernetes conventions: lastTransitionTime moves only on a flip."""

from __future__ import annotations

from datetime import timedelta

from ludus.api import constants as c
from ludus.api.conditions import upsert_condition, with_phase
from ludus.api.models import TrainingJobStatus as make_status
from ludus.controller.batching import can_wait
from tests.factories import T0


def test_upsert_adds_then_keeps_the_transition_time_while_status_holds() -> None:
    conds = upsert_condition([], "Running", "True", "A", "first", T0)
    later = upsert_condition(conds, "Running", "True", "B", "second", T0 + timedelta(minutes=1))
    assert len(later) == 1
    assert later[0].last_transition_time == T0 and later[0].reason == "B" and later[0].message == "second"


def test_a_flip_moves_the_transition_time() -> None:
    conds = upsert_condition([], "Running", "True", "A", "", T0)
    flipped = upsert_condition(conds, "Running", "False", "A", "", T0 + timedelta(minutes=1))
    assert flipped[0].last_transition_time == T0 + timedelta(minutes=1)


def test_with_phase_sets_one_phase_condition_and_clears_the_others() -> None:
    conds = with_phase([], c.PHASE_RUNNING, "R", "", T0)
    conds = with_phase(conds, c.PHASE_RESTARTING, "X", "", T0)
    by_type = {x.type: x.status for x in conds}
    assert by_type == {c.COND_RUNNING: "False", c.COND_RESTARTING: "True"}
    conds = with_phase(conds, c.PHASE_SUCCEEDED, "S", "", T0)
    assert {x.type: x.status for x in conds}[c.COND_SUCCEEDED] == "True"
    assert {x.type: x.status for x in conds}[c.COND_RESTARTING] == "False"


# --- which changes may wait for a batched write -------------------------------------------------------
def _dump(status) -> dict:
    return status.model_dump(by_alias=True, mode="json")


def test_a_new_jobs_first_pass_and_its_pod_counts_can_wait() -> None:
    from ludus.trainingjob.reconcile import reconcile
    from tests.factories import make_job, pod, store

    job = make_job().workers(2).build()
    created = reconcile(job, [], T0)
    assert can_wait(_dump(job.status), _dump(created.status))
    counting = reconcile(job, [store("digits", ready=False), pod("digits", 0), pod("digits", 1, "Pending")], T0)
    assert counting.status.phase == c.PHASE_PENDING and can_wait(_dump(job.status), _dump(counting.status))


def test_running_restarts_and_spec_edits_never_wait() -> None:
    from ludus.trainingjob.reconcile import reconcile
    from tests.factories import make_job, pod, running

    job = make_job().workers(2).status(phase="Pending", startTime=T0.isoformat(), observedGeneration=1).build()
    assert not can_wait(_dump(job.status), _dump(reconcile(job, running("digits", 2), T0).status))

    run = make_job().workers(2).status(phase="Running", startTime=T0.isoformat(), observedGeneration=1).build()
    failed = reconcile(run, [*running("digits", 2)[:2], pod("digits", 1, "Failed", exit_code=1)], T0)
    assert failed.status.restarts == 1 and not can_wait(_dump(run.status), _dump(failed.status))

    edited = job.model_copy(update={"metadata": job.metadata.model_copy(update={"generation": 2})})
    assert not can_wait(_dump(job.status), _dump(reconcile(edited, [], T0).status))


def test_no_change_is_nothing_to_wait_for() -> None:
    status = make_status()
    assert not can_wait(_dump(status), _dump(status))


def test_an_unschedulable_pod_is_named_with_the_schedulers_words_and_cleared_once_placed() -> None:
    from ludus.trainingjob.observe import observe_pod
    from ludus.trainingjob.status import scheduling_condition

    body = {"metadata": {"name": "j-worker-0", "uid": "u", "labels": {c.LABEL_ROLE: c.ROLE_WORKER}},
            "status": {"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": '0/5 nodes are available: persistentvolumeclaim "models" not found.'}]}}
    stuck = observe_pod(body)
    assert scheduling_condition([], [], T0) == []  # a job that schedules at once never gets the condition
    conds = scheduling_condition([], [stuck], T0)
    assert conds[0].status == "False" and conds[0].reason == c.REASON_UNSCHEDULABLE
    assert '"models" not found' in conds[0].message and "kubectl get pvc" in conds[0].message
    placed = observe_pod({**body, "status": {"phase": "Running"}})
    assert scheduling_condition(conds, [placed], T0)[0].status == "True"


def test_a_pod_no_scheduler_answers_names_the_scheduler_after_a_while() -> None:
    from datetime import timedelta

    from ludus.trainingjob.observe import observe_pod
    from ludus.trainingjob.status import UNSEEN_SECONDS, scheduling_condition, scheduling_wake

    body = {"metadata": {"name": "j-worker-0", "uid": "u", "labels": {c.LABEL_ROLE: c.ROLE_WORKER},
                         "creationTimestamp": T0.isoformat()},
            "spec": {"schedulerName": "volcano"}, "status": {"phase": "Pending"}}
    pod = observe_pod(body)
    assert scheduling_condition([], [pod], T0 + timedelta(seconds=5)) == []
    assert scheduling_wake([pod], T0 + timedelta(seconds=5)) == UNSEEN_SECONDS - 5
    conds = scheduling_condition([], [pod], T0 + timedelta(seconds=UNSEEN_SECONDS + 1))
    assert conds[0].status == "False" and conds[0].reason == c.REASON_NO_SCHEDULER
    assert "'volcano' running" in conds[0].message
    default = observe_pod({**body, "spec": {}})  # the default scheduler is trusted to be there
    assert scheduling_wake([default], T0) is None
    assert scheduling_condition([], [default], T0 + timedelta(minutes=5)) == []
