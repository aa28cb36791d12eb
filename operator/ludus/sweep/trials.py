"""A trial as a TrainingJob manifest, and a trial TrainingJob read back as a record (pure)."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import Any, Final

from ludus.api import constants as c
from ludus.api.models import Objective, TrainingJob
from ludus.api.sweep import Sweep, TrialRecord
from ludus.sweep.study import TrialOutcome, TrialState_
from ludus.trainingjob.child import annotation, child_job, latest_metrics, number_label, phase_of, template_spec

# Intermediate objective values kept per trial (the newest): what early stopping compares.
MAX_INTERMEDIATE: Final = 64


def trial_name(sweep: str, number: int) -> str:
    return f"{sweep}-{number}"


def env_name(parameter: str) -> str:
    return f"{c.ENV_TRIAL_PARAMETER_PREFIX}{parameter.upper()}"


def _substitute(words: list[str], values: Mapping[str, str]) -> list[str]:
    """`${name}` in the command and arguments becomes the trial's value; other `$` text stays."""
    return [string.Template(word).safe_substitute(values) for word in words]


def trial_job(sweep: Sweep, number: int, values: Mapping[str, str], objective: Objective | None) -> dict[str, Any]:
    """Trial `number` of the sweep: the template with the values in its environment (one variable per
    parameter and all of them as JSON) and in `${name}` placeholders, owned by the Sweep."""
    spec = template_spec(sweep.spec.template, objective, sweep.spec.suspend)
    spec["command"] = _substitute(spec.get("command", []), values)
    spec["args"] = _substitute(spec.get("args", []), values)
    own = {env_name(name) for name in values} | {c.ENV_TRIAL_PARAMETERS}
    spec["env"] = [e for e in spec.get("env", []) if e["name"] not in own] + [
        {"name": c.ENV_TRIAL_PARAMETERS, "value": json.dumps(dict(values), sort_keys=True)},
        *({"name": env_name(name), "value": value} for name, value in sorted(values.items())),
    ]
    checkpoint = spec.get("checkpoint") or {}
    directory = trial_name(sweep.metadata.name, number)
    if checkpoint.get("claimName"):  # one claim for the sweep, a directory in it per trial: none resumes another's
        checkpoint["subPath"] = f"{checkpoint['subPath']}/{directory}" if checkpoint.get("subPath") else directory
    elif checkpoint.get("uri"):  # one prefix for the sweep, one under it per trial
        checkpoint["uri"] = f"{checkpoint['uri'].rstrip('/')}/{directory}"
    return child_job(c.SWEEP_KIND, sweep.metadata, trial_name(sweep.metadata.name, number), spec,
                     labels={c.LABEL_SWEEP: sweep.metadata.name, c.LABEL_TRIAL: str(number)},
                     annotations={c.ANNOTATION_TRIAL_PARAMETERS: json.dumps(dict(values), sort_keys=True)})


def trial_number(job: TrainingJob) -> int | None:
    return number_label(job, c.LABEL_TRIAL)


def _values(job: TrainingJob) -> dict[str, str]:
    raw = annotation(job, c.ANNOTATION_TRIAL_PARAMETERS) or "{}"
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def stopped_early(job: TrainingJob) -> bool:
    return annotation(job, c.ANNOTATION_STOPPED_EARLY) == "true"


def record(job: TrainingJob, number: int, objective: Objective, old: TrialRecord | None,
           track: bool = True) -> TrialRecord:
    """The trial as the sweep records it: phase, objective value, and its objective by step (the
    old record's points plus the one the status shows now)."""
    phase = phase_of(job)
    stopped = stopped_early(job)
    metrics = latest_metrics(job)
    intermediate = dict(old.intermediate) if old else {}
    value = None
    if objective.metric in metrics:
        value, step = metrics[objective.metric]
        if track:  # only once the objective is settled: points of another metric would mislead the median
            intermediate[str(step)] = value
        if len(intermediate) > MAX_INTERMEDIATE:
            kept = sorted(intermediate, key=int)[-MAX_INTERMEDIATE:]
            intermediate = {k: intermediate[k] for k in kept}
    return TrialRecord(
        number=number, name=job.metadata.name, parameters=_values(job),
        phase="Stopped" if stopped else phase, value=value, stopped_early=stopped, intermediate=intermediate,
        tracking_run_id=job.status.tracking.run_id if job.status.tracking else (old.tracking_run_id if old else None),
    )


def state_of(trial: TrialRecord) -> TrialState_:
    if trial.stopped_early:
        return "stopped"
    if trial.phase == c.PHASE_SUCCEEDED:
        return "succeeded"
    if trial.phase == c.PHASE_FAILED:
        return "failed"
    if trial.phase == c.SWEEP_TRIAL_DELETED:
        return "deleted"
    return "running"


def outcome(trial: TrialRecord) -> TrialOutcome:
    return TrialOutcome(number=trial.number, values=dict(trial.parameters), state=state_of(trial),
                        value=trial.value, intermediate={int(k): v for k, v in trial.intermediate.items()})
