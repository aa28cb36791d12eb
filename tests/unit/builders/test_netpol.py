"""Each job's NetworkPolicy: only the job's own pods reach its pods, and the metrics readers reach the
metrics port; no spec can cut the job off from itself or open it to everyone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ludus.api import constants as c
from ludus.builders.netpol import PolicySettings, build_network_policy, namespace_qualified, policy_wanted
from ludus.cli import network_policy_settings
from ludus.trainingjob.reconcile import reconcile
from tests.factories import T0, make_job

PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
ON = PolicySettings(enabled=True, metrics_from=(PROMETHEUS,))


def test_the_policy_admits_the_jobs_own_pods_everywhere_and_the_readers_to_the_metrics_port() -> None:
    job = make_job().workers(2).build()
    policy = build_network_policy(job, ON)
    assert policy["kind"] == "NetworkPolicy" and policy["metadata"]["ownerReferences"][0]["uid"] == "uid-digits"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {c.LABEL_JOB_NAME: "digits"}}
    assert spec["policyTypes"] == ["Ingress"]  # egress stays open
    own, readers = spec["ingress"]
    assert own == {"from": [{"podSelector": {"matchLabels": {c.LABEL_JOB_NAME: "digits"}}}]}  # every port
    assert readers == {"from": [PROMETHEUS], "ports": [{"protocol": "TCP", "port": c.TRAINER_METRICS_PORT}]}


def test_it_is_created_with_the_service_when_on_and_never_when_off() -> None:
    kinds = [m["kind"] for m in reconcile(make_job().workers(1).build(), [], T0, policy=ON).create]
    assert kinds == ["Service", "NetworkPolicy", "Pod", "Pod"]
    off = make_job().workers(1).spec(networkPolicy={"enabled": False}).build()
    assert "NetworkPolicy" not in [m["kind"] for m in reconcile(off, [], T0, policy=ON).create]
    asked = make_job().workers(1).spec(networkPolicy={"enabled": True}).build()
    assert policy_wanted(asked, PolicySettings(enabled=False))


peers = st.lists(st.dictionaries(st.sampled_from(["podSelector", "namespaceSelector", "ipBlock"]),
                                 st.just({}), max_size=2), max_size=3)


@settings(max_examples=200)
@given(name=st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True), readers=peers,
       replicas=st.integers(1, 64), enabled=st.sampled_from([None, True, False]))
def test_no_spec_cuts_a_job_off_from_itself_or_opens_it_to_everyone(
    name: str, readers: list[dict[str, Any]], replicas: int, enabled: bool | None
) -> None:
    job = make_job(name).workers(replicas).spec(networkPolicy={"enabled": enabled}).build()
    policy = build_network_policy(job, PolicySettings(enabled=True, metrics_from=tuple(readers)))
    ingress = policy["spec"]["ingress"]
    own = {"podSelector": {"matchLabels": {c.LABEL_JOB_NAME: name}}}
    # The job's own pods reach every port of its pods, whatever else is there.
    assert any(own in rule["from"] and "ports" not in rule for rule in ingress)
    assert policy["spec"]["podSelector"] == {"matchLabels": {c.LABEL_JOB_NAME: name}}
    # No rule admits every source (a rule without `from`, or with an empty peer).
    assert all(rule.get("from") and all(rule["from"]) for rule in ingress)


def test_the_operators_flags_are_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    settings_ = network_policy_settings("on", json.dumps([PROMETHEUS]))
    assert settings_.enabled and settings_.metrics_from == (PROMETHEUS,)
    for bad in ("not json", "{}", "[{}]", "[1]"):
        with pytest.raises(SystemExit, match="--metrics-from"):
            network_policy_settings("on", bad)


@pytest.mark.parametrize("peer", [
    {"namespaceSelector": {}},  # any namespace: a tenant's own pod, labelled as Prometheus
    {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}},  # the job's own namespace
    {"namespaceSelector": {"matchLabels": {"team": "monitoring"}}},  # a label a namespace's owner may set
    {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                                 "values": ["x"]}]}},
])
def test_a_metrics_reader_a_tenant_could_pass_for_is_refused_at_start(peer: dict[str, Any]) -> None:
    with pytest.raises(SystemExit, match="namespace"):
        network_policy_settings("on", json.dumps([peer]))


def test_in_a_pod_the_operators_own_namespace_may_always_read_the_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Started without --metrics-from (no chart), policies on: its own polls are still let in."""
    monkeypatch.setenv("POD_NAMESPACE", "ludus-system")
    own = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ludus-system"}}}
    assert network_policy_settings("on", "[]").metrics_from == (own,)
    assert network_policy_settings("on", json.dumps([PROMETHEUS])).metrics_from == (own, PROMETHEUS)
    assert namespace_qualified({"ipBlock": {"cidr": "10.0.0.0/8"}})
