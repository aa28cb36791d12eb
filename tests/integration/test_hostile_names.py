"""Names a user writes that reach the operator's API requests, tried with path tricks on the real API
server: each is refused by the CRD naming the field, so none can point a request at another
namespace's object (and the client quotes a name as one path segment besides, see
tests/unit/runtime/test_kube_paths.py)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from devcluster.kubectl import Kubectl
from tests.factories import make_job
from tests.integration.test_continuous import ct_manifest
from tests.integration.test_sweeps import sweep_manifest

HOSTILE = ["..", "../kube-system/ludus", "a/b", "a%2Fb", "caf\u00e9", "UPPER", ".hidden", "-dash"]

# (kind, path of keys to the field, the name the API server gives the field)
FIELDS: list[tuple[str, tuple[str, ...], str]] = [
    ("tj", ("spec", "template", "priorityClassName"), "spec.template.priorityClassName"),
    ("tj", ("spec", "template", "serviceAccountName"), "spec.template.serviceAccountName"),
    ("tj", ("spec", "template", "schedulerName"), "spec.template.schedulerName"),
    ("tj", ("spec", "checkpoint", "claimName"), "spec.checkpoint.claimName"),
    ("tj", ("spec", "init", "claimName"), "spec.init.claimName"),
    ("tj", ("spec", "init", "fromJob"), "spec.init.fromJob"),
    ("sweep", ("spec", "template", "template", "priorityClassName"), "spec.template.template.priorityClassName"),
    ("ct", ("spec", "dataVersion", "configMapName"), "spec.dataVersion.configMapName"),
    ("ct", ("spec", "template", "checkpoint", "claimName"), "spec.template.checkpoint.claimName"),
]


def _manifest(kind: str) -> dict[str, Any]:
    if kind == "tj":
        return make_job("hostile").on_fake_nodes().manifest()
    if kind == "sweep":
        return sweep_manifest("hostile")
    manifest = ct_manifest("hostile")
    manifest["spec"]["dataVersion"] = {"configMapName": "dataset", "key": "version"}
    return manifest


def _set(manifest: dict[str, Any], path: tuple[str, ...], value: str) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(("kind", "path", "field"), FIELDS, ids=[f[2] for f in FIELDS])
def test_names_that_reach_a_request_path_are_refused_naming_the_field(
    k: Kubectl, kind: str, path: tuple[str, ...], field: str,
) -> None:
    base = _manifest(kind)
    for hostile in HOSTILE:
        result = k.apply(_set(base, path, hostile), check=False)
        assert result.returncode != 0, f"{field}={hostile!r} was accepted"
        assert field in result.stderr, result.stderr
    assert k.get_or_none(kind, "hostile") is None


def test_a_sweep_status_cannot_hold_a_trial_name_that_is_not_a_job_name(k: Kubectl) -> None:
    """A trial's name in the status reaches a PATCH of that TrainingJob: the status schema refuses
    anything else, whoever writes it."""
    manifest = sweep_manifest("named")
    manifest["spec"]["suspend"] = True
    k.apply(manifest)
    for hostile in HOSTILE:
        patch = json.dumps({"status": {"trials": [{"number": 0, "name": hostile}]}})
        result = k.run("patch", "sweep", "named", "--subresource=status", "--type=merge", "-p", patch, check=False)
        assert result.returncode != 0 and "status.trials[0].name" in result.stderr, (hostile, result.stderr)
