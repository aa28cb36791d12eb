"""Pod bodies reduced to observations: phases, exit codes, disruption reasons."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.trainingjob.observe import observe_pod


def _pod(phase: str = "Running", **extra) -> dict:
    body = {
        "metadata": {
            "name": "digits-worker-1",
            "uid": "u1",
            "creationTimestamp": "2026-01-01T12:00:00Z",
            "labels": {c.LABEL_ROLE: "worker", c.LABEL_REPLICA_INDEX: "1", c.LABEL_JOB_NAME: "digits"},
            "ownerReferences": [{"uid": "job-uid", "controller": True}],
        },
        "spec": {"nodeName": "kwok-gpu-0"},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    for key, value in extra.items():
        body[key].update(value)
    return body


def test_a_running_ready_worker() -> None:
    obs = observe_pod(_pod())
    assert (obs.name, obs.uid, obs.role, obs.index, obs.phase) == ("digits-worker-1", "u1", "worker", 1, "Running")
    assert obs.ready and not obs.deleting and not obs.finished and obs.disrupted == ""
    assert obs.node_name == "kwok-gpu-0" and obs.created_at is not None and obs.owner_uid == "job-uid"


def test_exit_code_comes_from_the_trainer_container() -> None:
    status = {
        "phase": "Failed",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {"name": "sidecar", "state": {"terminated": {"exitCode": 0}}},
            {"name": "trainer", "state": {"terminated": {"exitCode": 137}}},
        ],
    }
    obs = observe_pod(_pod(status=status))
    assert obs.exit_code == 137 and obs.finished and not obs.ready


def test_exit_code_from_last_state_when_state_is_waiting() -> None:
    trainer = {"name": "trainer", "state": {"waiting": {}}, "lastState": {"terminated": {"exitCode": 2}}}
    status = {"containerStatuses": [trainer]}
    assert observe_pod(_pod(status=status)).exit_code == 2


def test_deletion_and_disruption_reasons() -> None:
    deleting = observe_pod(_pod(metadata={"deletionTimestamp": "2026-01-01T12:01:00Z"}))
    assert deleting.deleting and deleting.disrupted == c.REASON_POD_DELETED
    evicted = observe_pod(_pod(status={"phase": "Failed", "reason": "Evicted"}))
    assert evicted.disrupted == c.REASON_POD_EVICTED
    gc = observe_pod(_pod(status={"phase": "Failed", "conditions": [
        {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC"}]}))
    assert gc.disrupted == c.REASON_NODE_LOST
    succeeded_then_deleted = observe_pod(_pod(status={"phase": "Succeeded"}, metadata={"deletionTimestamp": "x"}))
    assert succeeded_then_deleted.disrupted == ""


def test_a_pod_without_status_is_pending_and_the_store_has_no_index() -> None:
    body = {"metadata": {"name": "digits-rdzv", "labels": {c.LABEL_ROLE: "rendezvous"}}}
    obs = observe_pod(body)
    assert obs.phase == "Pending" and obs.index is None and obs.role == "rendezvous"


def test_a_workers_exit_counts_before_the_kubelet_moves_the_phase() -> None:
    """The kubelet reports the trainer's exit first (phase still Running), the phase in a later update."""
    for code, phase in ((0, "Succeeded"), (137, "Failed")):
        status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                  "containerStatuses": [{"name": "trainer", "state": {"terminated": {"exitCode": code}}}]}
        obs = observe_pod(_pod(status=status))
        assert obs.phase == phase and obs.finished and obs.exit_code == code
    # A restarted-in-place container's earlier exit (lastState) does not end a running pod.
    status = {"phase": "Running", "containerStatuses": [
        {"name": "trainer", "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1}}}]}
    assert observe_pod(_pod(status=status)).phase == "Running"
    # The rendezvous store is not a worker: its phase is the kubelet's.
    store = _pod(status={"phase": "Running", "containerStatuses": [
        {"name": "trainer", "state": {"terminated": {"exitCode": 0}}}]})
    store["metadata"]["labels"][c.LABEL_ROLE] = c.ROLE_RENDEZVOUS
    assert observe_pod(store).phase == "Running"


def test_a_termination_message_of_deeply_nested_brackets_is_no_evaluation() -> None:
    """Brackets nested thousands deep exhaust json's recursion (RecursionError, not ValueError):
    such a message is not a report and is skipped before it is parsed."""
    from ludus.trainingjob.observe import nesting_depth, observe_pod

    for message in ['{"ludusEvaluation":' + "[" * 2000 + "]" * 2000 + "}",
                    '{"ludusEvaluation":' + "{\"a\":" * 900 + "1" + "}" * 900 + "}"]:
        body = {"metadata": {"name": "p", "uid": "u", "labels": {}},
                "status": {"phase": "Failed", "containerStatuses": [
                    {"name": "trainer", "state": {"terminated": {"exitCode": 1, "message": message[:4096]}}}]}}
        assert nesting_depth(message) > 100
        assert observe_pod(body).evaluation is None and observe_pod(body).exit_code == 1


def test_only_the_pods_the_job_controls_are_its_pods() -> None:
    from ludus.trainingjob.observe import own_pods
    from tests.factories import pod

    mine, stray, earlier = pod("digits", 0), pod("digits", 1, owner=""), pod("digits", 1, owner="uid-old")
    assert own_pods("uid-digits", [mine, stray, earlier]) == [mine]


def test_a_failed_object_store_check_fails_the_worker_with_its_words() -> None:
    """The init container found the bucket missing: the pod is Failed (before the kubelet moves its phase),
    its exit code and the error come from that container; a check that passed leaves the trainer's."""
    check = {"name": c.CONTAINER_STORE_CHECK, "state": {"terminated": {
        "exitCode": 1, "message": '{"ludusEvaluation":{"error":{"reason":"CheckpointBucketNotFound",'
                                  '"message":"the bucket does not exist"}}}'}}}
    trainer = {"name": "trainer", "state": {"waiting": {"reason": "PodInitializing"}}}
    obs = observe_pod(_pod("Pending", status={"initContainerStatuses": [check], "containerStatuses": [trainer]}))
    assert (obs.phase, obs.exit_code) == ("Failed", 1)
    assert obs.evaluation == {"error": {"reason": "CheckpointBucketNotFound", "message": "the bucket does not exist"}}

    passed = {"name": c.CONTAINER_STORE_CHECK, "state": {"terminated": {"exitCode": 0}}}
    running = {"name": "trainer", "state": {"running": {}}}
    obs = observe_pod(_pod(status={"initContainerStatuses": [passed], "containerStatuses": [running]}))
    assert (obs.phase, obs.exit_code, obs.evaluation) == ("Running", None, None)


def test_other_init_containers_say_nothing_for_the_trainer() -> None:
    """Only Ludus' own check is read: a user's init container cannot declare the job's failure."""
    theirs = {"name": "fetch-data", "state": {"terminated": {
        "exitCode": 1, "message": '{"ludusEvaluation":{"error":{"reason":"Anything","message":"x"}}}'}}}
    obs = observe_pod(_pod("Pending", status={"initContainerStatuses": [theirs]}))
    assert (obs.phase, obs.exit_code, obs.evaluation) == ("Pending", None, None)
