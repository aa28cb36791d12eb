"""Every operator flag's default is the one in `ludus.settings`, under the same name."""

from __future__ import annotations

import dataclasses

from ludus.cli import _parser, operator_settings
from ludus.settings import DEFAULTS, OperatorSettings


def test_the_flags_parse_to_the_defaults_of_the_settings() -> None:
    args = _parser().parse_args(["operator"])
    parsed = operator_settings(args)
    for field in dataclasses.fields(OperatorSettings):
        if field.name == "identity":  # the pod's own name, never a default
            continue
        assert getattr(parsed, field.name) == getattr(DEFAULTS, field.name), field.name


def test_each_setting_is_its_flag_under_the_same_name() -> None:
    flags = {action.dest for action in _parser()._subparsers._group_actions[0].choices["operator"]._actions}  # type: ignore[union-attr]
    for field in dataclasses.fields(OperatorSettings):
        if field.name in ("namespaces", "identity"):  # -n/--namespace (repeatable) and the pod's name
            continue
        assert field.name in flags, field.name
