"""Grid axes are counted before they are listed: a huge range is refused at once, never built."""

from __future__ import annotations

import tracemalloc

import pytest

from ludus.api.sweep import Parameter
from ludus.sweep.space import MAX_GRID, SpaceError, grid, grid_size


@pytest.mark.parametrize("parameter", [
    Parameter(name="n", type="int", min=0, max=4_000_000_000),
    Parameter(name="x", type="float", min=0.0, max=1.0, step=1e-9),
    Parameter(name="y", type="float", min=-1e308, max=1e308, step=1.0),  # the span overflows to inf
])
def test_a_grid_over_billions_of_values_is_refused_without_building_it(parameter: Parameter) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(SpaceError, match=f"more than {MAX_GRID}|must be a finite number"):
            grid([parameter])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes were allocated to refuse it"


def test_the_product_of_axes_is_checked_as_it_grows() -> None:
    axes = [Parameter(name=f"p{i}", type="int", min=1, max=100) for i in range(3)]
    with pytest.raises(SpaceError):
        grid_size(axes)  # 10^6 combinations
    assert grid_size(axes[:2]) == 10_000
    built = grid([Parameter(name="w", type="int", min=16, max=64, step=16),
                  Parameter(name="lr", type="float", min=0.1, max=0.3, step=0.1),
                  Parameter(name="opt", type="categorical", values=["sgd", "adam"])])
    assert built == {"w": [16, 32, 48, 64], "lr": [0.1, 0.2, 0.3], "opt": ["sgd", "adam"]}
