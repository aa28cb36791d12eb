"""Turn the pydantic models into the TrainingJob CustomResourceDefinition.

The API server wants a *structural* OpenAPI v3 schema: no `$ref`, no `anyOf`
for optional fields, every object typed. Pydantic's JSON Schema is close, so
this module inlines references, folds `Optional` away and keeps only the
keywords Kubernetes understands. `make manifests` writes the result; a unit
test fails when the committed YAML drifts from it.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from ludus.api import constants as c
from ludus.api.models import TrainingJobSpec, TrainingJobStatus

# JSON Schema keywords a CRD schema may carry (and that pydantic emits).
_KEPT = {
    "maxProperties",
    "minProperties",
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
    "required",
    "properties",
    "items",
    "additionalProperties",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline `$ref`s and merge `allOf: [ref]` wrappers pydantic uses for described refs."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = {**_resolve(node["allOf"][0], defs), **{k: v for k, v in node.items() if k != "allOf"}}
        return _resolve(merged, defs)
    return {k: _resolve(v, defs) for k, v in node.items()}


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one resolved JSON Schema node into Kubernetes' structural form."""
    node = dict(node)
    unset_means_something = False
    if "anyOf" in node:
        alternatives = node.pop("anyOf")
        variants = [v for v in alternatives if v.get("type") != "null"]
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
        elif len(variants) == 1:
            # Optional[X] = None: leaving it out means something, so the server must not default it.
            unset_means_something = len(variants) < len(alternatives) and node.get("default", "absent") is None
            # Optional[X]: describe X, keep our own description and default.
            node = {**variants[0], **{k: v for k, v in node.items() if k != "default" or v is not None}}
        else:
            raise ValueError(f"cannot express anyOf {variants} structurally")
    if node.get("default", "absent") is None:
        del node["default"]
    if "const" in node:  # a one-value Literal
        node["enum"] = [node.pop("const")]

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == "properties":
            out[key] = {name: _structural(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = _structural(value)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = _structural(value)
        elif key == "format" and value == "date-time":
            out[key] = value
        elif key in _KEPT and key != "format":
            out[key] = value
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        # The API server also wants the two alternatives spelled out.
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    elif "type" not in out:
        out["type"] = "object"
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if unset_means_something:
        out[_NO_DEFAULT] = True
    return out


def model_schema(model: type) -> dict[str, Any]:
    """The structural schema of one pydantic model, with aliases as field names."""
    raw = model.model_json_schema(by_alias=True, mode="validation")  # type: ignore[attr-defined]
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _strip_markers(_default_nested_objects(_strip_titles(_structural(_resolve(raw, defs)))))
    return schema


def _strip_markers(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_markers(v) for k, v in node.items() if k != _NO_DEFAULT}
    if isinstance(node, list):
        return [_strip_markers(v) for v in node]
    return node


# A marker `_structural` leaves on optional fields whose absence means something (see below).
_NO_DEFAULT = "x-ludus-no-default"


def _default_nested_objects(node: dict[str, Any]) -> dict[str, Any]:
    """Give optional sub-objects `default: {}` so the API server fills in their own defaults.

    Without it `spec.resources` stays absent when omitted, and so do the defaults
    inside it, which `kubectl get -o yaml` should show.
    """
    for sub in node.get("properties", {}).values():
        _default_nested_objects(sub)
        if (
            sub.get("type") == "object"
            and not sub.pop(_NO_DEFAULT, False)
            and "default" not in sub
            and not sub.get("required")
            and any("default" in leaf for leaf in sub.get("properties", {}).values())
        ):
            sub["default"] = {}
    return node


def _without_defaults(node: Any) -> Any:
    """Status is written by the operator alone; server-side defaults there would only mislead."""
    if isinstance(node, dict):
        return {k: _without_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_without_defaults(v) for v in node]
    return node


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


# Bounds for what a status model leaves open. Only the operator writes a status and it keeps each of
# these far smaller (a trial window, a run history, 32 metrics); the schema says so to the API
# server, and an estimate of the object's size can be made from it.
STATUS_MAX_STRING = 4096
STATUS_MAX_ITEMS = 1024
STATUS_MAX_PROPERTIES = 128
STATUS_MAX_INTEGER = 2**53 - 1


def _bounded(node: Any) -> Any:
    """`node` with a bound on every string, list, map and integer that has none."""
    if not isinstance(node, dict):
        return node
    out = {k: _bounded(v) if k in ("items", "additionalProperties") else v for k, v in node.items()}
    if "properties" in out:
        out["properties"] = {name: _bounded(sub) for name, sub in out["properties"].items()}
    kind = out.get("type")
    if kind == "string" and "enum" not in out and "format" not in out:
        out.setdefault("maxLength", STATUS_MAX_STRING)
    elif kind == "array":
        out.setdefault("maxItems", STATUS_MAX_ITEMS)
    elif kind == "integer":
        out.setdefault("maximum", STATUS_MAX_INTEGER)
    elif kind == "object" and ("additionalProperties" in out or "properties" not in out):
        out.setdefault("maxProperties", STATUS_MAX_PROPERTIES)
    return out


def _status_schema(model: type = TrainingJobStatus) -> dict[str, Any]:
    """A status schema: no server defaults, every field bounded, and conditions a map keyed by type."""
    schema: dict[str, Any] = _bounded(_without_defaults(model_schema(model)))
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["items"]["required"] = ["type", "status"]
    return schema


def openapi_schema() -> dict[str, Any]:
    """The whole openAPIV3Schema of a TrainingJob."""
    return {
        "type": "object",
        "description": "A distributed PyTorch training run: Ludus starts its worker pods under torchrun, "
        "restarts them on failure and reports progress in .status.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "maxLength": 253, "description": "ludus.dev/v1alpha1"},
            "kind": {"type": "string", "maxLength": 63, "description": "TrainingJob"},
            "metadata": {"type": "object"},
            "spec": model_schema(TrainingJobSpec),
            "status": _status_schema(),
        },
        "x-kubernetes-validations": [
            {
                "rule": f"size(self.metadata.name) <= {c.MAX_JOB_NAME_LENGTH}",
                "message": f"metadata.name must be at most {c.MAX_JOB_NAME_LENGTH} characters "
                "so that worker pod names fit in a DNS label",
            },
            {
                "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "message": "metadata.name must start with a letter and hold only lowercase letters, digits "
                "and '-' (it names the job's Service)",
            },
        ],
    }


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Where the job is."},
    {"name": "Workers", "type": "string", "jsonPath": ".status.workers", "description": "Ready/desired workers."},
    {"name": "Step", "type": "string", "jsonPath": ".status.progress.summary",
     "description": "Training step/total steps, as worker 0 last reported it."},
    {"name": "Objective", "type": "string", "jsonPath": ".status.evaluation.objective.summary",
     "description": "The objective's metric and latest value."},
    {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts", "description": "Worker recreations."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "ETA", "type": "string", "jsonPath": ".status.progress.eta", "priority": 1,
     "description": "Time left at the measured step rate."},
    {"name": "Goodput", "type": "number", "jsonPath": ".status.goodput.fraction", "priority": 1,
     "description": "Share of the wall time that went into training progress kept."},
]


def _crd(kind: str, plural: str, singular: str, short_names: tuple[str, ...], schema: dict[str, Any],
         subresources: dict[str, Any], columns: list[dict[str, Any]]) -> dict[str, Any]:
    """One namespaced CustomResourceDefinition of the ludus.dev group, at our single version."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{c.GROUP}",
            "labels": {"app.kubernetes.io/name": "ludus", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": list(c.CATEGORIES),
            },
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition manifest."""
    scale = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.active",
             "labelSelectorPath": ".status.selector"}
    return _crd(c.KIND, c.PLURAL, c.SINGULAR, c.SHORT_NAMES, openapi_schema(), {"status": {}, "scale": scale},
                PRINTER_COLUMNS)


def _owner_schema(kind: str, description: str, spec: type[BaseModel], status: type[BaseModel], max_name: int,
                  names: str, named: str) -> dict[str, Any]:
    """The schema of a resource that owns TrainingJobs named after it (`<name>-<number>`)."""
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "maxLength": 253, "description": "ludus.dev/v1alpha1"},
            "kind": {"type": "string", "maxLength": 63, "description": kind},
            "metadata": {"type": "object"},
            "spec": model_schema(spec),
            "status": _status_schema(status),
        },
        "x-kubernetes-validations": [
            {
                "rule": f"size(self.metadata.name) <= {max_name}",
                "message": f"metadata.name must be at most {max_name} characters so that {names} fit",
            },
            {
                "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "message": "metadata.name must start with a letter and hold only lowercase letters, digits and '-' "
                f"(it names the {named})",
            },
        ],
    }


def _sweep_schema() -> dict[str, Any]:
    from ludus.api.sweep import SweepSpec, SweepStatus

    return _owner_schema(
        c.SWEEP_KIND, "A hyperparameter search: Ludus runs TrainingJobs (trials) from a template with values "
        "chosen by random, grid or TPE search, stops unpromising ones early and reports the best in .status.",
        SweepSpec, SweepStatus, c.MAX_SWEEP_NAME_LENGTH, "trial names (<sweep>-<number>)", "trials")


SWEEP_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Where the sweep is."},
    {"name": "Trials", "type": "string", "jsonPath": ".status.progress", "description": "Finished/maxTrials."},
    {"name": "Running", "type": "integer", "jsonPath": ".status.running", "description": "Trials not finished."},
    {"name": "Best", "type": "string", "jsonPath": ".status.bestSummary",
     "description": "The best trial's objective."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Best-Trial", "type": "string", "jsonPath": ".status.best.name", "priority": 1,
     "description": "The best trial's TrainingJob."},
]


def build_sweep_crd() -> dict[str, Any]:
    """The Sweep CustomResourceDefinition."""
    return _crd(c.SWEEP_KIND, c.SWEEP_PLURAL, c.SWEEP_SINGULAR, c.SWEEP_SHORT_NAMES, _sweep_schema(),
                {"status": {}}, SWEEP_PRINTER_COLUMNS)


def render_sweep_crd_yaml() -> str:
    header = "# Generated by `make manifests` from operator/ludus/api/sweep.py. Do not edit.\n"
    return header + yaml.safe_dump(build_sweep_crd(), sort_keys=False, width=120)


def _continuous_schema() -> dict[str, Any]:
    from ludus.api.continuous import ContinuousTrainingSpec, ContinuousTrainingStatus

    return _owner_schema(
        c.CT_KIND, "Continuous training: Ludus runs TrainingJobs from a template on a schedule, on a new data "
        "version or by hand, warm-starts each from the champion model and promotes a run's model only if it "
        "beats the champion by the promotion rule.",
        ContinuousTrainingSpec, ContinuousTrainingStatus, c.MAX_CT_NAME_LENGTH,
        "run and publish pod names (<name>-<number>, <name>-publish-<number>)", "runs")


CT_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Waiting, Running, Publishing."},
    {"name": "Champion", "type": "string", "jsonPath": ".status.championSummary",
     "description": "The champion run and its objective."},
    {"name": "Last-Run", "type": "string", "jsonPath": ".status.lastRun", "description": "The newest run."},
    {"name": "Next", "type": "date", "jsonPath": ".status.nextScheduleTime", "description": "The next scheduled run."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Promoted", "type": "integer", "jsonPath": ".status.promotions", "priority": 1,
     "description": "Models promoted."},
    {"name": "Rejected", "type": "integer", "jsonPath": ".status.rejections", "priority": 1,
     "description": "Models not promoted."},
]


def build_continuous_crd() -> dict[str, Any]:
    """The ContinuousTraining CustomResourceDefinition."""
    return _crd(c.CT_KIND, c.CT_PLURAL, c.CT_SINGULAR, c.CT_SHORT_NAMES, _continuous_schema(), {"status": {}},
                CT_PRINTER_COLUMNS)


def render_continuous_crd_yaml() -> str:
    header = "# Generated by `make manifests` from operator/ludus/api/continuous.py. Do not edit.\n"
    return header + yaml.safe_dump(build_continuous_crd(), sort_keys=False, width=120)


def render_crd_yaml() -> str:
    """The CRD as YAML, byte-for-byte stable for the drift test."""
    header = "# Generated by `make manifests` from operator/ludus/api/models.py. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120)


def build_peering_crds() -> list[dict[str, Any]]:
    """Kopf's ClusterKopfPeering and KopfPeering CRDs, which Kopf does not install by itself.

    Replicas started with `--peering` keep their keep-alives in these objects' status; the shape
    is Kopf's own (an open status map), written here so `make manifests` owns every CRD we ship.
    """
    crds = []
    for kind, scope in (("ClusterKopfPeering", "Cluster"), ("KopfPeering", "Namespaced")):
        plural = f"{kind.lower()}s"
        crds.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.kopf.dev"},
            "spec": {
                "scope": scope,
                "group": "kopf.dev",
                "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                "versions": [{
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "description": "Keep-alives of Kopf operator replicas; "
                        "the live one with the top priority acts.",
                        "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }},
                }],
            },
        })
    return crds


def render_peering_crds_yaml() -> str:
    header = "# Generated by `make manifests` (operator/ludus/api/crd.py): Kopf's peering CRDs. Do not edit.\n"
    return header + yaml.safe_dump_all(build_peering_crds(), sort_keys=False, width=120)
