"""The three CRDs fuzzed from their own generated schemas, on the real API server with the operator running.

Specs drawn by `tests/fuzz/schema.py` from each kind's schema, valid or with one field broken, are
applied as a tenant would. Each must be refused naming a field, or be taken up by the operator (its
status observes the generation), or end in a condition naming a field. Throughout, the operator never
exits, and a job in another namespace keeps converging. LUDUS_FUZZ_EXAMPLES sets how many specs
(30 in the suite; a long run: LUDUS_FUZZ_EXAMPLES=400).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devcluster.kubectl import Kubectl, wait_for
from devcluster.operator_process import OperatorProcess
from ludus.api.crd import build_continuous_crd, build_crd, build_sweep_crd
from tests.factories import make_job
from tests.fixtures import TestCluster
from tests.fuzz.schema import broken, valid

KINDS = {"TrainingJob": (build_crd, "tj"), "Sweep": (build_sweep_crd, "sweep"),
         "ContinuousTraining": (build_continuous_crd, "ct")}
EXAMPLES = int(os.environ.get("LUDUS_FUZZ_EXAMPLES", "30"))
# The suite's run draws the same specs every time (a failure reproduces, and it always reaches the
# operator); a long run (LUDUS_FUZZ_EXAMPLES set) draws new ones each time.
DERANDOMIZE = "LUDUS_FUZZ_EXAMPLES" not in os.environ
NAMES_A_FIELD = re.compile(r"spec(\.[A-Za-z][A-Za-z0-9]*|\[[0-9]+\])+")


def _spec_schema(kind: str) -> dict[str, Any]:
    return KINDS[kind][0]()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


SCHEMAS = {kind: _spec_schema(kind) for kind in KINDS}


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, dict[str, Any], str | None]:
    kind = draw(st.sampled_from(sorted(KINDS)))
    if draw(st.booleans()):
        spec, path = draw(broken(SCHEMAS[kind]))
        return kind, spec, path
    return kind, _within_the_rules(kind, draw(valid(SCHEMAS[kind]))), None


def _within_the_rules(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A drawn spec brought within CEL rules that tie optional fields together (the schema's keywords
    alone do not say them), so that valid draws reach the operator: a checkpoint on a claim or in object
    storage, not both, and the object store's settings only with its uri; an init from one place; a
    Sweep parameter with what its type needs; a ContinuousTraining's claim. managedBy is left out: a
    job another controller manages is one the operator never touches (tests/integration/test_lifecycle.py)."""
    job = spec.get("template") if kind != "TrainingJob" and isinstance(spec.get("template"), dict) else spec
    job.pop("managedBy", None)
    checkpoint = job.get("checkpoint") if isinstance(job.get("checkpoint"), dict) else None
    if kind == "ContinuousTraining":
        checkpoint = job.setdefault("checkpoint", checkpoint or {})
        checkpoint.setdefault("claimName", "models")
    if checkpoint is not None:
        if "claimName" in checkpoint:
            checkpoint.pop("uri", None)
        if "uri" not in checkpoint:
            for key in ("secretRef", "endpoint", "region"):
                checkpoint.pop(key, None)
    init = job.get("init")
    if isinstance(init, dict):
        if "claimName" in init:
            init.pop("fromJob", None)
        elif "fromJob" not in init:
            job.pop("init")
    for param in spec.get("parameters") or [] if kind == "Sweep" else []:
        if isinstance(param, dict) and param.get("type") in ("float", "int"):
            param.setdefault("min", 1)
            param.setdefault("max", 2)
        elif isinstance(param, dict):
            param["values"] = param.get("values") or ["a"]
    return spec


@pytest.fixture
def other_namespace(cluster: TestCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    cluster.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def _verdict(k: Kubectl, short: str, name: str) -> str | None:
    """'observed' once the operator's status reflects the object's generation; 'condition' once a
    condition names a field; None while neither. A job may be gone already (it ended at once, and its
    ttlSecondsAfterFinished removed it): then the operator's Events about it say which."""
    body = k.get_or_none(short, name)
    if body is None:
        said = [e for e in k.items("events") if e["involvedObject"]["name"] == name
                and e.get("source", {}).get("component") == "ludus-operator"]
        refused = [e for e in said if e["reason"] == "InvalidSpec"]
        if refused:
            return "condition" if all(NAMES_A_FIELD.search(e["message"]) for e in refused) else "unnamed"
        return "observed" if said else None
    status = body.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("reason") == "InvalidSpec" and NAMES_A_FIELD.search(cond.get("message", "")):
            return "condition"
    return "observed" if status.get("observedGeneration") == body["metadata"]["generation"] else None


@pytest.mark.timeout(3600)
def test_specs_drawn_from_the_three_schemas_are_refused_run_or_named_and_the_operator_keeps_serving(
    cluster: TestCluster, k: Kubectl, namespace: str, other_namespace: str, tmp_path: Path,
) -> None:
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path,
                               extra_args=("--namespace", other_namespace)).start()
    canary = cluster.kubectl.in_namespace(other_namespace)
    outcomes: dict[str, int] = {"refused": 0, "observed": 0, "condition": 0}
    started = time.monotonic()
    try:
        canary.apply(make_job("canary").workers(1).on_fake_nodes().manifest())
        wait_for(lambda: (canary.json("tj", "canary").get("status") or {}).get("workers") == "1/1",
                 what="the canary Running")

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                         HealthCheck.filter_too_much, HealthCheck.data_too_large])
        @given(case=cases())
        def check(case: tuple[str, dict[str, Any], str | None]) -> None:
            kind, spec, path = case
            short = KINDS[kind][1]
            name = f"fz-{uuid.uuid4().hex[:8]}"
            body = {"apiVersion": "ludus.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
            applied = k.apply(body, check=False)
            try:
                if applied.returncode != 0:
                    assert NAMES_A_FIELD.search(applied.stderr), f"refused naming no field ({path}): {applied.stderr}"
                    outcomes["refused"] += 1
                    return
                verdict = wait_for(lambda: _verdict(k, short, name), timeout=30,
                                   what=f"the operator's verdict on {kind} {name} (broken: {path}): {spec}")
                assert verdict != "unnamed", f"an InvalidSpec Event on {name} names no field"
                outcomes[verdict] += 1
            finally:
                k.run("delete", short, name, "--ignore-not-found", "--wait=false", check=False)
                assert operator.healthy(), "the operator stopped answering its health check"

        check()
        elapsed = time.monotonic() - started
        print(f"schema fuzzing: {EXAMPLES} examples in {elapsed:.0f} s: {outcomes}")
        assert outcomes["refused"] and outcomes["observed"], outcomes
        canary.run("patch", "tj", "canary", "--type=merge", "-p", '{"spec":{"backoffLimit":4}}')
        wait_for(lambda: (j := canary.json("tj", "canary"))["status"].get("observedGeneration")
                 == j["metadata"]["generation"], what="the canary's new generation observed")
        assert operator.proc is not None and operator.proc.poll() is None, "the operator exited"
    finally:
        operator.stop()
