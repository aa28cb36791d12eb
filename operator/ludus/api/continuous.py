"""The ContinuousTraining API: retrain on a schedule or on new data, and keep only a better model.

To a TrainingJob what a CronJob is to a Job: it starts runs (TrainingJobs it owns) from a template
when a trigger fires, warm-starts each from the current champion, and promotes a run's model to
champion only when it beats the champion by the rule in `promotion`. The champion lives in one
stable place on the template's claim, `<subPath>/champion`, switched atomically.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from ludus.api import constants as c
from ludus.api.models import (
    DNS_LABEL_PATTERN,
    Condition,
    Model,
    Objective,
    ObjectMeta,
    SubdomainName,
    TrainingJobSpec,
)

_THRESHOLD_PATTERN = r"^\s*[A-Za-z_][A-Za-z0-9_.-]*\s*(>=|<=|>|<)\s*-?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?\s*$"
_SCHEDULE_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4,5})$"
_THRESHOLD_RE: Final = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(>=|<=|>|<)\s*(-?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")
SUB_PATH_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"


def parse_schedule(schedule: str) -> croniter:
    """A 5-field cron expression (or @daily and friends); a sixth field, seconds, serves tests."""
    if not croniter.is_valid(schedule):
        raise ValueError(f"{schedule!r} is not a cron schedule: five fields (minute hour day month weekday), "
                         "for example '0 3 * * *', or @hourly/@daily/@weekly")
    return croniter(schedule)


def parse_time_zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"{name!r} is not a time zone: use an IANA name such as Europe/Paris or UTC") from err


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: Literal[">=", "<=", ">", "<"]
    value: float

    def holds(self, actual: float) -> bool:
        return {">=": actual >= self.value, "<=": actual <= self.value,
                ">": actual > self.value, "<": actual < self.value}[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_threshold(text: str) -> Threshold:
    """`precision >= 0.9`; a ValueError names what is wrong."""
    match = _THRESHOLD_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a threshold: write it as '<metric> >= <number>' (or <=, >, <)")
    op = match.group(2)
    assert op in (">=", "<=", ">", "<")
    return Threshold(match.group(1), op, float(match.group(3)))  # type: ignore[arg-type]



class DataVersionSource(Model):
    """A ConfigMap key holding the version of the training data: a new value starts a run."""

    config_map_name: SubdomainName = Field(description="The ConfigMap, in this namespace.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                     description="Its key whose value is the data version.")


class Promotion(Model):
    """When a run's model replaces the champion."""

    objective: Objective | None = Field(
        default=None, description="What to compare; the template's objective when unset, else the workload's.")
    min_improvement: float = Field(default=0.0, ge=0.0,
                                   description="How much the objective must beat the champion's by (its units).")
    thresholds: list[str] = Field(
        default_factory=list, max_length=16,
        description="Conditions every challenger must meet, such as 'precision >= 0.9'.",
        json_schema_extra={"items": {"type": "string", "maxLength": 128, "pattern": _THRESHOLD_PATTERN}},
    )

    @field_validator("thresholds")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_threshold(text)
        return value


class ContinuousTrainingSpec(Model):
    """What to train, when to retrain, and what makes a model the champion."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.template.checkpoint) && (has(self.template.checkpoint.claimName) || "
                 "has(self.template.checkpoint.uri))",
                 "message": "continuous training keeps every run's model on a claim or in object storage: set "
                 "template.checkpoint.claimName or template.checkpoint.uri", "fieldPath": ".template"},
                {"rule": "!has(self.timeZone) || has(self.schedule)",
                 "message": "timeZone applies to a schedule: set schedule too", "fieldPath": ".timeZone"},
            ]
        }
    )

    template: TrainingJobSpec = Field(description="The TrainingJob spec every run starts from.")
    schedule: str | None = Field(
        default=None, max_length=128, pattern=_SCHEDULE_PATTERN,
        description="Cron schedule of runs ('0 3 * * *', @daily); none: runs start on data or by hand.")
    time_zone: str | None = Field(default=None, max_length=64,
                                  description="IANA time zone of the schedule (UTC when unset).")
    data_version: DataVersionSource | None = Field(
        default=None, description="A ConfigMap key whose new value starts a run (besides the "
        "ludus.dev/data-version annotation on this resource).")
    concurrency_policy: Literal["Forbid", "Replace"] = Field(
        default="Forbid", description="A trigger while a run is active: Forbid waits (a scheduled one is skipped), "
        "Replace stops the active run and starts a new one.")
    successful_runs_history_limit: int = Field(default=3, ge=0, le=100,
                                               description="Succeeded runs kept (the champion's always is).")
    failed_runs_history_limit: int = Field(default=1, ge=0, le=100, description="Failed runs kept.")
    promotion: Promotion = Field(default_factory=Promotion, description="The promotion rule.")
    sub_path: str | None = Field(
        default=None, max_length=200, pattern=SUB_PATH_PATTERN,
        description="Directory in the claim (or prefix under checkpoint.uri) for the runs and the champion "
        "(default: this resource's name).",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": "!self.matches('(^|/)[.][.](/|$)')", "message": "subPath must stay inside the claim (no '..')"},
        ]},
    )
    suspend: StrictBool = Field(default=False, description="Start no runs (active ones finish).")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            parse_schedule(value)
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time_zone(value)
        return value

    @field_validator("sub_path")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        if value is not None and ".." in value.split("/"):
            raise ValueError("subPath must stay inside the claim (no '..')")
        return value

    @model_validator(mode="after")
    def _claim(self) -> ContinuousTrainingSpec:
        ckpt = self.template.checkpoint
        if ckpt is None or not (ckpt.claim_name or ckpt.uri):
            raise ValueError("continuous training keeps every run's model on a claim or in object storage: set "
                             "template.checkpoint.claimName or template.checkpoint.uri")
        if self.time_zone is not None and self.schedule is None:
            raise ValueError("timeZone applies to a schedule: set schedule too")
        return self


class RunRecord(Model):
    """One run as the resource saw it, and what became of its model."""

    model_config = ConfigDict(extra="ignore")

    number: int = Field(description="Run number, from 0.")
    name: str = Field(max_length=63, pattern=DNS_LABEL_PATTERN, description="The run's TrainingJob.")
    trigger: str = Field(default="", description="What started it: Schedule, DataVersion or Manual.")
    data_version: str | None = Field(default=None, description="The data version it trained on.")
    warm_start: str | None = Field(default=None, description="The champion run it started from.")
    phase: str = Field(default="Pending", description="The TrainingJob's phase (Replaced when a newer run took over).")
    evaluation: dict[str, float] = Field(default_factory=dict, description="Its final evaluation metrics.")
    baseline: dict[str, float] = Field(
        default_factory=dict, description="The model it started from (the champion), evaluated on the run's own "
        "data before training: what its final evaluation is compared with.")
    promoted: bool | None = Field(default=None, description="Whether its model became champion (unset: not decided).")
    reason: str = Field(default="", description="Why it was or was not promoted, one word.")
    message: str = Field(default="", description="Why, for a person.")
    finished_at: datetime | None = Field(default=None, description="When its outcome was recorded.")
    tracking_run_id: str | None = Field(default=None, max_length=32, pattern=r"^[0-9a-f]{32}$",
                                        description="Its run in the experiment tracker (MLflow's run ID).")


class Champion(Model):
    """The model in service."""

    model_config = ConfigDict(extra="ignore")

    job: str = Field(description="The run whose model it is.")
    claim_name: str = Field(default="", description="The claim holding it (none in object storage).")
    model_path: str = Field(description="What readers resolve: the stable path in the claim (a link switched "
                            "atomically), or the URI of champion.json in object storage (a pointer written in one "
                            "PUT).")
    source_path: str = Field(default="", description="Where the model's files are: in the claim, or their URI.")
    evaluation: dict[str, float] = Field(default_factory=dict, description="Its evaluation metrics.")
    promoted_at: datetime | None = Field(default=None, description="When it became champion.")
    reason: str = Field(default="", description="FirstChampion, BetterObjective or Manual.")
    sha256: str | None = Field(default=None, description="Its weights' SHA-256, as checked when it was published.")


class ChampionHistory(Model):
    """One champion's time in service: the audit trail."""

    model_config = ConfigDict(extra="ignore")

    job: str = Field(description="The run.")
    promoted_at: datetime | None = Field(default=None, description="When it became champion.")
    retired_at: datetime | None = Field(default=None, description="When another replaced it.")
    reason: str = Field(default="", description="Why it was promoted.")


class Publishing(Model):
    """A promotion decided and being published (the link switched by a pod on the claim)."""

    model_config = ConfigDict(extra="ignore")

    job: str = Field(description="The run being promoted.")
    reason: str = Field(description="FirstChampion, BetterObjective or Manual.")
    message: str = Field(default="", description="Why.")
    evaluation: dict[str, float] = Field(default_factory=dict, description="Its evaluation metrics.")
    started_at: datetime | None = Field(default=None, description="When the decision was made.")


class ContinuousTrainingStatus(Model):
    model_config = ConfigDict(extra="ignore")

    phase: Literal["Waiting", "Running", "Publishing", "Suspended", "Failed"] = Field(
        default="Waiting", description="Waiting for a trigger, a run Running, a promotion Publishing, "
        "Suspended, or Failed (an invalid spec).")
    conditions: list[Condition] = Field(default_factory=list, description="Conditions, one per type.")
    objective: Objective | None = Field(default=None, description="The objective promotions compare.")
    champion: Champion | None = Field(default=None, description="The model in service.")
    champion_summary: str = Field(default="", description="For kubectl get: the champion and its objective.")
    champions: list[ChampionHistory] = Field(default_factory=list, description="Every champion, newest last.")
    publishing: Publishing | None = Field(default=None, description="A promotion in progress.")
    runs: list[RunRecord] = Field(default_factory=list, description="The recent runs, newest last.")
    active: list[str] = Field(default_factory=list, description="Runs not finished.")
    last_run: str | None = Field(default=None, description="The newest run.")
    last_schedule_time: datetime | None = Field(default=None, description="The schedule's last firing handled.")
    next_schedule_time: datetime | None = Field(default=None, description="When the schedule fires next.")
    data_version: str | None = Field(default=None, description="The data version the newest run trained on.")
    handled_retrain: str | None = Field(default=None, description="The last ludus.dev/retrain request handled.")
    handled_promote: str | None = Field(default=None, description="The last ludus.dev/promote request handled.")
    promotions: int = Field(default=0, description="Models promoted.")
    rejections: int = Field(default=0, description="Models not promoted.")
    observed_generation: int = Field(default=0, description="The spec generation this status reflects.")


class ContinuousTraining(BaseModel):
    """A whole ContinuousTraining object as the API server returns it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    api_version: str = Field(default=c.API_VERSION, alias="apiVersion")
    kind: str = c.CT_KIND
    metadata: ObjectMeta
    spec: ContinuousTrainingSpec
    status: ContinuousTrainingStatus = Field(default_factory=ContinuousTrainingStatus)


def continuous_from(body: Any) -> ContinuousTraining:
    return ContinuousTraining.model_validate(body)
