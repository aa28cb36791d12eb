"""A continuous-training run as a TrainingJob manifest, and a run read back (pure).

Layout on the template's claim, under `<subPath>` (the resource's name by default):
`runs/<run>/` is each run's checkpoint directory (its exported model in `runs/<run>/model`), and
`champion` is a link to the champion's model directory, replaced in one rename.

In object storage (the template's `checkpoint.uri`) the same layout sits under `<uri>/<subPath>/`, and
the champion is `champion.json`, a small pointer object (the run, its model's URI and SHA-256) written
in one PUT once the model's checksum is verified: S3 has no rename, and a PUT is seen whole or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining
from ludus.api.models import Objective, TrainingJob
from ludus.trainingjob.child import child_job, number_label, template_spec

TRIGGER_SCHEDULE: Final = "Schedule"
TRIGGER_DATA: Final = "DataVersion"
TRIGGER_MANUAL: Final = "Manual"
CHAMPION_LINK: Final = "champion"
CHAMPION_POINTER: Final = "champion.json"


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


def store_uri(ct: ContinuousTraining) -> str | None:
    """`<template checkpoint.uri>/<subPath>` when the runs keep their models in object storage."""
    uri = ct.spec.template.checkpoint.uri
    return f"{uri.rstrip('/')}/{base_dir(ct)}" if uri else None


def model_location(ct: ContinuousTraining, run: str) -> str:
    """Where a run's exported model is: its URI, or its directory in the claim."""
    base = store_uri(ct)
    return f"{base}/runs/{run}/model" if base else model_dir(ct, run)


def champion_location(ct: ContinuousTraining) -> str:
    """What readers resolve: the pointer object's URI, or the link's path in the claim."""
    base = store_uri(ct)
    return f"{base}/{CHAMPION_POINTER}" if base else champion_path(ct)


def claim_of(ct: ContinuousTraining) -> str:
    claim = ct.spec.template.checkpoint.claim_name
    assert claim, "the spec requires template.checkpoint.claimName"
    return claim


def objective_of(ct: ContinuousTraining, reported: Objective | None = None) -> Objective | None:
    """The objective promotions compare: the promotion's, the template's, else what runs reported."""
    return ct.spec.promotion.objective or ct.spec.template.objective or reported


def run_job(ct: ContinuousTraining, number: int, trigger: str, data_version: str | None,
            scheduled_time: datetime | None, warm_start: str | None, retrain: str | None = None) -> dict[str, Any]:
    """Run `number`: the template, checkpointing in its own directory of the claim, warm-started from
    the champion `warm_start` (its weights; a new optimizer), owned by the resource."""
    name = run_name(ct.metadata.name, number)
    spec = template_spec(ct.spec.template, objective_of(ct), suspend=False)
    base = store_uri(ct)
    if base:
        spec["checkpoint"] = {**(spec.get("checkpoint") or {}), "uri": f"{base}/runs/{name}"}
    else:
        spec["checkpoint"] = {**(spec.get("checkpoint") or {}), "subPath": run_dir(ct, name)}
    if warm_start is not None:
        template_init = spec.get("init") or {}
        source = {"uri": model_location(ct, warm_start)} if base else \
            {"claimName": claim_of(ct), "path": model_dir(ct, warm_start)}
        spec["init"] = {**source, "strict": template_init.get("strict", True),
                        "freeze": template_init.get("freeze", [])}
    annotations = {c.ANNOTATION_TRIGGER: trigger}
    if data_version is not None:
        annotations[c.ANNOTATION_DATA_VERSION] = data_version
    if scheduled_time is not None:
        annotations[c.ANNOTATION_SCHEDULED_TIME] = scheduled_time.isoformat().replace("+00:00", "Z")
    if retrain:
        annotations[c.ANNOTATION_RETRAIN] = retrain  # the retrain request it answers
    return child_job(c.CT_KIND, ct.metadata, name, spec,
                     labels={c.LABEL_CT: ct.metadata.name, c.LABEL_RUN: str(number)}, annotations=annotations)


def run_number(job: TrainingJob) -> int | None:
    return number_label(job, c.LABEL_RUN)


def warm_start_of(ct: ContinuousTraining, job: TrainingJob) -> str | None:
    """The run it started from, read back from its init path (`.../runs/<run>/model`)."""
    path = job.spec.init.path if job.spec.init else ""
    prefix = f"{base_dir(ct)}/runs/"
    if path.startswith(prefix) and path.endswith("/model"):
        return path[len(prefix):-len("/model")]
    return None
