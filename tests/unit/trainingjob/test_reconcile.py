"""The reconcile decision: every phase transition and the edge cases, from pod lists alone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ludus.api import constants as c
from ludus.trainingjob.reconcile import invalid_spec_plan, reconcile
from tests.factories import T0, make_job, pod, running, store

NOW = T0 + timedelta(minutes=5)


def _names(manifests: list[dict]) -> list[str]:
    return [f"{m['kind']}/{m['metadata']['name']}" for m in manifests]


def _cond(plan, type_: str):
    return next((x for x in plan.status.conditions if x.type == type_), None)


# --- creation ---------------------------------------------------------------------------------------
def test_a_new_job_creates_the_service_the_store_and_every_worker() -> None:
    plan = reconcile(make_job().workers(2).build(), [], NOW)
    assert _names(plan.create) == ["Service/digits", "Pod/digits-rdzv", "Pod/digits-worker-0", "Pod/digits-worker-1"]
    assert plan.status.phase == c.PHASE_PENDING
    assert plan.status.start_time == NOW
    assert plan.status.workers == "0/2" and plan.status.desired == 2
    assert plan.status.selector == "ludus.dev/job-name=digits,ludus.dev/role=worker"
    assert _cond(plan, c.COND_CREATED).status == "True"
    assert plan.events == []  # the Created condition says it; no Event write per job
    assert plan.status.observed_generation == 1


def test_running_the_same_pass_twice_creates_nothing_new() -> None:
    job = make_job().workers(2).build()
    first = reconcile(job, [], NOW)
    expected = frozenset(m["metadata"]["name"] for m in first.create if m["kind"] == "Pod")
    again = reconcile(job.model_copy(update={"status": first.status}), [], NOW, expected)
    assert again.create == [] and again.delete == []


def test_only_missing_workers_are_created() -> None:
    job = make_job().workers(3).status(phase="Pending", startTime=T0.isoformat()).build()
    plan = reconcile(job, [store("digits"), pod("digits", 0), pod("digits", 2, "Pending")], NOW)
    assert _names(plan.create) == ["Service/digits", "Pod/digits-worker-1"]
    assert plan.status.start_time == T0  # unchanged: the job had started


def test_pods_made_by_a_pass_whose_status_waited_date_the_start() -> None:
    """The creation pass's status write may wait (batched); the start is still when pods were made."""
    job = make_job().workers(2).build()
    pods = [store("digits"), pod("digits", 0, "Pending", age=3), pod("digits", 1, "Pending", age=1)]
    plan = reconcile(job, pods, NOW)
    assert plan.status.start_time == T0  # the oldest pod (the store, age 0)
    assert _cond(plan, c.COND_CREATED).last_transition_time == T0


# --- running ----------------------------------------------------------------------------------------
def test_all_workers_ready_and_store_ready_is_running() -> None:
    job = make_job().workers(2).status(phase="Pending", startTime=T0.isoformat()).build()
    plan = reconcile(job, running("digits", 2), NOW)
    assert plan.status.phase == c.PHASE_RUNNING
    assert plan.status.workers == "2/2" and plan.status.ready == 2 and plan.status.active == 2
    assert _cond(plan, c.COND_RUNNING).status == "True"
    assert plan.events == []  # a first start is in the Running condition: no Event write per job
    assert plan.create == [] and plan.delete == []


def test_workers_running_but_store_not_ready_stays_pending() -> None:
    job = make_job().workers(2).status(phase="Pending", startTime=T0.isoformat()).build()
    pods = [store("digits", ready=False), pod("digits", 0), pod("digits", 1)]
    assert reconcile(job, pods, NOW).status.phase == c.PHASE_PENDING


def test_a_running_job_that_sees_nothing_new_changes_nothing() -> None:
    job = make_job().workers(2).status(phase="Pending", startTime=T0.isoformat()).build()
    first = reconcile(job, running("digits", 2), NOW)
    second = reconcile(job.model_copy(update={"status": first.status}), running("digits", 2), NOW + timedelta(1))
    assert second.status == first.status and second.events == []


def test_an_unreadable_pod_is_named_on_its_job_once_and_cleared_when_it_reads_again() -> None:
    from dataclasses import replace

    job = make_job().workers(2).status(phase="Running", startTime=T0.isoformat()).build()
    garbled = replace(pod("digits", 1), phase="Unknown", ready=False, unreadable="RecursionError: too deep")
    first = reconcile(job, [store("digits"), pod("digits", 0), garbled], NOW)
    cond = _cond(first, c.COND_PODS_READABLE)
    assert (cond.status, cond.reason) == ("False", c.REASON_POD_UNREADABLE)
    assert cond.message == "pod digits-worker-1: RecursionError: too deep (kept as Unknown)"
    assert [(e.type, e.reason, e.message) for e in first.events if e.reason == c.REASON_POD_UNREADABLE] == [
        ("Warning", c.REASON_POD_UNREADABLE, cond.message)]
    again = reconcile(job.model_copy(update={"status": first.status}), [store("digits"), pod("digits", 0), garbled],
                      NOW + timedelta(seconds=5))
    assert _cond(again, c.COND_PODS_READABLE).status == "False"
    assert not [e for e in again.events if e.reason == c.REASON_POD_UNREADABLE]  # said once
    healed = reconcile(job.model_copy(update={"status": again.status}), running("digits", 2),
                       NOW + timedelta(seconds=10))
    assert (_cond(healed, c.COND_PODS_READABLE).status, _cond(healed, c.COND_PODS_READABLE).reason) == (
        "True", c.REASON_PODS_READABLE)


def test_a_readable_job_has_no_pods_readable_condition() -> None:
    job = make_job().workers(2).status(phase="Pending", startTime=T0.isoformat()).build()
    plan = reconcile(job, running("digits", 2), NOW)
    assert all(x.type != c.COND_PODS_READABLE for x in plan.status.conditions)


# --- failures and restart policies --------------------------------------------------------------------
def _running_job(**spec):
    builder = make_job().workers(2).status(phase="Running", startTime=T0.isoformat())
    if spec:
        builder = builder.spec(**spec)
    return builder


def test_an_agent_that_gave_up_restarts_the_whole_group_once() -> None:
    """Exit code < 128: torchrun closed the rendezvous, so every worker and the store start afresh."""
    job = _running_job().build()
    failed = pod("digits", 1, "Failed", exit_code=1)
    pods = [store("digits"), pod("digits", 0), failed]
    plan = reconcile(job, pods, NOW)
    assert plan.status.restarts == 1
    assert sorted((d.name, d.reason) for d in plan.delete) == [
        ("digits-rdzv", c.REASON_GROUP_RESTART),
        ("digits-worker-0", c.REASON_GROUP_RESTART),
        ("digits-worker-1", c.REASON_POD_FAILED),
    ]
    assert set(plan.status.counted_failures) == {p.uid for p in pods}
    assert plan.create == []
    assert plan.status.phase == c.PHASE_RESTARTING
    assert "restarting the worker group" in plan.events[0].message and "exit code 1" in plan.events[0].message

    # The pods stopped alongside (now terminating) are not counted again.
    after = job.model_copy(update={"status": plan.status})
    terminating = [store("digits").__class__(**{**store("digits").__dict__, "deleting": True}),
                   pod("digits", 0, deleting=True), failed]
    again = reconcile(after, terminating, NOW)
    assert again.status.restarts == 1 and again.events == [] and again.create == []

    # Once they are gone, a fresh store and every worker are created.
    fresh = reconcile(after, [], NOW)
    assert _names(fresh.create) == ["Service/digits", "Pod/digits-rdzv", "Pod/digits-worker-0", "Pod/digits-worker-1"]
    assert fresh.status.restarts == 1 and fresh.status.counted_failures == []


def test_a_worker_killed_by_a_signal_is_replaced_alone() -> None:
    """Exit code >= 128: the agent died by a signal and left the rendezvous open for a replacement."""
    job = _running_job().build()
    failed = pod("digits", 1, "Failed", exit_code=137)
    plan = reconcile(job, [store("digits"), pod("digits", 0), failed], NOW)
    assert plan.status.restarts == 1
    assert plan.status.counted_failures == [failed.uid]
    assert [(d.name, d.reason) for d in plan.delete] == [("digits-worker-1", c.REASON_POD_FAILED)]
    assert plan.create == []  # the replacement waits until the failed pod is gone
    assert plan.status.phase == c.PHASE_RESTARTING
    assert "replacing it" in plan.events[0].message
    assert plan.status.last_restart.reason == c.REASON_POD_FAILED
    assert _cond(plan, c.COND_RESTARTING).reason == c.REASON_POD_FAILED

    # The same failed pod seen again (stale view, or after an operator restart): no second count.
    again = reconcile(job.model_copy(update={"status": plan.status}), [store("digits"), pod("digits", 0), failed], NOW)
    assert again.status.restarts == 1 and again.events == []

    # Once it is gone, the same index is recreated and the count stays.
    gone = reconcile(job.model_copy(update={"status": plan.status}), [store("digits"), pod("digits", 0)], NOW)
    assert _names(gone.create) == ["Service/digits", "Pod/digits-worker-1"]
    assert gone.status.restarts == 1 and gone.status.counted_failures == []
    assert gone.status.phase == c.PHASE_RESTARTING

    # Back to all running: Running again, the Restarting condition turns False.
    healed = reconcile(job.model_copy(update={"status": gone.status}), running("digits", 2), NOW)
    assert healed.status.phase == c.PHASE_RUNNING
    assert [(e.reason, e.message) for e in healed.events] == [
        (c.REASON_ALL_RUNNING, "2/2 workers running again after 1 restarts")]
    assert _cond(healed, c.COND_RESTARTING).status == "False"


def test_workers_wait_for_a_terminating_store_to_be_replaced() -> None:
    job = _running_job().build()
    old_store = store("digits").__class__(**{**store("digits").__dict__, "deleting": True})
    plan = reconcile(job.model_copy(update={"status": job.status.model_copy(update={"restarts": 1})}),
                     [old_store], NOW)
    assert plan.create == []


@pytest.mark.parametrize(
    ("code", "retryable_list", "retried"),
    [(137, [], True), (143, [], True), (1, [], False), (3, [3], True), (0, [], None)],
    ids=[
        "exit 137 (SIGKILL) is retried",
        "exit 143 (SIGTERM) is retried",
        "exit 1 fails the job",
        "a listed exit code is retried",
        "exit 0 is not a failure",
    ],
)
def test_exit_code_policy(code: int, retryable_list: list[int], retried: bool | None) -> None:
    job = _running_job(restartPolicy="ExitCode", retryableExitCodes=retryable_list).build()
    phase = "Succeeded" if code == 0 else "Failed"
    plan = reconcile(job, [store("digits"), pod("digits", 0), pod("digits", 1, phase, exit_code=code)], NOW)
    if retried is None:
        assert plan.status.restarts == 0 and plan.status.phase != c.PHASE_FAILED
    elif retried:
        assert plan.status.restarts == 1 and plan.status.phase == c.PHASE_RESTARTING
    else:
        assert plan.status.phase == c.PHASE_FAILED
        assert _cond(plan, c.COND_FAILED).reason == c.REASON_EXIT_CODE_FATAL
        assert {d.name for d in plan.delete} == {"digits-worker-0", "digits-rdzv"}


def test_never_policy_fails_on_the_first_failure_and_cleans_running_pods() -> None:
    job = _running_job(restartPolicy="Never").build()
    plan = reconcile(job, [store("digits"), pod("digits", 0), pod("digits", 1, "Failed", exit_code=2)], NOW)
    assert plan.status.phase == c.PHASE_FAILED and plan.status.completion_time == NOW
    assert _cond(plan, c.COND_FAILED).reason == c.REASON_NEVER_RESTART
    assert {d.name for d in plan.delete} == {"digits-worker-0", "digits-rdzv"}


def test_backoff_limit_fails_the_job_when_reached() -> None:
    job = _running_job(backoffLimit=2).status(restarts=2).build()
    plan = reconcile(job, [store("digits"), pod("digits", 0), pod("digits", 1, "Failed", exit_code=1)], NOW)
    assert plan.status.phase == c.PHASE_FAILED
    assert _cond(plan, c.COND_FAILED).reason == c.REASON_BACKOFF_LIMIT
    assert plan.status.restarts == 2


def test_backoff_limit_zero_fails_at_once() -> None:
    job = _running_job(backoffLimit=0).build()
    plan = reconcile(job, [store("digits"), pod("digits", 0), pod("digits", 1, "Failed", exit_code=1)], NOW)
    assert _cond(plan, c.COND_FAILED).reason == c.REASON_BACKOFF_LIMIT


def test_elastic_max_restarts_caps_the_backoff_limit() -> None:
    job = make_job().workers(2).elastic(1, 2, max_restarts=1).status(phase="Running", restarts=1).build()
    plan = reconcile(job, [store("digits"), pod("digits", 0), pod("digits", 1, "Failed", exit_code=1)], NOW)
    assert _cond(plan, c.COND_FAILED).reason == c.REASON_BACKOFF_LIMIT


@pytest.mark.parametrize(
    ("observed", "reason"),
    [
        (dict(phase="Running", deleting=True), c.REASON_POD_DELETED),
        (dict(phase="Failed", reason="Evicted"), c.REASON_POD_EVICTED),
        (dict(phase="Failed", disruption="EvictionByEvictionAPI"), c.REASON_POD_EVICTED),
        (dict(phase="Failed", disruption="DeletionByPodGC"), c.REASON_NODE_LOST),
        (dict(phase="Running", deleting=True, disruption="DeletionByTaintManager"), c.REASON_NODE_LOST),
    ],
    ids=[
        "a worker deleted by someone else is replaced",
        "an evicted worker is replaced",
        "a worker evicted through the API is replaced",
        "a worker on a vanished node is replaced",
        "a worker on an unreachable node is replaced",
    ],
)
def test_disruptions_are_restarts_with_their_own_reason_even_under_never(observed: dict, reason: str) -> None:
    job = _running_job(restartPolicy="Never").build()
    plan = reconcile(job, [store("digits"), pod("digits", 0), pod("digits", 1, **observed)], NOW)
    assert plan.status.phase == c.PHASE_RESTARTING
    assert plan.status.restarts == 1 and plan.events[0].reason == reason


def test_a_pod_already_terminating_is_not_deleted_again() -> None:
    job = _running_job().build()
    plan = reconcile(job, [store("digits"), pod("digits", 0), pod("digits", 1, deleting=True)], NOW)
    assert plan.delete == [] and plan.create == []


# --- success ----------------------------------------------------------------------------------------
def test_fixed_job_succeeds_when_every_worker_exits_zero() -> None:
    job = _running_job().build()
    one_done = [store("digits"), pod("digits", 0, "Succeeded", exit_code=0), pod("digits", 1)]
    assert reconcile(job, one_done, NOW).status.phase == c.PHASE_RUNNING
    both = [store("digits"), pod("digits", 0, "Succeeded", exit_code=0), pod("digits", 1, "Succeeded", exit_code=0)]
    plan = reconcile(job, both, NOW)
    assert plan.status.phase == c.PHASE_SUCCEEDED and plan.status.completion_time == NOW
    assert plan.status.succeeded == 2
    assert [d.name for d in plan.delete] == ["digits-rdzv"]  # cleanPodPolicy Running: only what still runs
    assert plan.events[-1].reason == c.REASON_SUCCEEDED


def test_elastic_job_succeeds_when_worker_zero_exits_zero() -> None:
    job = make_job().workers(2).elastic(1, 2).status(phase="Running").build()
    plan = reconcile(job, [store("digits"), pod("digits", 0, "Succeeded", exit_code=0), pod("digits", 1)], NOW)
    assert plan.status.phase == c.PHASE_SUCCEEDED
    assert {d.name for d in plan.delete} == {"digits-worker-1", "digits-rdzv"}


@pytest.mark.parametrize(
    ("policy", "deleted"),
    [("None", set()), ("Running", {"digits-rdzv"}), ("All", {"digits-rdzv", "digits-worker-0", "digits-worker-1"})],
    ids=["cleanPodPolicy None keeps every pod", "Running deletes what still runs", "All deletes every pod"],
)
def test_clean_pod_policy(policy: str, deleted: set[str]) -> None:
    job = _running_job(cleanPodPolicy=policy).build()
    pods = [store("digits"), pod("digits", 0, "Succeeded", exit_code=0), pod("digits", 1, "Succeeded", exit_code=0)]
    assert {d.name for d in reconcile(job, pods, NOW).delete} == deleted


def test_terminal_jobs_stay_terminal_and_create_nothing() -> None:
    job = _running_job().status(phase="Succeeded", completionTime=T0.isoformat()).build()
    plan = reconcile(job, [], NOW)
    assert plan.status.phase == c.PHASE_SUCCEEDED and plan.create == [] and plan.events == []


# --- deadlines, TTL, suspend ------------------------------------------------------------------------
def test_active_deadline_fails_the_job_and_stops_its_pods() -> None:
    job = _running_job(activeDeadlineSeconds=60).build()
    plan = reconcile(job, running("digits", 2), T0 + timedelta(seconds=61))
    assert plan.status.phase == c.PHASE_FAILED
    assert _cond(plan, c.COND_FAILED).reason == c.REASON_DEADLINE
    assert len(plan.delete) == 3


def test_active_deadline_requeues_for_the_time_left() -> None:
    job = _running_job(activeDeadlineSeconds=600).build()
    plan = reconcile(job, running("digits", 2), T0 + timedelta(seconds=100))
    assert plan.requeue_after == pytest.approx(500)


def test_ttl_after_finished_deletes_the_job_when_due() -> None:
    done = T0 + timedelta(minutes=1)
    job = _running_job(ttlSecondsAfterFinished=30).status(phase="Succeeded", completionTime=done.isoformat()).build()
    early = reconcile(job, [], done + timedelta(seconds=10))
    assert not early.delete_job and early.requeue_after == pytest.approx(20)
    late = reconcile(job, [], done + timedelta(seconds=31))
    assert late.delete_job and late.events[0].reason == c.REASON_TTL_EXPIRED


def test_suspend_deletes_every_pod_and_keeps_the_job() -> None:
    job = _running_job(suspend=True).build()
    plan = reconcile(job, running("digits", 2), NOW)
    assert plan.status.phase == c.PHASE_SUSPENDED and plan.create == []
    assert len(plan.delete) == 3
    assert plan.status.start_time is None
    assert _cond(plan, c.COND_SUSPENDED).status == "True"


def test_resume_recreates_the_pods() -> None:
    job = make_job().workers(2).status(phase="Suspended").build()
    plan = reconcile(job, [], NOW)
    assert len(plan.create) == 4 and plan.status.phase == c.PHASE_PENDING
    assert c.REASON_RESUMED in [e.reason for e in plan.events]
    assert _cond(plan, c.COND_SUSPENDED) is None or _cond(plan, c.COND_SUSPENDED).status == "False"


# --- scaling ----------------------------------------------------------------------------------------
def test_scale_up_adds_the_next_index_and_stays_running() -> None:
    job = make_job().workers(3).elastic(1, 4).status(phase="Running", desired=2).build()
    plan = reconcile(job, running("digits", 2), NOW)
    assert _names(plan.create) == ["Service/digits", "Pod/digits-worker-2"]
    assert plan.status.phase == c.PHASE_RUNNING and plan.status.workers == "2/3"
    assert c.REASON_SCALED in [e.reason for e in plan.events]


def test_scale_down_removes_the_highest_indices_without_counting_restarts() -> None:
    job = make_job().workers(1).elastic(1, 4).status(phase="Running", desired=3).build()
    plan = reconcile(job, running("digits", 3), NOW)
    assert [d.name for d in plan.delete] == ["digits-worker-2", "digits-worker-1"]
    assert plan.status.restarts == 0 and plan.status.workers == "1/1"


# --- missing and odd pods -----------------------------------------------------------------------------
def test_a_vanished_store_is_recreated() -> None:
    job = _running_job().build()
    plan = reconcile(job, [pod("digits", 0), pod("digits", 1)], NOW)
    assert _names(plan.create) == ["Service/digits", "Pod/digits-rdzv"]
    assert plan.status.restarts == 0


def test_of_two_pods_with_one_index_the_newer_counts() -> None:
    job = _running_job().build()
    old = pod("digits", 1, "Failed", exit_code=1, uid="old", deleting=True, age=0)
    new = pod("digits", 1, "Running", uid="new", age=10)
    plan = reconcile(job, [store("digits"), pod("digits", 0), old, new], NOW)
    assert plan.status.restarts == 0 and plan.status.phase == c.PHASE_RUNNING


def test_pending_unschedulable_workers_keep_the_job_pending() -> None:
    job = make_job().workers(2).status(phase="Pending", startTime=T0.isoformat()).build()
    plan = reconcile(job, [store("digits"), pod("digits", 0, "Pending"), pod("digits", 1, "Pending")], NOW)
    assert plan.status.phase == c.PHASE_PENDING and plan.create == [] and plan.status.active == 2


def test_invalid_spec_fails_without_deleting_anything() -> None:
    job = make_job().build()
    plan = invalid_spec_plan(job.status, 3, "spec.resources.memory: bad", NOW)
    assert plan.status.phase == c.PHASE_FAILED and plan.delete == [] and plan.create == []
    assert _cond(plan, c.COND_FAILED).reason == c.REASON_INVALID_SPEC
    assert plan.status.observed_generation == 3


def test_pods_of_an_earlier_job_with_the_same_name_are_ignored() -> None:
    job = _running_job().build()
    leftovers = [pod("digits", 0, "Failed", exit_code=1, owner="uid-old"), pod("digits", 1, owner="uid-old")]
    plan = reconcile(job, [store("digits"), *leftovers], NOW)
    assert plan.status.restarts == 0 and plan.delete == []
    assert _names(plan.create) == ["Service/digits", "Pod/digits-worker-0", "Pod/digits-worker-1"]


def test_a_running_job_whose_workers_are_exiting_stays_running() -> None:
    job = _running_job().build()
    exiting = [store("digits"), pod("digits", 0, "Running", ready=False), pod("digits", 1, "Running", ready=False)]
    plan = reconcile(job, exiting, NOW)
    assert plan.status.phase == c.PHASE_RUNNING and plan.status.workers == "0/2"


# --- stall detection ------------------------------------------------------------------------------
def _stall_job(seconds: int = 60, step: int | None = 40, moved: int = 0, restarts: int = 0):
    status = {
        "phase": "Running", "startTime": T0.isoformat(), "restarts": restarts,
        "conditions": [{"type": "Running", "status": "True", "reason": c.REASON_ALL_RUNNING,
                        "lastTransitionTime": T0.isoformat()}],
    }
    if step is not None:
        status["progress"] = {"step": step, "updatedAt": (T0 + timedelta(seconds=moved)).isoformat()}
    return make_job().workers(2).spec(progressDeadlineSeconds=seconds, backoffLimit=3).status(**status).build()


def test_progress_enters_the_status_only_when_the_step_moves() -> None:
    from ludus.trainingjob.progress import ProgressSample

    job = _stall_job(600, step=40, moved=10)
    same = reconcile(job, running("digits", 2), NOW, progress=ProgressSample(40, loss=0.1, observed_at=NOW))
    assert same.status.progress == job.status.progress  # no write for an unchanged step
    sample = ProgressSample(41, epoch=1, loss=0.25, samples_per_second=90.0, observed_at=NOW)
    moved = reconcile(job, running("digits", 2), NOW, progress=sample)
    assert moved.status.progress.step == 41 and moved.status.progress.updated_at == NOW
    assert moved.status.progress.loss == 0.25 and moved.status.progress.samples_per_second == 90.0


def test_a_job_whose_step_stopped_moving_restarts_its_group_as_stalled() -> None:
    job = _stall_job(60, step=40, moved=100)
    before = reconcile(job, running("digits", 2), T0 + timedelta(seconds=159))
    assert before.delete == [] and before.status.phase == c.PHASE_RUNNING
    assert before.requeue_after == 1.0  # woken exactly at the deadline

    plan = reconcile(job, running("digits", 2), T0 + timedelta(seconds=160))
    assert sorted(d.name for d in plan.delete) == ["digits-rdzv", "digits-worker-0", "digits-worker-1"]
    assert {d.reason for d in plan.delete} == {c.REASON_STALLED}
    assert plan.status.restarts == 1 and plan.status.phase == c.PHASE_RESTARTING
    restarting = _cond(plan, c.COND_RESTARTING)
    assert restarting.reason == c.REASON_STALLED and "no training progress for 60s (step 40)" in restarting.message
    assert [e.reason for e in plan.events] == [c.REASON_STALLED]
    assert plan.status.last_restart.reason == c.REASON_STALLED and plan.status.last_restart.time is not None

    # The deleted pods are part of this one restart: seen terminating, they are not counted again,
    # and the condition keeps saying why until the group is whole.
    doomed = [p.__class__(**{**p.__dict__, "deleting": True}) for p in running("digits", 2)]
    later = reconcile(job.model_copy(update={"status": plan.status}), doomed, T0 + timedelta(seconds=161))
    assert later.status.restarts == 1 and later.events == [] and later.create == []
    assert _cond(later, c.COND_RESTARTING).reason == c.REASON_STALLED


def test_a_hang_before_the_first_step_counts_from_when_the_group_was_running() -> None:
    job = _stall_job(60, step=None)
    assert reconcile(job, running("digits", 2), T0 + timedelta(seconds=59)).delete == []
    assert reconcile(job, running("digits", 2), T0 + timedelta(seconds=60)).status.restarts == 1


def test_a_stall_past_the_restart_limit_fails_the_job() -> None:
    job = _stall_job(60, step=40, moved=0, restarts=3)
    plan = reconcile(job, running("digits", 2), NOW)
    assert plan.status.phase == c.PHASE_FAILED
    assert _cond(plan, c.COND_FAILED).reason == c.REASON_BACKOFF_LIMIT
    assert "no training progress" in _cond(plan, c.COND_FAILED).message


def test_without_a_progress_deadline_nothing_is_ever_stalled() -> None:
    job = make_job().workers(2).status(
        phase="Running", startTime=T0.isoformat(),
        conditions=[{"type": "Running", "status": "True", "lastTransitionTime": T0.isoformat()}],
    ).build()
    plan = reconcile(job, running("digits", 2), T0 + timedelta(days=3))
    assert plan.delete == [] and plan.requeue_after is None


def test_pods_created_by_a_pass_whose_status_was_lost_still_start_the_job() -> None:
    """If only the pods landed (a lost or batched write), the next pass records the start, dated by the pods."""
    plan = reconcile(make_job().workers(2).build(), running("digits", 2), NOW)
    assert plan.create == [] and plan.status.start_time == T0
    assert _cond(plan, c.COND_CREATED).status == "True"
    assert plan.status.phase == c.PHASE_RUNNING


def test_a_job_whose_workers_finish_one_by_one_never_looks_degraded() -> None:
    """One worker exited 0, the other finishes its last step: the status does not change in a way that
    must be written at once (the count change waits), and the last exit ends the job."""
    from ludus.controller.apply import status_dump
    from ludus.controller.batching import can_wait

    job = make_job().workers(2).status(phase="Running", startTime=T0.isoformat(), workers="2/2", ready=2,
                                       active=2, observedGeneration=1, desired=2)
    job = job.build()
    first = reconcile(job, running("digits", 2), NOW)
    job = job.model_copy(update={"status": first.status})
    one_done = [store("digits"), pod("digits", 0), pod("digits", 1, "Succeeded", exit_code=0)]
    plan = reconcile(job, one_done, NOW)
    assert plan.status.phase == c.PHASE_RUNNING and plan.status.workers == "2/2"
    assert can_wait(status_dump(job.status), status_dump(plan.status))
    both = [store("digits"), pod("digits", 0, "Succeeded", exit_code=0), pod("digits", 1, "Succeeded", exit_code=0)]
    done = reconcile(job, both, NOW)
    assert done.status.phase == c.PHASE_SUCCEEDED and done.status.workers == "2/2"


@pytest.mark.parametrize(("argument", "words", "condition", "refused", "accepted", "other"), [
    ("refused", 'Pod digits-worker-0: pods "digits-worker-0" is forbidden: exceeded quota: pods, limited: pods=1',
     c.COND_CREATED, c.REASON_CREATE_REFUSED, c.REASON_CREATED, c.COND_UPDATED),
    ("update_refused", "TrainingJob digits: admission policy denied the request: jobs here may not be suspended",
     c.COND_UPDATED, c.REASON_UPDATE_REFUSED, c.REASON_UPDATED, c.COND_CREATED),
])
def test_what_the_api_server_refused_of_a_child_is_named_in_its_condition_with_one_event(
    argument: str, words: str, condition: str, refused: str, accepted: str, other: str,
) -> None:
    """A create refused: Created False; a change refused: ChildrenUpdated False. Each says only its own."""
    from ludus.api.conditions import get_condition
    from ludus.trainingjob.reconcile import reconcile as decide

    job = make_job().workers(1).build()
    plan = decide(job, [], T0, **{argument: words})
    said = get_condition(plan.status, condition)
    assert said is not None and (said.status, said.reason, said.message) == ("False", refused, words)
    assert not [x for x in plan.status.conditions if x.type == other and x.status == "False"]
    assert [e.message for e in plan.events if e.reason == refused] == [words]
    again = decide(job.model_copy(update={"status": plan.status}), [], T0, **{argument: words})
    assert refused not in [e.reason for e in again.events]  # said once
    healed = decide(job.model_copy(update={"status": again.status}), [], T0)
    after = get_condition(healed.status, condition)
    assert after is not None and (after.status, after.reason) == ("True", accepted)


def test_only_refusals_are_reported_instead_of_raised() -> None:
    from ludus.controller.apply import refusal
    from ludus.runtime.kube import ApiError

    pod = {"kind": "Pod", "metadata": {"name": "digits-worker-0"}}
    assert refusal(ApiError(403, "POST", "/p", "exceeded quota"), pod) == "Pod digits-worker-0: exceeded quota"
    assert refusal(ApiError(422, "POST", "/p", "invalid"), pod) == "Pod digits-worker-0: invalid"
    for transient in (ApiError(500, "POST", "/p", "x"), ApiError(429, "POST", "/p", "x"), TimeoutError()):
        assert refusal(transient, pod) is None


def test_a_refused_patch_names_the_child_it_was_for() -> None:
    from ludus.controller.apply import refused_child
    from ludus.runtime.kube import ApiError

    denied = ApiError(422, "PATCH", "/p", "admission policy denied the request")
    assert refused_child(denied, "Workload", "trainingjob-x") == \
        "Workload trainingjob-x: admission policy denied the request"
    assert refused_child(ApiError(409, "PATCH", "/p", "conflict"), "TrainingJob", "x") is None
