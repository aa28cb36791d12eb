"""Bad specs, fuzzed, on the real API server with the operator running.

Hypothesis draws TrainingJob specs from the model's fields: valid values, and up
to two fields set to something the model refuses. Each spec is applied as a user
would. A bad one must be refused naming a bad field (CRD schema, CEL), or be
accepted and end Failed with an InvalidSpec condition naming it (the operator's
own validation); a good one must be taken up by the operator. Through it all the
operator must not crash, and a job created before the fuzzing keeps being served.

The schema refuses every bad value the model knows of, so the operator's own
validation is fuzzed separately, on objects stored under a looser schema: what a
cluster holds after a CRD upgrade tightened the rules under existing objects.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import CRD, OperatorProcess
from ludus.api.models import TrainingJobSpec
from tests.factories import make_job

FAKE_NODES = make_job().on_fake_nodes().manifest()["spec"]["template"]

# Field (camelCase path under spec) -> values the model refuses.
BAD_VALUES: dict[str, list[Any]] = {
    "image": ["", 5],
    "imagePullPolicy": ["Maybe"],
    "replicas": [0, -1, 1025, "two", 1.5],
    "nprocPerNode": [0, -2, "four", ""],
    "backoffLimit": [-1, 10001, "many"],
    "activeDeadlineSeconds": [0, -5],
    "ttlSecondsAfterFinished": [-1],
    "progressDeadlineSeconds": [0],
    "restartPolicy": ["Sometimes", ""],
    "cleanPodPolicy": ["Some"],
    "retryableExitCodes": ["1"],
    "suspend": ["yes"],
    "command": ["python train.py"],
    "resources.cpu": ["abc", "-1", "1.2.3", -2, "1 core"],
    "resources.memory": ["lots", "2 Gi", "Gi"],
    "resources.sharedMemory": ["x"],
    "resources.gpus": [-1, 65],
    "env": [[{"name": "PET_NNODES", "value": "1"}], [{"name": ""}], [{"value": "x"}]],
    "elastic": [{"minReplicas": 3, "maxReplicas": 4}, {"minReplicas": 0, "maxReplicas": 2}, {"maxReplicas": 0}],
    "checkpoint.path": ["relative/dir"],
    "checkpoint.intervalSteps": [0],
    "template.runAsUser": [-1],
    "unknownField": [1],
}


def _valid_spec() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "image": st.sampled_from(["ludus-trainer:latest", "registry.example/team/train:v1"]),
            "replicas": st.integers(1, 3),
            "nprocPerNode": st.one_of(st.just("auto"), st.integers(1, 2)),
            "backoffLimit": st.integers(0, 10),
            "restartPolicy": st.sampled_from(["OnFailure", "ExitCode", "Never"]),
            "cleanPodPolicy": st.sampled_from(["None", "Running", "All"]),
            "resources": st.fixed_dictionaries(
                {
                    "cpu": st.sampled_from(["100m", "1", "0.5", 1]),
                    "memory": st.sampled_from(["64Mi", "1Gi", "512M", "1e9"]),
                }
            ),
            "env": st.lists(
                st.fixed_dictionaries(
                    {"name": st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True), "value": st.text(max_size=20)}
                ).filter(lambda e: not e["name"].startswith("PET_")),
                max_size=2,
            ),
        },
        optional={
            "activeDeadlineSeconds": st.integers(60, 10**6),
            "progressDeadlineSeconds": st.integers(30, 3600),
            "checkpoint": st.fixed_dictionaries({"path": st.just("/ckpt"), "intervalSteps": st.integers(1, 500)}),
        },
    )


def _set(spec: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


@st.composite
def _specs(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A spec and the fields made bad in it (empty: a valid spec)."""
    spec = draw(_valid_spec())
    # About half the specs are valid; the others have one or two bad fields.
    fields = st.lists(st.sampled_from(sorted(BAD_VALUES)), min_size=1, max_size=2, unique=True)
    bad = draw(st.one_of(st.just([]), fields))
    for path in bad:
        _set(spec, path, draw(st.sampled_from(BAD_VALUES[path])))
    spec["template"] = {**copy.deepcopy(FAKE_NODES), **spec.get("template", {})}
    return spec, bad


def _names_a_field(text: str, fields: list[str]) -> bool:
    return any(field.split(".")[-1] in text for field in fields)


def _invalid_spec_condition(k: Kubectl, name: str) -> dict[str, Any] | None:
    status = (k.get_or_none("tj", name) or {}).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c.get("reason") == "InvalidSpec"), None)


def test_the_model_agrees_with_the_bad_values() -> None:
    """Every value above is one the model itself refuses (so the fuzzing below tests what it says)."""
    from pydantic import ValidationError

    for path, values in BAD_VALUES.items():
        for value in values:
            spec: dict[str, Any] = {"image": "ludus-trainer:latest"}
            _set(spec, path, value)
            with pytest.raises(ValidationError):
                TrainingJobSpec.model_validate(spec)


@pytest.mark.timeout(1200)
def test_fuzzed_specs_are_refused_or_fail_naming_the_field_and_the_operator_keeps_serving(
    k: Kubectl, operator: OperatorProcess
) -> None:
    k.apply(make_job("canary").workers(1).on_fake_nodes().manifest())
    wait_for(lambda: ((k.get_or_none("tj", "canary") or {}).get("status") or {}).get("phase") == "Running",
             what="the canary job Running")
    outcomes: dict[str, int] = {"refused": 0, "invalid-spec": 0, "accepted": 0}

    @settings(
        max_examples=100,
        deadline=None,
        derandomize=True,  # the same specs every run: a failure here is reproducible, never flaky
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=_specs())
    def check(case: tuple[dict[str, Any], list[str]]) -> None:
        spec, bad = case
        name = f"fuzz-{uuid.uuid4().hex[:8]}"
        body = {"apiVersion": "ludus.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name}, "spec": spec}
        applied = k.apply(body, check=False)
        try:
            if applied.returncode != 0:
                assert bad, f"a valid spec was refused: {applied.stderr}\n{spec}"
                assert _names_a_field(applied.stderr, bad), f"refusal names none of {bad}: {applied.stderr}"
                outcomes["refused"] += 1
                return
            if bad:
                condition = wait_for(lambda: _invalid_spec_condition(k, name), timeout=30,
                                     what=f"InvalidSpec for bad {bad}: {spec}")
                assert _names_a_field(condition["message"], bad), condition
                outcomes["invalid-spec"] += 1
                return
            job = wait_for(lambda: (j := k.get_or_none("tj", name)) and (j.get("status") or {}).get(
                "observedGeneration") == j["metadata"]["generation"] and j, timeout=30, what=f"{name} observed")
            assert _invalid_spec_condition(k, name) is None, job["status"]
            outcomes["accepted"] += 1
        finally:
            k.run("delete", "tj", name, "--ignore-not-found", "--wait=false", check=False)
            assert operator.healthy(), "the operator stopped answering its health check"

    check()
    # Both ways were taken: bad specs stopped at the schema, good ones reached the operator.
    assert outcomes["refused"] and outcomes["accepted"], outcomes
    # The canary is still served: a spec change made after the fuzzing is observed.
    k.run("patch", "tj", "canary", "--type=merge", "-p", '{"spec":{"backoffLimit":3}}')
    wait_for(lambda: (j := k.json("tj", "canary"))["status"].get("observedGeneration") == j["metadata"]["generation"],
             what="the canary's new generation observed")


def _loosened(k: Kubectl, crd_path: Path) -> Iterator[None]:
    """A CRD with no rules on spec, put back as generated afterwards."""
    crd = yaml.safe_load(crd_path.read_text())
    loose = copy.deepcopy(crd)
    schema = loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    k.run("apply", "-f", "-", input=yaml.safe_dump(loose))
    try:
        yield
    finally:
        k.run("apply", "-f", str(crd_path))
        k.run("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")


@pytest.fixture
def looser_schema(k: Kubectl) -> Iterator[None]:
    """The TrainingJob CRD with no rules on spec."""
    yield from _loosened(k, CRD)


@pytest.fixture
def looser_sweep_schema(k: Kubectl) -> Iterator[None]:
    """The Sweep CRD with no rules on spec."""
    yield from _loosened(k, CRD.parent / "sweeps.ludus.dev.yaml")


@pytest.mark.timeout(900)
def test_specs_the_schema_once_let_through_end_failed_naming_the_field(
    k: Kubectl, operator: OperatorProcess, looser_schema: None
) -> None:
    names: dict[str, list[str]] = {}

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(case=_specs().filter(lambda case: bool(case[1])))
    def store(case: tuple[dict[str, Any], list[str]]) -> None:
        spec, bad = case
        name = f"old-{uuid.uuid4().hex[:8]}"
        body = {"apiVersion": "ludus.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name}, "spec": spec}
        applied = k.apply(body, check=False)
        if applied.returncode != 0:
            # The scale subresource still checks spec.replicas, even under the looser schema.
            assert _names_a_field(applied.stderr, bad), applied.stderr
            return
        names[name] = bad

    store()
    assert len(names) >= 10, names  # most bad specs got stored for the operator to judge
    for name, bad in names.items():
        condition = wait_for(lambda name=name: _invalid_spec_condition(k, name), timeout=60,
                             what=f"InvalidSpec on {name} (bad {bad})")
        assert _names_a_field(condition["message"], bad), (bad, condition)
        status = k.json("tj", name)["status"]
        assert status["phase"] == "Failed" and status.get("observedGeneration") == 1, status
        assert operator.healthy()
    # Nothing was created for a job the operator refused.
    pods = k.items("pods")
    assert not [p for p in pods if p["metadata"]["labels"].get("ludus.dev/job-name") in names], pods
    events = k.run("get", "events", "--field-selector", "reason=InvalidSpec", "-o", "name").stdout.split()
    assert len(events) >= len(names)


def test_a_running_job_whose_stored_spec_stops_validating_keeps_its_pods_with_a_condition(
    k: Kubectl, operator: OperatorProcess, looser_schema: None
) -> None:
    """What an operator upgrade (or rollback) meets: a stored spec this version refuses, under a job
    that already runs. Its pods stay, its phase stays, SpecValid says why, once; fixed, it is valid again."""
    k.apply(make_job("started").workers(1).on_fake_nodes().manifest())
    wait_for(lambda: (k.json("tj", "started").get("status") or {}).get("workers") == "1/1", what="started 1/1")
    pods = {p["metadata"]["uid"] for p in k.items("pods", "ludus.dev/job-name=started")}
    k.run("patch", "tj", "started", "--type=merge", "-p", '{"spec": {"backoffLimit": "many"}}')

    def spec_valid() -> dict[str, Any] | None:
        conditions = (k.json("tj", "started").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "SpecValid"), None)

    condition = wait_for(spec_valid, what="SpecValid on the started job")
    assert condition["status"] == "False" and condition["reason"] == "InvalidSpec"
    assert "backoffLimit" in condition["message"]
    status = k.json("tj", "started")["status"]
    assert status["phase"] == "Running", status
    assert {p["metadata"]["uid"] for p in k.items("pods", "ludus.dev/job-name=started")} == pods
    k.run("patch", "tj", "started", "--type=merge", "-p", '{"spec": {"backoffLimit": 3}}')
    wait_for(lambda: (spec_valid() or {}).get("status") == "True", what="SpecValid True once fixed")
    events = [e for e in k.items("events") if e["involvedObject"]["name"] == "started"
              and e["reason"] == "InvalidSpec"]
    assert len(events) == 1


def test_a_running_sweep_whose_stored_spec_stops_validating_keeps_its_trials_with_a_condition(
    k: Kubectl, operator: OperatorProcess, looser_sweep_schema: None
) -> None:
    """The same upgrade for a Sweep: before, it went Failed (terminal) with its trials left running and
    never searched again. Its phase and trials stay, SpecValid says why, once; fixed, it is valid again."""
    from tests.integration.test_sweeps import sweep_manifest, trials

    k.apply(sweep_manifest("upgraded", maxTrials=3, parallelTrials=1))
    wait_for(lambda: len(trials(k, "upgraded")) == 1, timeout=60, what="the first trial")
    wait_for(lambda: (k.json("sweep", "upgraded").get("status") or {}).get("phase") == "Running", what="Running")
    uids = {j["metadata"]["uid"] for j in trials(k, "upgraded")}
    k.run("patch", "sweep", "upgraded", "--type=merge", "-p", '{"spec": {"maxTrials": "many"}}')

    def spec_valid() -> dict[str, Any] | None:
        conditions = (k.json("sweep", "upgraded").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "SpecValid"), None)

    condition = wait_for(spec_valid, what="SpecValid on the started sweep")
    assert condition["status"] == "False" and condition["reason"] == "InvalidSpec"
    assert "maxTrials" in condition["message"]
    assert k.json("sweep", "upgraded")["status"]["phase"] == "Running"
    assert {j["metadata"]["uid"] for j in trials(k, "upgraded")} == uids
    assert not any(j["spec"].get("suspend") for j in trials(k, "upgraded"))
    k.run("patch", "sweep", "upgraded", "--type=merge", "-p", '{"spec": {"maxTrials": 3}}')
    wait_for(lambda: (spec_valid() or {}).get("status") == "True", what="SpecValid True once fixed")
    assert k.json("sweep", "upgraded")["status"]["phase"] == "Running"
    events = [e for e in k.items("events") if e["involvedObject"]["name"] == "upgraded"
              and e["reason"] == "InvalidSpec"]
    assert len(events) == 1
