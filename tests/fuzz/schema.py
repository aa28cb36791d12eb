"""Hypothesis strategies generated from a CRD's structural schema, not from a hand-written table.

`valid(node)` draws values the schema's own keywords admit (types, enums, patterns, bounds), kept
small: integers near their minimum, lists of at most two items, so that what the operator creates
for an accepted object stays cheap. CEL rules are not modelled: a draw that breaks one is refused by
the API server, naming its field, which is an outcome the fuzzing accepts. `broken(node)` draws a spec
with one field made invalid by the schema's own keywords (too long, too many, above the maximum, not
in the enum, the wrong type, an unknown field), and returns the path it broke.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

Schema = dict[str, Any]
_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-_./ ", max_size=12)
_KEY = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)


def _string(node: Schema) -> st.SearchStrategy[Any]:
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if node.get("format") == "date-time":
        return st.just("2026-01-01T00:00:00Z")
    limit = node.get("maxLength", 64)
    if "pattern" in node:
        return st.from_regex(node["pattern"], fullmatch=True).filter(
            lambda s: node.get("minLength", 0) <= len(s) <= limit)
    return _TEXT.filter(lambda s: node.get("minLength", 0) <= len(s) <= limit)


def valid(node: Schema, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values the schema's keywords admit, small."""
    if node.get("x-kubernetes-int-or-string"):
        # A quantity (its CEL rule matches a pattern), else a count or "auto" (nprocPerNode).
        if any("matches(" in rule.get("rule", "") for rule in node.get("x-kubernetes-validations", [])):
            return st.sampled_from(["1", "500m", "1Gi", 2])
        return st.sampled_from(["auto", 1, 2])
    kind = node.get("type")
    if kind == "string":
        return _string(node)
    if kind == "integer":
        low = node.get("minimum", 0)
        return st.integers(low, min(node.get("maximum", low + 3), low + 3))
    if kind == "number":
        low = node.get("minimum", 0.0)
        return st.floats(low, min(node.get("maximum", low + 1.0), low + 1.0), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        low = node.get("minItems", 0)
        most = max(low, min(node.get("maxItems", 2), 2))
        return st.lists(valid(node["items"], depth + 1), min_size=low, max_size=most)
    if "properties" in node and depth < 6:
        return _object(node, depth)
    if isinstance(node.get("additionalProperties"), dict):
        return st.dictionaries(_KEY, valid(node["additionalProperties"], depth + 1), max_size=2)
    return st.just({})


@st.composite
def _object(draw: st.DrawFn, node: Schema, depth: int) -> dict[str, Any]:
    """Required properties always; each optional one about one time in five (CEL rules tie optional
    fields together: fewer of them, more specs the API server takes)."""
    required = set(node.get("required", []))
    out = {}
    for key, sub in node["properties"].items():
        if key in required or draw(st.integers(0, 4)) == 0:
            out[key] = draw(valid(sub, depth + 1))
    return out


def _leaves(node: Schema, path: str = "") -> list[tuple[str, Schema]]:
    """Every (dotted path, schema) of the fields under `node`, objects included."""
    out = [(path, node)] if path else []
    for name, sub in (node.get("properties") or {}).items():
        out.extend(_leaves(sub, f"{path}.{name}" if path else name))
    return out


def _invalid(node: Schema) -> st.SearchStrategy[Any]:
    """A value the schema's own keywords refuse for `node`."""
    options: list[st.SearchStrategy[Any]] = []
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        options.append(st.just([1]))
    elif kind == "string":
        options.append(st.just(12345))
        if "maxLength" in node:
            options.append(st.just("a" * (node["maxLength"] + 1)))
        if "enum" in node:
            options.append(st.just("NotAnEnumValue"))
    elif kind == "integer":
        options.append(st.just("seven"))
        if "maximum" in node:
            options.append(st.just(node["maximum"] + 1))
        if "minimum" in node:
            options.append(st.just(node["minimum"] - 1))
    elif kind == "number":
        options.append(st.just("many"))
    elif kind == "boolean":
        options.append(st.just("yes"))
    elif kind == "array":
        options.append(st.just("not a list"))
        if "maxItems" in node:
            options.append(st.just([None] * (node["maxItems"] + 1)))
    elif kind == "object":
        options.append(st.just(["not", "an", "object"]))
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            options.append(st.just({"surpriseField": 1}))
    return st.one_of(options) if options else st.just([1])


@st.composite
def broken(draw: st.DrawFn, spec_schema: Schema) -> tuple[dict[str, Any], str]:
    """A spec with one field (at the returned dotted path) made invalid."""
    spec = draw(valid(spec_schema))
    path, node = draw(st.sampled_from(_leaves(spec_schema)))
    target = spec
    *parents, leaf = path.split(".")
    for key in parents:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    target[leaf] = draw(_invalid(node))
    return spec, path
