from __future__ import annotations

from ludus.api.names import pod_fqdn, rendezvous_pod_name, service_name, worker_pod_name
from ludus.builders.labels import selector_string, worker_selector
from ludus.builders.service import build_headless_service
from tests.factories import make_job


def test_headless_service_selects_every_pod_of_the_job() -> None:
    job = make_job().build()
    svc = build_headless_service(job)
    assert svc["metadata"]["name"] == "digits"
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "uid-digits"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {"ludus.dev/job-name": "digits"}
    assert {p["port"] for p in svc["spec"]["ports"]} == {29400, 9090}


def test_names_are_deterministic() -> None:
    job = make_job("bert").build()
    assert service_name(job) == "bert"
    assert worker_pod_name(job, 3) == "bert-worker-3"
    assert rendezvous_pod_name(job) == "bert-rdzv"
    assert pod_fqdn(job, "bert-rdzv") == "bert-rdzv.bert.team-a.svc"


def test_selector_string_is_sorted_for_the_scale_subresource() -> None:
    job = make_job().build()
    assert selector_string(worker_selector(job)) == "ludus.dev/job-name=digits,ludus.dev/role=worker"
