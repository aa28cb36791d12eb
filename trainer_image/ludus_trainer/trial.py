"""A Sweep trial's parameters, as the operator hands them over (LUDUS_TRIAL_PARAMETERS, JSON).

Values arrive as text; numbers come back as numbers ("32" -> 32, "0.01" -> 0.01), anything else
as text. Outside a sweep there are none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ludus_trainer.env import ENV_TRIAL_PARAMETERS

# Parameter names the built-in workloads read, and the option each sets (aliases included).
BUILT_IN_OPTIONS: dict[str, str] = {
    "lr": "lr", "learning_rate": "lr",
    "width": "hidden", "hidden": "hidden",
    "batch_size": "batch_size",
    "epochs": "epochs",
    "seed": "seed",
}


def _typed(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parameters(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """This trial's values by parameter name; {} outside a sweep (or if the variable is garbled)."""
    raw = (os.environ if environ is None else environ).get(ENV_TRIAL_PARAMETERS, "")
    try:
        values = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): _typed(str(v)) for k, v in values.items()} if isinstance(values, dict) else {}


def option_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """The built-in workloads' options a trial's values set (its own flags on the command line still win)."""
    return {BUILT_IN_OPTIONS[name]: value for name, value in values.items() if name in BUILT_IN_OPTIONS}
