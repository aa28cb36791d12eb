"""What wants a new run: the schedule (firing on its grid, in its time zone), a new data version, a
retrain request. The runs carry what started them as annotations, so a trigger is seen once even
across an operator restart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ludus.api import constants as c
from ludus.api.conditions import upsert_condition
from ludus.api.continuous import ContinuousTraining
from ludus.api.models import Condition, TrainingJob
from ludus.continuous.runs import TRIGGER_DATA, TRIGGER_MANUAL, TRIGGER_SCHEDULE, run_number
from ludus.continuous.schedule import due
from ludus.continuous.state import Observed
from ludus.trainingjob.child import annotation


@dataclass(frozen=True)
class Triggers:
    """The triggers that fire now (in order of precedence) and what the status records of them."""

    fired: tuple[str, ...]
    fire: datetime | None  # the schedule's firing, if it fired
    next_fire: datetime | None
    data: str | None  # the data version seen now
    last_data: str | None  # the data version of the newest run
    retrain: str | None  # the retrain request on the resource
    last_retrain: str | None  # the newest request a run was started for


def read_triggers(ct: ContinuousTraining, jobs: Sequence[TrainingJob], observed: Observed,
                  now: datetime) -> Triggers:
    spec, old, meta = ct.spec, ct.status, ct.metadata
    marks = [t for t in (old.last_schedule_time, parse_time(newest(jobs, c.ANNOTATION_SCHEDULED_TIME))) if t]
    since = max(marks) if marks else (meta.creation_timestamp or now)
    fire, next_fire = due(spec.schedule, spec.time_zone, since, now) if spec.schedule else (None, None)
    last_data = newest(jobs, c.ANNOTATION_DATA_VERSION) or old.data_version
    data = observed.data_version
    if spec.data_version is None:  # no ConfigMap named: the resource's own annotation carries the version
        data = meta.annotations.get(c.ANNOTATION_DATA_VERSION) or data
    retrain = meta.annotations.get(c.ANNOTATION_RETRAIN)
    last_retrain = newest(jobs, c.ANNOTATION_RETRAIN) or old.handled_retrain
    fired = tuple(t for t, on in ((TRIGGER_MANUAL, bool(retrain) and retrain != last_retrain),
                                  (TRIGGER_DATA, data is not None and data != last_data),
                                  (TRIGGER_SCHEDULE, fire is not None)) if on)
    return Triggers(fired=fired, fire=fire, next_fire=next_fire, data=data, last_data=last_data,
                    retrain=retrain, last_retrain=last_retrain)


def data_condition(conditions: list[Condition], ct: ContinuousTraining, observed: Observed, data: str | None,
                   now: datetime) -> list[Condition]:
    """DataVersionAvailable, for a resource that names a ConfigMap: the version read, or why not."""
    if ct.spec.data_version is None:
        return conditions
    if observed.data_error:
        return upsert_condition(conditions, c.CT_COND_DATA, "False", c.CT_REASON_DATA_MISSING, observed.data_error,
                                now)
    return upsert_condition(conditions, c.CT_COND_DATA, "True", c.CT_REASON_DATA_READ, f"data version {data}", now)


def newest(jobs: Sequence[TrainingJob], key: str) -> str | None:
    """The annotation `key` of the newest run that has it."""
    numbered = sorted(((run_number(j) or -1, j) for j in jobs), key=lambda p: p[0])
    for _, job in reversed(numbered):
        value = annotation(job, key)
        if value is not None:
            return value
    return None


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
