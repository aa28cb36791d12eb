"""What "better" means: the one place an objective is parsed from a report, resolved for a job or for the
resource that owns jobs, and two values of a metric compared. Status, Sweep and ContinuousTraining all
use these, so a trial's best, a sweep's best and a champion are chosen by the same rule."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ludus.api.models import Objective

_METRIC_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def parse_objective(raw: Any) -> Objective | None:
    """An objective as a trainer or a status reported it (`{metric, goal}`), if it is well formed."""
    if not isinstance(raw, Mapping):
        return None
    metric, goal = raw.get("metric"), raw.get("goal")
    if isinstance(metric, str) and _METRIC_NAME.match(metric) and goal in ("maximize", "minimize"):
        return Objective(metric=metric, goal=goal)
    return None


def minimized(metric: str, objective: Objective) -> bool:
    """Whether smaller is better for `metric`: the objective's goal for its own metric, else by name
    (losses and errors go down, everything else up)."""
    if metric == objective.metric:
        return objective.goal == "minimize"
    return "loss" in metric or "error" in metric


def better(value: float, than: float, objective: Objective, metric: str | None = None) -> bool:
    """Strictly better: a tie keeps what was there first."""
    return value < than if minimized(metric or objective.metric, objective) else value > than


def gain(value: float, over: float, objective: Objective) -> float:
    """How much better `value` is than `over` (negative when worse), in the objective's direction."""
    return over - value if objective.goal == "minimize" else value - over


def resolve(declared: Objective | None, recorded: Objective | None, finished: Iterable[Objective | None],
            running: Iterable[Objective | None] = ()) -> tuple[Objective, bool]:
    """The objective an owner of jobs compares them by, and whether it is settled: the declared one, the
    one it already recorded, the one a finished job's trainer reported (the workload's own); until one
    finishes, a running job's word (provisional) or loss/minimize."""
    if declared is not None:
        return declared, True
    if recorded is not None:
        return recorded, True
    found = next((o for o in finished if o is not None), None)
    if found is not None:
        return found, True
    return next((o for o in running if o is not None), None) or Objective(), False
