"""Which worker clusters a MultiKueue queue dispatches to, read from Kueue's objects as they are (any of
them may be malformed or missing), and which of them cannot be reached."""

from __future__ import annotations

from ludus.api import constants as c
from ludus.trainingjob.multikueue import admission_check_names, cluster_names, config_name, unavailable_clusters
from ludus.trainingjob.queueing import QueueStep, unreachable_workers


def test_the_chain_from_a_cluster_queue_to_its_worker_clusters() -> None:
    cq = {"spec": {"admissionChecksStrategy": {"admissionChecks": [{"name": "mk"}, {"name": 3}, "bad"]}}}
    assert admission_check_names(cq) == ["mk"]
    assert admission_check_names(None) == [] and admission_check_names({"spec": "x"}) == []
    check = {"spec": {"controllerName": "kueue.x-k8s.io/multikueue",
                      "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "MultiKueueConfig", "name": "cfg"}}}
    assert config_name(check) == "cfg"
    assert config_name({"spec": {"controllerName": "kueue.x-k8s.io/provisioning-request",
                                 "parameters": {"kind": "ProvisioningRequestConfig", "name": "p"}}}) is None
    assert cluster_names({"spec": {"clusters": ["w1", 2, "w2"]}}) == ["w1", "w2"]
    assert len(cluster_names({"spec": {"clusters": [f"w{i}" for i in range(1000)]}})) == 16


def test_a_cluster_missing_or_not_active_is_named_with_kueues_words() -> None:
    active = {"status": {"conditions": [{"type": "Active", "status": "True", "reason": "Active"}]}}
    refused = {"status": {"conditions": [{"type": "Active", "status": "False", "reason": "ClientConnectionFailed",
                                          "message": "dial tcp 127.0.0.1:1: connect: connection refused"}]}}
    not_tried = {"status": {}}
    assert unavailable_clusters({"w1": active, "w2": not_tried}) is None
    said = unavailable_clusters({"w1": active, "w2": refused, "w3": None})
    assert said is not None and "w1" not in said
    assert "worker cluster w2 is not reachable: dial tcp 127.0.0.1:1: connect: connection refused" in said
    assert "MultiKueueCluster w3 does not exist" in said


def test_only_a_waiting_job_says_its_worker_clusters_are_unreachable() -> None:
    waiting = QueueStep(condition=("False", c.REASON_QUEUED, "waiting"))
    said = "worker cluster w2 is not reachable: refused"
    assert unreachable_workers(waiting, said).condition == ("False", c.REASON_WORKER_CLUSTER_UNAVAILABLE, said)
    admitted = QueueStep(condition=("True", c.REASON_ADMITTED, "admitted"))
    assert unreachable_workers(admitted, "w2 down").condition == ("True", c.REASON_ADMITTED, "admitted")
    queued = QueueStep(condition=("False", c.REASON_QUEUED, "w"))
    assert unreachable_workers(queued, None).condition == ("False", c.REASON_QUEUED, "w")
