"""Every string, list, map and integer in the three generated CRDs has a bound.

An unbounded field is memory a tenant can make the operator hold (its indexes parse every object)
and CEL cost the API server cannot estimate. The walk covers the schemas as generated, so a field
added to a model without a bound fails here, not in a review.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ludus.api.crd import build_continuous_crd, build_crd, build_sweep_crd

CRDS = {"TrainingJob": build_crd, "Sweep": build_sweep_crd, "ContinuousTraining": build_continuous_crd}


def _bounds_int_or_string(node: dict[str, Any]) -> bool:
    """An int-or-string cannot carry maximum/maxLength: a CEL rule must bound both alternatives."""
    rules = [v["rule"] for v in node.get("x-kubernetes-validations", [])]
    return any("int(self) <=" in r and "size(string(self)) <=" in r for r in rules)


def unbounded(node: dict[str, Any], path: str = "") -> Iterator[str]:
    """Paths of the fields in a structural schema that have no size bound."""
    if node.get("x-kubernetes-int-or-string"):
        if not _bounds_int_or_string(node):
            yield f"{path} (int-or-string)"
        return
    kind = node.get("type")
    if kind == "string" and not ({"maxLength", "enum"} & node.keys() or node.get("format") == "date-time"):
        yield f"{path} (string)"
    elif kind == "integer" and "maximum" not in node:
        yield f"{path} (integer)"
    elif kind == "array":
        if "maxItems" not in node:
            yield f"{path} (list)"
        yield from unbounded(node["items"], f"{path}[]")
    elif kind == "object":
        if ("additionalProperties" in node or "properties" not in node) and "maxProperties" not in node:
            yield f"{path} (map)"
        for name, sub in node.get("properties", {}).items():
            yield from unbounded(sub, f"{path}.{name}")
        if isinstance(node.get("additionalProperties"), dict):
            yield from unbounded(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_field_of_the_generated_crd_is_bounded(kind: str) -> None:
    schema = CRDS[kind]()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema = {**schema, "properties": {k: v for k, v in schema["properties"].items() if k != "metadata"}}
    assert list(unbounded(schema)) == []


def test_the_walk_finds_what_it_is_for() -> None:
    loose = {"type": "object", "properties": {
        "s": {"type": "string"}, "n": {"type": "integer"}, "l": {"type": "array", "items": {"type": "string",
                                                                                             "maxLength": 3}},
        "m": {"type": "object", "additionalProperties": {"type": "string"}},
        "o": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
    }}
    assert sorted(unbounded(loose)) == [".l (list)", ".m (map)", ".m{} (string)", ".n (integer)", ".o (map)",
                                        ".q (int-or-string)", ".s (string)"]
