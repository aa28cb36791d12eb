"""A Sweep trial's parameters in the trainer: the API call and the built-in workloads' options."""

from __future__ import annotations

import json

import pytest

from ludus_trainer import api, cli, trial
from ludus_trainer.env import ENV_TRIAL_PARAMETERS


def test_parameters_come_back_typed_and_empty_outside_a_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TRIAL_PARAMETERS, raising=False)
    assert api.parameters() == {}
    monkeypatch.setenv(ENV_TRIAL_PARAMETERS, json.dumps({"lr": "0.01", "width": "128", "act": "relu"}))
    assert api.parameters() == {"lr": 0.01, "width": 128, "act": "relu"}
    assert trial.parameters({ENV_TRIAL_PARAMETERS: "not json"}) == {}


def test_a_trials_values_set_the_digits_options_and_explicit_flags_still_win() -> None:
    parser = cli._parser()
    parser.set_defaults(**trial.option_defaults({"lr": 0.02, "width": 64, "batch_size": 16, "act": "relu"}))
    args, _ = parser.parse_known_args([])
    assert (args.lr, args.hidden, args.batch_size) == (0.02, 64, 16)
    args, _ = parser.parse_known_args(["--lr", "0.5"])
    assert args.lr == 0.5 and args.hidden == 64
