"""A continuous-training run as a TrainingJob manifest, and a run read back (pure).

Layout on the template's claim, under `<subPath>` (the resource's name by default):
`runs/<run>/` is each run's checkpoint directory (its exported model in `runs/<run>/model`), and
`champion` is a link to the champion's model directory, replaced in one rename.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining
from ludus.api.models import Objective

TRIGGER_SCHEDULE: Final = "Schedule"
TRIGGER_DATA: Final = "DataVersion"
TRIGGER_MANUAL: Final = "Manual"
CHAMPION_LINK: Final = "champion"


def run_name(ct: str, number: int) -> str:
    return f"{ct}-{number}"


def base_dir(ct: ContinuousTraining) -> str:
    return ct.spec.sub_path or ct.metadata.name


def run_dir(ct: ContinuousTraining, run: str) -> str:
    """The run's checkpoint directory in the claim."""
    return f"{base_dir(ct)}/runs/{run}"


def model_dir(ct: ContinuousTraining, run: str) -> str:
    """The run's exported model in the claim (what the trainer writes when the run ends)."""
    return f"{run_dir(ct, run)}/model"


def champion_path(ct: ContinuousTraining) -> str:
    return f"{base_dir(ct)}/{CHAMPION_LINK}"


def claim_of(ct: ContinuousTraining) -> str:
    claim = ct.spec.template.checkpoint.claim_name
    assert claim, "the spec requires template.checkpoint.claimName"
    return claim


def objective_of(ct: ContinuousTraining, reported: Objective | None = None) -> Objective | None:
    """The objective promotions compare: the promotion's, the template's, else what runs reported."""
    return ct.spec.promotion.objective or ct.spec.template.objective or reported


def run_job(ct: ContinuousTraining, number: int, trigger: str, data_version: str | None,
            scheduled_time: datetime | None, warm_start: str | None) -> dict[str, Any]:
    """Run `number`: the template, checkpointing in its own directory of the claim, warm-started from
    the champion `warm_start` (its weights; a new optimizer), owned by the resource."""
    spec: dict[str, Any] = ct.spec.template.model_dump(by_alias=True, exclude_none=True, mode="json")
    name = run_name(ct.metadata.name, number)
    checkpoint = dict(spec.get("checkpoint") or {})
    checkpoint["subPath"] = run_dir(ct, name)
    spec["checkpoint"] = checkpoint
    objective = objective_of(ct)
    if objective is not None:
        spec["objective"] = objective.model_dump(by_alias=True, mode="json")
    if warm_start is not None:
        template_init = spec.get("init") or {}
        spec["init"] = {"claimName": claim_of(ct), "path": model_dir(ct, warm_start),
                        "strict": template_init.get("strict", True), "freeze": template_init.get("freeze", [])}
    spec.pop("ttlSecondsAfterFinished", None)  # a run is the resource's record: it goes by the history limits
    spec["suspend"] = False
    annotations = {c.ANNOTATION_TRIGGER: trigger}
    if data_version is not None:
        annotations[c.ANNOTATION_DATA_VERSION] = data_version
    if scheduled_time is not None:
        annotations[c.ANNOTATION_SCHEDULED_TIME] = scheduled_time.isoformat().replace("+00:00", "Z")
    meta = ct.metadata
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": {c.LABEL_CT: meta.name, c.LABEL_RUN: str(number), c.LABEL_MANAGED_BY: c.MANAGED_BY},
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": c.API_VERSION, "kind": c.CT_KIND, "name": meta.name, "uid": meta.uid,
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": spec,
    }


def run_number(job: Mapping[str, Any]) -> int | None:
    labels = (job.get("metadata") or {}).get("labels") or {}
    try:
        return int(labels[c.LABEL_RUN])
    except (KeyError, ValueError):
        return None


def annotation(job: Mapping[str, Any], key: str) -> str | None:
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None


def phase_of(job: Mapping[str, Any]) -> str:
    return str((job.get("status") or {}).get("phase") or c.PHASE_PENDING)


def warm_start_of(ct: ContinuousTraining, job: Mapping[str, Any]) -> str | None:
    """The run it started from, read back from its init path (`.../runs/<run>/model`)."""
    path = str(((job.get("spec") or {}).get("init") or {}).get("path") or "")
    prefix = f"{base_dir(ct)}/runs/"
    if path.startswith(prefix) and path.endswith("/model"):
        return path[len(prefix):-len("/model")]
    return None
