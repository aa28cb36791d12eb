"""The Sweep API: a hyperparameter search over TrainingJobs, as pydantic models (the CRD's source).

A Sweep holds a TrainingJob spec as its template, the parameters to search and how; the operator
creates one TrainingJob per trial, owned by the Sweep, and reads each trial's evaluation from its
status. The trials in the API server are the sweep's record: there is no other database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from ludus.api import constants as c
from ludus.api.models import (
    DNS_LABEL_PATTERN,
    MAX_COUNT,
    Condition,
    Model,
    Objective,
    ObjectMeta,
    TrainingJobSpec,
)

PARAMETER_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class Parameter(Model):
    """One hyperparameter: a range of numbers or a list of values."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.type != 'categorical' || (has(self.values) && size(self.values) > 0)",
                 "message": "a categorical parameter needs a non-empty values list", "fieldPath": ".values"},
                {"rule": "self.type == 'categorical' || (has(self.min) && has(self.max))",
                 "message": "a float or int parameter needs min and max", "fieldPath": ".min"},
                {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                 "message": "min must not be greater than max", "fieldPath": ".min"},
                {"rule": "!self.log || (has(self.min) && self.min > 0.0)",
                 "message": "a log-scale range needs min > 0", "fieldPath": ".log"},
                {"rule": "!has(self.step) || self.step > 0.0",
                 "message": "step must be positive", "fieldPath": ".step"},
                {"rule": "!(self.log && has(self.step))",
                 "message": "log scale and step cannot be combined", "fieldPath": ".step"},
            ]
        }
    )

    name: str = Field(pattern=PARAMETER_NAME_PATTERN, max_length=63,
                      description="The name trials see: LUDUS_PARAM_<NAME> and ${NAME} in the args.")
    type: Literal["float", "int", "categorical"] = Field(description="float, int or categorical.")
    min: float | None = Field(default=None, description="Lowest value (float and int).")
    max: float | None = Field(default=None, description="Highest value (float and int).")
    log: StrictBool = Field(default=False, description="Sample on a log scale (min > 0).")
    step: float | None = Field(default=None, description="Spacing of the values (grid needs it for numbers).")
    values: list[Annotated[str, Field(max_length=1024)]] | None = Field(default=None, max_length=256,
                                     description="The choices of a categorical parameter.")

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.type == "categorical":
            if not self.values:
                raise ValueError("a categorical parameter needs a non-empty values list")
            return self
        if self.min is None or self.max is None:
            raise ValueError("a float or int parameter needs min and max")
        if self.min > self.max:
            raise ValueError("min must not be greater than max")
        if self.log and self.min <= 0:
            raise ValueError("a log-scale range needs min > 0")
        if self.step is not None and self.step <= 0:
            raise ValueError("step must be positive")
        if self.log and self.step is not None:
            raise ValueError("log scale and step cannot be combined")
        return self


class Algorithm(Model):
    """How the next trial's values are chosen."""

    name: Literal["random", "grid", "tpe"] = Field(
        default="random", description="random, grid (every combination, numbers need a step) or tpe (Bayesian).")
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Seed: the same sweep suggests the same values.")


class EarlyStopping(Model):
    """Median stopping: a trial worse than the median of earlier trials at the same step is stopped."""

    type: Literal["median"] = Field(default="median", description="The rule: median.")
    warmup_steps: int = Field(default=0, ge=0, le=MAX_COUNT, description="Steps a trial runs before it may be stopped.")
    min_trials: int = Field(default=3, ge=1, le=10000, description="Finished trials needed before any is stopped.")


class SweepSpec(Model):
    """What to search, how, and with how many trials."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.parallelTrials <= self.maxTrials",
                 "message": "parallelTrials must not exceed maxTrials", "fieldPath": ".parallelTrials"},
                {"rule": "self.parameters.all(p, self.parameters.exists_one(q, q.name == p.name))",
                 "message": "parameter names must be unique", "fieldPath": ".parameters"},
            ]
        }
    )

    template: TrainingJobSpec = Field(description="The TrainingJob spec every trial starts from.")
    parameters: list[Parameter] = Field(min_length=1, max_length=32, description="The search space.")
    objective: Objective | None = Field(
        default=None, description="What to optimise; the template's objective when unset, else the workload's.")
    algorithm: Algorithm = Field(default_factory=Algorithm, description="random, grid or tpe, and a seed.")
    max_trials: int = Field(default=10, ge=1, le=10000, description="Trials in all.")
    parallel_trials: int = Field(default=1, ge=1, le=1000, description="Trials running at once, at most.")
    max_failed_trials: int = Field(default=3, ge=1, le=10000, description="Failed trials after which the sweep fails.")
    early_stopping: EarlyStopping | None = Field(default=None, description="Stop unpromising trials (off when unset).")
    suspend: StrictBool = Field(default=False, description="Suspend running trials and start none.")

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        if self.parallel_trials > self.max_trials:
            raise ValueError("parallelTrials must not exceed maxTrials")
        names = [p.name for p in self.parameters]
        if len(names) != len(set(names)):
            raise ValueError("parameter names must be unique")
        return self


class TrialRecord(Model):
    """One trial as the sweep saw it."""

    model_config = ConfigDict(extra="ignore")

    number: int = Field(description="Trial number, from 0.")
    name: str = Field(max_length=63, pattern=DNS_LABEL_PATTERN, description="The trial's TrainingJob.")
    parameters: dict[str, str] = Field(default_factory=dict, description="The values it ran with.")
    phase: str = Field(default="Pending", description="The TrainingJob's phase, or Stopped (stopped early).")
    value: float | None = Field(default=None, description="Its objective value (latest).")
    stopped_early: bool = Field(default=False, description="Stopped by the early-stopping rule.")
    tracking_run_id: str | None = Field(default=None, max_length=32, pattern=r"^[0-9a-f]{32}$",
                                        description="Its run in the experiment tracker (MLflow's run ID).")
    intermediate: dict[str, float] = Field(
        default_factory=dict, description="Objective value by step while it ran (what early stopping compares).")


class BestTrial(Model):
    model_config = ConfigDict(extra="ignore")

    number: int = Field(description="Trial number.")
    name: str = Field(max_length=63, pattern=DNS_LABEL_PATTERN, description="The trial's TrainingJob.")
    parameters: dict[str, str] = Field(default_factory=dict, description="Its values.")
    value: float = Field(description="Its objective value.")
    metrics: dict[str, float] = Field(default_factory=dict, description="All its latest evaluation metrics.")


class SweepStatus(Model):
    model_config = ConfigDict(extra="ignore")

    phase: Literal["Pending", "Running", "Suspended", "Succeeded", "Failed"] = Field(
        default="Pending", description="Where the sweep is.")
    conditions: list[Condition] = Field(default_factory=list, description="Conditions, one per type.")
    objective: Objective | None = Field(default=None, description="The objective in use.")
    trials: list[TrialRecord] = Field(default_factory=list, max_length=100, description="The best, the running and "
                                      "the latest trials, by number (at most 100; the counts cover them all).")
    created: int = Field(default=0, description="Trials created.")
    running: int = Field(default=0, description="Trials not yet finished.")
    succeeded: int = Field(default=0, description="Trials that succeeded.")
    failed: int = Field(default=0, description="Trials that failed.")
    stopped: int = Field(default=0, description="Trials stopped early.")
    deleted: int = Field(default=0, description="Trials whose TrainingJob was deleted (by hand) before it finished.")
    progress: str = Field(default="", description="Finished/maxTrials, for kubectl get.")
    best: BestTrial | None = Field(default=None, description="The best trial so far.")
    best_summary: str = Field(default="", description="The best objective, for kubectl get.")
    start_time: datetime | None = Field(default=None, description="When the first trial was created.")
    completion_time: datetime | None = Field(default=None, description="When the sweep ended.")
    observed_generation: int = Field(default=0, description="The spec generation this status reflects.")


class Sweep(BaseModel):
    """A whole Sweep object as the API server returns it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    api_version: str = Field(default=c.API_VERSION, alias="apiVersion")
    kind: str = c.SWEEP_KIND
    metadata: ObjectMeta
    spec: SweepSpec
    status: SweepStatus = Field(default_factory=SweepStatus)


def sweep_from(body: Any) -> Sweep:
    return Sweep.model_validate(body)
