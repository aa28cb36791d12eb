"""Which runs may run together (concurrencyPolicy Allow, Forbid, Replace) and starting a run for the
triggers that fired. A suspended resource starts nothing, and its missed firings are not saved up."""

from __future__ import annotations

from datetime import datetime

from ludus.api import constants as c
from ludus.api.continuous import RunRecord
from ludus.continuous.policies.triggers import Triggers, stamp
from ludus.continuous.runs import TRIGGER_SCHEDULE, run_job, run_name
from ludus.continuous.state import RunPass


def number_active(record: RunRecord, s: RunPass) -> bool:
    """A run that exists and has not finished (a replaced one is finished for us)."""
    return record.number in s.by_number and record.phase not in (*c.TERMINAL_PHASES, c.CT_PHASE_REPLACED)


def replace_older_runs(s: RunPass) -> None:
    """Find the active runs; under Replace only the newest may run, even after a restart mid-replace."""
    s.active = sorted((r for r in s.records.values() if number_active(r, s)), key=lambda r: r.number)
    if s.ct.spec.concurrency_policy == "Replace":
        for record in s.active[:-1]:
            replace(s, record, "a newer run")
        s.active = s.active[-1:]


def start_runs(s: RunPass, triggers: Triggers) -> datetime | None:
    """Start a run for the triggers that fired, as the policy allows; returns the schedule's last firing
    to record (a firing skipped under Forbid counts as handled)."""
    spec = s.ct.spec
    last_schedule = s.ct.status.last_schedule_time
    if spec.suspend:
        return triggers.fire or last_schedule
    fired = list(triggers.fired)
    if not fired or s.publishing is not None:
        return last_schedule
    if s.active and spec.concurrency_policy == "Forbid":
        if triggers.fire is not None:
            last_schedule = triggers.fire
            s.event("Normal", c.CT_REASON_SKIPPED, f"the schedule fired at {stamp(triggers.fire)} while "
                    f"{', '.join(r.name for r in s.active)} ran (concurrencyPolicy Forbid)")
            fired.remove(TRIGGER_SCHEDULE)
        return last_schedule  # a new data version or a retrain request waits for the active run to end
    for record in s.active:
        replace(s, record, f"a {fired[0]} trigger")
    s.active = []
    _start_run(s, triggers, fired)
    return triggers.fire if triggers.fire is not None else last_schedule


def _start_run(s: RunPass, triggers: Triggers, fired: list[str]) -> None:
    """The next run, warm-started from the champion, carrying what started it."""
    name = s.ct.metadata.name
    number = max([*s.records, *s.by_number, -1]) + 1
    trigger = fired[0]
    warm_start = s.champion.job if s.champion else None
    s.plan.create.append(run_job(s.ct, number, trigger, triggers.data,
                                 triggers.fire if TRIGGER_SCHEDULE in fired else None, warm_start, triggers.retrain))
    s.plan.started.append(trigger)
    s.records[number] = RunRecord(number=number, name=run_name(name, number), trigger=trigger,
                                  data_version=triggers.data, warm_start=warm_start)
    warm = f", warm-started from {warm_start}" if warm_start else ""
    data = f", data version {triggers.data}" if triggers.data else ""
    s.event("Normal", c.CT_REASON_RUN_STARTED, f"{run_name(name, number)} started ({trigger}{data}{warm})")
    s.active = [s.records[number]]


def replace(s: RunPass, record: RunRecord, by: str) -> None:
    s.plan.delete_runs.append(record.name)
    s.records[record.number] = record.model_copy(update={
        "phase": c.CT_PHASE_REPLACED, "promoted": False, "reason": c.CT_PHASE_REPLACED, "finished_at": s.now,
        "message": f"replaced: {by} started a newer run (concurrencyPolicy Replace)"})
    s.event("Normal", c.CT_REASON_REPLACED, f"{record.name} stopped: {by} started a newer run "
            "(concurrencyPolicy Replace)")
