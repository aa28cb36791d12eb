"""The promotion rule of continuous training over tables of champion and challenger metrics."""

from __future__ import annotations

import pytest

from ludus.api import constants as c
from ludus.api.continuous import Champion, RunRecord, parse_threshold
from ludus.api.models import Objective
from ludus.continuous.policies.promotion import BASELINE_SCORE, CHAMPION_SCORE, decide, reference

ACC = Objective(metric="accuracy", goal="maximize")
LOSS = Objective(metric="eval_loss", goal="minimize")


@pytest.mark.parametrize("challenger, champion, objective, gain, thresholds, promote, reason", [
    ({"accuracy": 0.90}, None, ACC, 0.0, [], True, c.CT_REASON_FIRST_CHAMPION),
    ({"accuracy": 0.95}, {"accuracy": 0.90}, ACC, 0.0, [], True, c.CT_REASON_BETTER),
    ({"accuracy": 0.90}, {"accuracy": 0.90}, ACC, 0.0, [], False, c.CT_REASON_NOT_BETTER),  # a tie keeps the champion
    ({"accuracy": 0.905}, {"accuracy": 0.90}, ACC, 0.01, [], False, c.CT_REASON_NOT_BETTER),  # not by enough
    ({"accuracy": 0.92}, {"accuracy": 0.90}, ACC, 0.01, [], True, c.CT_REASON_BETTER),
    ({"eval_loss": 0.2}, {"eval_loss": 0.3}, LOSS, 0.0, [], True, c.CT_REASON_BETTER),  # lower is better
    ({"eval_loss": 0.4}, {"eval_loss": 0.3}, LOSS, 0.0, [], False, c.CT_REASON_NOT_BETTER),
    ({"f1": 0.9}, {"accuracy": 0.9}, ACC, 0.0, [], False, c.CT_REASON_NOT_EVALUATED),  # objective missing
    (None, {"accuracy": 0.9}, ACC, 0.0, [], False, c.CT_REASON_NOT_EVALUATED),  # never evaluated
    ({"accuracy": float("nan")}, None, ACC, 0.0, [], False, c.CT_REASON_NOT_EVALUATED),
    ({"accuracy": 0.99, "precision": 0.85}, {"accuracy": 0.9}, ACC, 0.0, ["precision >= 0.9"], False,
     c.CT_REASON_THRESHOLD),
    ({"accuracy": 0.99}, {"accuracy": 0.9}, ACC, 0.0, ["precision >= 0.9"], False, c.CT_REASON_THRESHOLD),  # unchecked
    ({"accuracy": 0.99, "precision": 0.95}, None, ACC, 0.0, ["precision >= 0.9", "eval_loss < 1"], False,
     c.CT_REASON_THRESHOLD),
    ({"accuracy": 0.99, "precision": 0.95, "eval_loss": 0.1}, None, ACC, 0.0, ["precision >= 0.9", "eval_loss < 1"],
     True, c.CT_REASON_FIRST_CHAMPION),
    ({"accuracy": 0.85, "precision": 0.95}, None, ACC, 0.0, ["accuracy > 0.9"], False, c.CT_REASON_THRESHOLD),
])
def test_promotion_decisions(challenger: dict | None, champion: dict | None, objective: Objective, gain: float,
                             thresholds: list[str], promote: bool, reason: str) -> None:
    verdict = decide(challenger, champion, objective, gain, [parse_threshold(t) for t in thresholds])
    assert (verdict.promote, verdict.reason) == (promote, reason), verdict.message
    assert verdict.message


def test_a_refusal_says_why_in_numbers() -> None:
    verdict = decide({"accuracy": 0.1}, {"accuracy": 0.95}, ACC)
    assert verdict.message == "accuracy 0.1 against the champion's 0.95: not better (maximize)"
    assert "precision >= 0.9 does not hold: precision is 0.85" in decide(
        {"accuracy": 1, "precision": 0.85}, None, ACC, thresholds=[parse_threshold("precision >= 0.9")]).message


@pytest.mark.parametrize("text", ["precision => 0.9", "precision >= high", ">= 0.9", ""])
def test_a_malformed_threshold_is_refused_with_the_form_to_use(text: str) -> None:
    with pytest.raises(ValueError, match="<metric> >= <number>"):
        parse_threshold(text)


@pytest.mark.parametrize("warm_start, baseline, expected", [
    ("day-1", {"accuracy": 0.8}, ({"accuracy": 0.8}, BASELINE_SCORE)),  # from the champion, measured on its data
    ("day-0", {"accuracy": 0.8}, ({"accuracy": 0.95}, CHAMPION_SCORE)),  # from a champion retired since
    ("day-1", {}, ({"accuracy": 0.95}, CHAMPION_SCORE)),  # a trainer that reports no baseline
    ("day-1", {"f1": 0.8}, ({"accuracy": 0.95}, CHAMPION_SCORE)),  # a baseline without the objective
    (None, {"accuracy": 0.8}, ({"accuracy": 0.95}, CHAMPION_SCORE)),  # trained from scratch
])
def test_a_run_is_compared_with_its_baseline_only_when_it_measured_the_champion_in_service(
        warm_start: str | None, baseline: dict, expected: tuple) -> None:
    champion = Champion(job="day-1", claim_name="models", model_path="ct/champion", evaluation={"accuracy": 0.95})
    record = RunRecord(number=2, name="day-2", warm_start=warm_start, baseline=baseline, evaluation={"accuracy": 0.9})
    assert reference(record, champion, ACC) == expected
    assert reference(record, None, ACC) == (None, CHAMPION_SCORE)
