"""A restart is recorded once, with the cause that decided it, whatever order the pod events arrive in.

The stall restart stops the whole group (two workers and the store). Their watch events (terminating,
then gone) reach the operator in any interleaving, and the operator creates replacements as soon as
their names are free. Every pass here is fed the status the previous pass wrote and the pods as the
watch shows them at that point, as the controller does.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

import pytest

from ludus.api import constants as c
from ludus.api.models import TrainingJob
from ludus.trainingjob.observe import PodObservation
from ludus.trainingjob.reconcile import reconcile
from tests.factories import T0, make_job, pod, running, store

OLD = ("w0", "w1", "rdzv")
STALL_AT = T0 + timedelta(seconds=160)


def _stalled_job() -> TrainingJob:
    status = {
        "phase": "Running", "startTime": T0.isoformat(), "restarts": 0,
        "conditions": [{"type": "Running", "status": "True", "reason": c.REASON_ALL_RUNNING,
                        "lastTransitionTime": T0.isoformat()}],
        "progress": {"step": 40, "updatedAt": (T0 + timedelta(seconds=100)).isoformat()},
    }
    return make_job().workers(2).spec(progressDeadlineSeconds=60, backoffLimit=3).status(**status).build()


def _orders() -> list[tuple[str, ...]]:
    """Every order of the six events "X terminating" and "X gone", each pod's terminating first."""
    events = [f"{p}:{what}" for p in OLD for what in ("terminating", "gone")]
    out = []
    for order in itertools.permutations(events):
        if all(order.index(f"{p}:terminating") < order.index(f"{p}:gone") for p in OLD):
            out.append(order)
    return out


def _replacement(manifest: dict, serial: int) -> PodObservation:
    """What the watch shows for a pod the plan created: a new uid, Running once scheduled."""
    labels = manifest["metadata"]["labels"]
    role = labels[c.LABEL_ROLE]
    index = int(labels[c.LABEL_REPLICA_INDEX]) if role == c.ROLE_WORKER else None
    return replace(pod("digits", index, role=role), uid=f"new-{serial}", created_at=T0 + timedelta(seconds=200))


@pytest.mark.parametrize("order", _orders(), ids=lambda o: ",".join(o))
def test_the_stalled_groups_events_in_any_order_make_one_restart(order: tuple[str, ...]) -> None:
    job = _stalled_job()
    old = {"w0": pod("digits", 0), "w1": pod("digits", 1), "rdzv": store("digits")}
    plan = reconcile(job, list(old.values()), STALL_AT)
    assert plan.status.restarts == 1 and plan.status.last_restart.reason == c.REASON_STALLED
    visible = dict(old)
    created: list[PodObservation] = []
    now = STALL_AT
    for event in order:
        name, what = event.split(":")
        if what == "terminating":
            visible[name] = replace(visible[name], deleting=True)
        else:
            del visible[name]
        job = job.model_copy(update={"status": plan.status})
        now += timedelta(seconds=1)
        plan = reconcile(job, [*visible.values(), *created], now)
        # Replacements appear only for names no old pod holds any more.
        created += [_replacement(m, len(created)) for m in plan.create if m["kind"] == "Pod"]
        assert plan.status.restarts == 1, (event, plan.status)
        assert plan.status.last_restart.reason == c.REASON_STALLED, (event, plan.status.last_restart)
        assert not [e for e in plan.events if e.type == "Warning"], (event, plan.events)
        assert not [d for d in plan.delete if d.uid.startswith("new-")], (event, plan.delete)
    # The old group is gone: the new one runs, and the job with it, counted once.
    job = job.model_copy(update={"status": plan.status})
    final = reconcile(job, created, now + timedelta(seconds=1))
    assert sorted(p.name for p in created) == ["digits-rdzv", "digits-worker-0", "digits-worker-1"]
    assert final.status.phase == c.PHASE_RUNNING and final.status.restarts == 1
    assert final.status.counted_failures == []


def test_a_replacement_deleted_by_someone_else_is_a_restart_of_its_own() -> None:
    """Why the development cluster's kwok deletes pods by UID: deleting the replacement (same name,
    new uid) is a real second restart, so a fake kubelet that deletes by name makes one up."""
    job = _stalled_job()
    plan = reconcile(job, running("digits", 2), STALL_AT)
    job = job.model_copy(update={"status": plan.status})
    plan = reconcile(job, [], STALL_AT + timedelta(seconds=1))  # the old group is gone
    assert plan.status.restarts == 1
    new = [_replacement(m, i) for i, m in enumerate(plan.create) if m["kind"] == "Pod"]
    job = job.model_copy(update={"status": plan.status})
    deleted = [replace(p, deleting=True) if p.index == 0 else p for p in new]
    again = reconcile(job, deleted, STALL_AT + timedelta(seconds=2))
    assert again.status.restarts == 2 and again.status.last_restart.reason == c.REASON_POD_DELETED
