"""Conditions follow Kubernetes conventions: lastTransitionTime moves only on a flip."""

from __future__ import annotations

from datetime import timedelta

from ludus.api import constants as c
from ludus.status import upsert_condition, with_phase
from tests.factories import T0


def test_upsert_adds_then_keeps_the_transition_time_while_status_holds() -> None:
    conds = upsert_condition([], "Running", "True", "A", "first", T0)
    later = upsert_condition(conds, "Running", "True", "B", "second", T0 + timedelta(minutes=1))
    assert len(later) == 1
    assert later[0].last_transition_time == T0 and later[0].reason == "B" and later[0].message == "second"


def test_a_flip_moves_the_transition_time() -> None:
    conds = upsert_condition([], "Running", "True", "A", "", T0)
    flipped = upsert_condition(conds, "Running", "False", "A", "", T0 + timedelta(minutes=1))
    assert flipped[0].last_transition_time == T0 + timedelta(minutes=1)


def test_with_phase_sets_one_phase_condition_and_clears_the_others() -> None:
    conds = with_phase([], c.PHASE_RUNNING, "R", "", T0)
    conds = with_phase(conds, c.PHASE_RESTARTING, "X", "", T0)
    by_type = {x.type: x.status for x in conds}
    assert by_type == {c.COND_RUNNING: "False", c.COND_RESTARTING: "True"}
    conds = with_phase(conds, c.PHASE_SUCCEEDED, "S", "", T0)
    assert {x.type: x.status for x in conds}[c.COND_SUCCEEDED] == "True"
    assert {x.type: x.status for x in conds}[c.COND_RESTARTING] == "False"
