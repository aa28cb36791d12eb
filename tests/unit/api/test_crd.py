"""The CRD is generated from the models, structural, and committed byte for byte."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ludus.api.crd import (
    build_continuous_crd,
    build_crd,
    build_sweep_crd,
    render_continuous_crd_yaml,
    render_crd_yaml,
    render_peering_crds_yaml,
    render_sweep_crd_yaml,
)

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "manifests" / "crd" / "trainingjobs.ludus.dev.yaml"


def _nodes(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        yield path, schema
        for key, value in schema.get("properties", {}).items():
            yield from _nodes(value, f"{path}.{key}")
        if "items" in schema:
            yield from _nodes(schema["items"], f"{path}[]")


def _schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.read_text() == render_crd_yaml(), "run `make manifests` and commit the result"


def test_chart_crd_matches_the_models_when_the_chart_exists() -> None:
    chart_copy = REPO / "charts" / "ludus" / "crds" / COMMITTED.name
    if chart_copy.exists():
        assert chart_copy.read_text() == render_crd_yaml(), "run `make manifests` and commit the result"


def test_committed_sweep_crd_matches_the_models_in_manifests_and_the_chart() -> None:
    for copy in (REPO / "manifests" / "crd", REPO / "charts" / "ludus" / "crds"):
        assert (copy / "sweeps.ludus.dev.yaml").read_text() == render_sweep_crd_yaml(), "run `make manifests`"


def test_committed_continuous_crd_matches_the_models_in_manifests_and_the_chart() -> None:
    for copy in (REPO / "manifests" / "crd", REPO / "charts" / "ludus" / "crds"):
        assert (copy / "continuoustrainings.ludus.dev.yaml").read_text() == render_continuous_crd_yaml(), \
            "run `make manifests`"


def test_the_continuous_template_is_the_trainingjob_spec_with_its_cel_rules() -> None:
    spec = build_continuous_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    template = {k: v for k, v in spec["properties"]["template"].items() if k != "description"}
    assert template == {k: v for k, v in _schema()["properties"]["spec"].items() if k != "description"}


def test_the_sweep_template_is_the_trainingjob_spec_with_its_cel_rules() -> None:
    """One TrainingJob spec schema: a trial template is refused for what a TrainingJob would be."""
    sweep_spec = build_sweep_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    template = {k: v for k, v in sweep_spec["properties"]["template"].items() if k != "description"}
    assert template == {k: v for k, v in _schema()["properties"]["spec"].items() if k != "description"}
    rules = [r["rule"] for r in sweep_spec["x-kubernetes-validations"]]
    assert any("parallelTrials <= self.maxTrials" in r for r in rules)


def test_committed_peering_crds_match_the_generator() -> None:
    for copy in (REPO / "manifests" / "crd", REPO / "charts" / "ludus" / "crds"):
        text = (copy / "kopfpeerings.kopf.dev.yaml").read_text()
        assert text == render_peering_crds_yaml(), "run `make manifests` and commit the result"
    kinds = {(d["spec"]["names"]["kind"], d["spec"]["scope"]) for d in yaml.safe_load_all(text)}
    assert kinds == {("ClusterKopfPeering", "Cluster"), ("KopfPeering", "Namespaced")}


def test_schema_is_structural() -> None:
    for path, node in _nodes(_schema()):
        assert "$ref" not in node and "allOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), f"{path}: anyOf only for int-or-string"


def test_every_spec_field_is_described() -> None:
    spec = _schema()["properties"]["spec"]
    for path, node in _nodes(spec, "spec"):
        if path != "spec" and not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description (kubectl explain shows it)"


def test_cel_rules_cover_the_cross_field_checks() -> None:
    schema = _schema()
    spec_rules = " ".join(r["rule"] for r in schema["properties"]["spec"]["x-kubernetes-validations"])
    assert "self.elastic.minReplicas" in spec_rules and "self.elastic.maxReplicas" in spec_rules
    assert "PET_" in spec_rules
    elastic_rules = schema["properties"]["spec"]["properties"]["elastic"]["x-kubernetes-validations"]
    assert elastic_rules[0]["rule"] == "self.minReplicas <= self.maxReplicas"
    root_rules = " ".join(r["rule"] for r in schema["x-kubernetes-validations"])
    assert "size(self.metadata.name) <= 48" in root_rules
    assert schema["properties"]["spec"]["properties"]["resources"]["properties"]["gpus"]["minimum"] == 0
    assert "image" in schema["properties"]["spec"]["required"]


def test_subresources_columns_and_names() -> None:
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.active",
        "labelSelectorPath": ".status.selector",
    }
    columns = version["additionalPrinterColumns"]
    # What fits an 80-column terminal by default; `-o wide` adds the ETA and the goodput.
    assert [c["name"] for c in columns if not c.get("priority")] == [
        "Phase", "Workers", "Step", "Objective", "Restarts", "Age",
    ]
    assert [c["name"] for c in columns if c.get("priority") == 1] == ["ETA", "Goodput"]
    assert next(c for c in columns if c["name"] == "Step")["jsonPath"] == ".status.progress.summary"
    assert crd["spec"]["names"]["shortNames"] == ["tj"]
    assert "ludus" in crd["spec"]["names"]["categories"]


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = _schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_nested_objects_default_so_the_server_fills_them() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    for name in ("resources", "template", "checkpoint"):
        assert spec[name]["default"] == {}, name
    assert yaml.safe_load(render_crd_yaml())["kind"] == "CustomResourceDefinition"


def test_optional_fields_whose_absence_means_something_get_no_server_default() -> None:
    """resources and checkpoint are filled in by the API server; an unset objective means "the workload's
    own" and an unset elastic "fixed size", so the server must leave them out."""
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["resources"]["default"] == {} and spec["checkpoint"]["default"] == {}
    assert "default" not in spec["objective"] and "default" not in spec["elastic"]
    assert spec["objective"]["properties"]["metric"]["default"] == "loss"  # once set, its own fields default
    assert "x-ludus-no-default" not in render_crd_yaml()
