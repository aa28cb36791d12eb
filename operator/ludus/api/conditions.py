"""Conditions, kept the way Kubernetes conventions ask.

Conditions are upserted by type; `lastTransitionTime` moves only when a
condition's status flips, so `kubectl describe` shows when things changed,
not when the operator last looked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ludus.api import constants as c
from ludus.api.models import Condition, ConditionStatus, TrainingJobStatus

# Which condition is True in each phase; every other phase condition is False.
_PHASE_CONDITION = {
    c.PHASE_RUNNING: c.COND_RUNNING,
    c.PHASE_RESTARTING: c.COND_RESTARTING,
    c.PHASE_SUSPENDED: c.COND_SUSPENDED,
    c.PHASE_SUCCEEDED: c.COND_SUCCEEDED,
    c.PHASE_FAILED: c.COND_FAILED,
}


def upsert_condition(
    conditions: list[Condition], type_: str, status: ConditionStatus, reason: str, message: str, now: datetime
) -> list[Condition]:
    """Return conditions with `type_` set; keeps lastTransitionTime unless status flips."""
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type_:
            out.append(cond)
            continue
        found = True
        moved = cond.status != status
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now if moved or cond.last_transition_time is None else cond.last_transition_time,
            )
        )
    if not found:
        out.append(
            Condition(type=type_, status=status, reason=reason, message=message, last_transition_time=now)
        )
    return out


def get_condition(status: TrainingJobStatus, type_: str) -> Condition | None:
    return next((cond for cond in status.conditions if cond.type == type_), None)


def with_phase(
    conditions: list[Condition], phase: str, reason: str, message: str, now: datetime
) -> list[Condition]:
    """Set the phase's own condition True and the other phase conditions False (only if present)."""
    wanted = _PHASE_CONDITION.get(phase)
    for p, cond_type in _PHASE_CONDITION.items():
        if cond_type == wanted:
            conditions = upsert_condition(conditions, cond_type, "True", reason, message, now)
        elif any(existing.type == cond_type for existing in conditions):
            if p in c.TERMINAL_PHASES:
                continue  # Succeeded/Failed are never un-set once True; they are not set False either.
            existing = next(x for x in conditions if x.type == cond_type)
            if existing.status == "True":
                conditions = upsert_condition(conditions, cond_type, "False", reason, message, now)
    return conditions


@dataclass(frozen=True)
class RefusalCondition:
    """A condition that names what the API server refuses of an owner's children (False, `refused`
    reason) and says once it accepts them again (True, `accepted` reason and message)."""

    type: str
    refused: str
    accepted: str
    accepted_message: str


# Creating the children (pods, Service, trials, the Workload), and changing them (a trial's
# suspension, a Kueue suspension, a Workload's status).
CREATED: Final = RefusalCondition(c.COND_CREATED, c.REASON_CREATE_REFUSED, c.REASON_CREATED,
                                  "the API server accepted the children")
UPDATED: Final = RefusalCondition(c.COND_UPDATED, c.REASON_UPDATE_REFUSED, c.REASON_UPDATED,
                                  "the API server accepted the changes to the children")


def refusal_condition(conditions: list[Condition], kind: RefusalCondition, refused: str | None, now: datetime
                      ) -> tuple[list[Condition] | None, bool]:
    """The conditions with `kind` set from this pass' refusal (None: unchanged), and whether they
    already said exactly that refusal (its Event went out then)."""
    before = next((x for x in conditions if x.type == kind.type), None)
    if refused is None:
        if before is None or before.status == "True":
            return None, False
        return upsert_condition(conditions, kind.type, "True", kind.accepted, kind.accepted_message, now), False
    said = before is not None and before.status == "False" and before.message == refused
    return upsert_condition(conditions, kind.type, "False", kind.refused, refused, now), said


def valid_again(conditions: list[Condition], now: datetime) -> list[Condition] | None:
    """SpecValid True once a stored spec that stopped validating validates again (None: nothing to say)."""
    before = next((x for x in conditions if x.type == c.COND_SPEC_VALID), None)
    if before is None or before.status == "True":
        return None
    return upsert_condition(conditions, c.COND_SPEC_VALID, "True", c.REASON_SPEC_VALID, "the spec validates again", now)


def spec_invalid(conditions: list[Condition], message: str, now: datetime) -> list[Condition]:
    """SpecValid False naming the field: a started object's stored spec no longer validates (an operator
    upgrade or rollback, a CRD loosened by hand); it keeps its phase and its children."""
    return upsert_condition(conditions, c.COND_SPEC_VALID, "False", c.REASON_INVALID_SPEC, message, now)
