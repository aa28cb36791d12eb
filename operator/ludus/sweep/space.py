"""A Sweep's parameters as Optuna distributions and grid axes, and values as the strings trials see."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ludus.api.sweep import Parameter

# A grid larger than this is refused: nobody means a sweep of more combinations.
MAX_GRID: Final = 100_000


class SpaceError(ValueError):
    """A search space the schema could not refuse; the message names the field."""


def distribution(p: Parameter) -> BaseDistribution:
    if p.type == "categorical":
        return CategoricalDistribution(list(p.values or []))
    assert p.min is not None and p.max is not None  # the model checked it
    if p.type == "int":
        low, high = math.ceil(p.min), math.floor(p.max)
        if low > high:
            raise SpaceError(f"parameters[{p.name}]: no integer lies within [{p.min}, {p.max}]")
        step = int(p.step) if p.step else 1
        if p.step and p.step != step:
            raise SpaceError(f"parameters[{p.name}].step: an int parameter needs a whole step")
        high = low + (high - low) // step * step  # Optuna wants high on the grid
        return IntDistribution(low, high, log=p.log, step=step)
    if not math.isfinite(p.max - p.min):
        raise SpaceError(f"parameters[{p.name}]: max - min must be a finite number")
    if p.step:
        top = round(p.min + math.floor((p.max - p.min) / p.step + 1e-9) * p.step, 12)
        return FloatDistribution(p.min, top, step=p.step)
    return FloatDistribution(p.min, p.max, log=p.log)


def distributions(parameters: Sequence[Parameter]) -> dict[str, BaseDistribution]:
    return {p.name: distribution(p) for p in parameters}


def _axis_length(name: str, dist: BaseDistribution) -> int:
    """How many values an axis has, counted without listing them (a range of billions is one division)."""
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices)
    if isinstance(dist, IntDistribution):
        return (dist.high - dist.low) // dist.step + 1
    assert isinstance(dist, FloatDistribution)
    if dist.step is None:
        raise SpaceError(f"parameters[{name}].step: the grid algorithm needs a step for a float range")
    count = (dist.high - dist.low) / dist.step
    if not math.isfinite(count) or count >= MAX_GRID:
        raise SpaceError(f"parameters: the grid has more than {MAX_GRID} combinations")
    return int(round(count)) + 1


def _axis(dist: BaseDistribution, length: int) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    assert isinstance(dist, FloatDistribution) and dist.step is not None
    return [round(dist.low + i * dist.step, 12) for i in range(length)]


def grid_size(parameters: Sequence[Parameter]) -> int:
    """The number of combinations, refused past MAX_GRID before any axis is listed."""
    size = 1
    for p in parameters:
        size *= _axis_length(p.name, distribution(p))
        if size > MAX_GRID:
            raise SpaceError(f"parameters: the grid has more than {MAX_GRID} combinations")
    return size


def grid(parameters: Sequence[Parameter]) -> dict[str, list[Any]]:
    """Every value of every axis; numbers need a step (or a whole-number int range)."""
    grid_size(parameters)
    dists = {p.name: distribution(p) for p in parameters}
    return {name: _axis(dist, _axis_length(name, dist)) for name, dist in dists.items()}


def as_text(value: Any) -> str:
    """A value as a trial sees it (environment and arguments): ints without a point, floats short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # exact: the record is read back into the study
    return str(value)


def from_text(parameters: Sequence[Parameter], values: Mapping[str, str]) -> dict[str, Any]:
    """A trial's recorded values back as Optuna's (numbers as numbers, choices as they are)."""
    out: dict[str, Any] = {}
    for p in parameters:
        if p.name not in values:
            continue
        text = values[p.name]
        if p.type == "categorical":
            out[p.name] = text
            continue
        number = float(text)
        dist = distribution(p)
        assert isinstance(dist, IntDistribution | FloatDistribution)
        number = min(max(number, dist.low), dist.high)  # a value edited by hand still fits its range
        out[p.name] = int(round(number)) if p.type == "int" else number
    return out
