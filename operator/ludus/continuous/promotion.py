"""Whether a challenger model replaces the champion (pure): the promotion rule of continuous training.

The challenger is promoted only if it was evaluated, its objective beats the champion's by at least
`min_improvement` (in the objective's direction), and every threshold holds. The first evaluated
run with no champion is promoted if the thresholds hold. Every refusal says why, in words a person
can act on: this is what the status, the Event and the metric carry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ludus.api.continuous import Threshold
from ludus.api.models import Objective
from ludus.trainingjob.objective import gain

REASON_FIRST: Final = "FirstChampion"
REASON_BETTER: Final = "BetterObjective"
REASON_NOT_EVALUATED: Final = "NotEvaluated"
REASON_NOT_BETTER: Final = "NotBetterEnough"
REASON_THRESHOLD: Final = "ThresholdNotMet"


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    message: str


def decide(challenger: Mapping[str, float] | None, champion: Mapping[str, float] | None, objective: Objective,
           min_improvement: float = 0.0, thresholds: Sequence[Threshold] = ()) -> Verdict:
    """Promote `challenger` (its evaluation metrics) over `champion` (None: there is none)?"""
    value = (challenger or {}).get(objective.metric)
    if value is None or not math.isfinite(value):
        reported = ", ".join(sorted(challenger or {})) or "nothing"
        return Verdict(False, REASON_NOT_EVALUATED,
                       f"the challenger has no {objective.metric} to compare (it reported {reported})")
    assert challenger is not None
    for threshold in thresholds:
        actual = challenger.get(threshold.metric)
        if actual is None or not math.isfinite(actual):
            return Verdict(False, REASON_THRESHOLD, f"{threshold} cannot be checked: the challenger reported no "
                           f"{threshold.metric}")
        if not threshold.holds(actual):
            return Verdict(False, REASON_THRESHOLD, f"{threshold} does not hold: {threshold.metric} is {actual:.4g}")
    best = (champion or {}).get(objective.metric)
    if best is None or not math.isfinite(best):
        return Verdict(True, REASON_FIRST, f"the first evaluated run: {objective.metric} {value:.4g}")
    margin = gain(value, best, objective)
    if margin <= 0 or margin < min_improvement:
        wanted = f" by at least {min_improvement:g}" if min_improvement else ""
        return Verdict(False, REASON_NOT_BETTER, f"{objective.metric} {value:.4g} against the champion's {best:.4g}: "
                       f"not better{wanted} ({objective.goal})")
    return Verdict(True, REASON_BETTER, f"{objective.metric} {value:.4g} beats the champion's {best:.4g} "
                   f"by {margin:.4g}")
