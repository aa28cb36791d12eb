"""The one objective rule: parsed from what a trainer reports, resolved for an owner of jobs, compared."""

from __future__ import annotations

from typing import Any

import pytest

from ludus.api.models import Objective
from ludus.trainingjob.objective import better, gain, parse_objective, resolve

ACC = Objective(metric="accuracy", goal="maximize")
LOSS = Objective(metric="eval_loss", goal="minimize")


@pytest.mark.parametrize(("raw", "expected"), [
    ({"metric": "accuracy", "goal": "maximize"}, ACC),
    ({"metric": "accuracy", "goal": "up"}, None),
    ({"metric": "eval.loss", "goal": "minimize"}, None),
    ({"metric": "x" * 64, "goal": "minimize"}, None),
    ({"metric": 3, "goal": "minimize"}, None),
    ("accuracy", None),
    (None, None),
], ids=["a well-formed objective", "an unknown goal", "a metric name the CRD would refuse",
        "a metric name longer than the CRD's 63", "a metric that is not a string", "a bare string", "nothing"])
def test_what_a_trainer_reports_becomes_an_objective_only_when_well_formed(raw: Any,
                                                                          expected: Objective | None) -> None:
    assert parse_objective(raw) == expected


@pytest.mark.parametrize(("value", "than", "objective", "metric", "expected"), [
    (0.9, 0.8, ACC, None, True),
    (0.8, 0.8, ACC, None, False),
    (0.2, 0.3, LOSS, None, True),
    (0.2, 0.3, ACC, "loss", True),
    (0.9, 0.8, LOSS, "f1", True),
], ids=["higher accuracy under maximize", "a tie keeps the first", "lower loss under minimize",
        "another metric's direction comes from its name (loss goes down)", "and f1 goes up"])
def test_better_is_strict_and_follows_the_goal(value: float, than: float, objective: Objective, metric: str | None,
                                               expected: bool) -> None:
    assert better(value, than, objective, metric) is expected


def test_gain_is_positive_when_better_in_either_direction() -> None:
    assert gain(0.9, 0.8, ACC) == pytest.approx(0.1)
    assert gain(0.2, 0.3, LOSS) == pytest.approx(0.1)
    assert gain(0.4, 0.3, LOSS) == pytest.approx(-0.1)


@pytest.mark.parametrize(("declared", "recorded", "finished", "running", "expected"), [
    (ACC, LOSS, [LOSS], [], (ACC, True)),
    (None, LOSS, [ACC], [], (LOSS, True)),
    (None, None, [None, ACC], [LOSS], (ACC, True)),
    (None, None, [], [LOSS], (LOSS, False)),
    (None, None, [], [], (Objective(), False)),
], ids=["the declared objective wins", "then the one already recorded", "then a finished job's word",
        "a running job's word is provisional", "nothing at all: loss, minimize, not settled"])
def test_resolve_takes_the_most_trusted_objective(declared: Objective | None, recorded: Objective | None,
                                                 finished: list[Objective | None], running: list[Objective | None],
                                                 expected: tuple[Objective, bool]) -> None:
    assert resolve(declared, recorded, finished, running) == expected
