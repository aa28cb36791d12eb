"""Conditions, kept the way Kubernetes conventions ask.

Conditions are upserted by type; `lastTransitionTime` moves only when a
condition's status flips, so `kubectl describe` shows when things changed,
not when the operator last looked.
"""

from __future__ import annotations

from datetime import datetime

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
