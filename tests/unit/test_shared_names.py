"""The operator and the trainer image agree on the environment they share.

The trainer image does not install the operator package, so each side spells the names itself;
this test keeps the two spellings identical.
"""

from __future__ import annotations

from ludus.api import constants as operator_side
from ludus_trainer import env as trainer_side


def test_environment_names_match() -> None:
    shared = [name for name in dir(trainer_side) if name.startswith("ENV_")]
    for name in shared:
        if hasattr(operator_side, name):
            assert getattr(operator_side, name) == getattr(trainer_side, name), name
    for name in ("ENV_JOB_NAME", "ENV_JOB_NAMESPACE", "ENV_REPLICA_INDEX", "ENV_CHECKPOINT_DIR",
                 "ENV_CHECKPOINT_INTERVAL", "ENV_METRICS_PORT", "ENV_TRIAL_PARAMETERS",
                 "ENV_TRIAL_PARAMETER_PREFIX"):
        assert getattr(operator_side, name) == getattr(trainer_side, name), name


def test_both_sides_agree_which_direction_is_better() -> None:
    """The trainer keeps a metric's best value and the operator merges bests by the same rule."""
    from ludus.api.models import Objective as OperatorObjective
    from ludus.trainingjob import objective as operator_objective
    from ludus_trainer import evaluation as trainer_evaluation

    metrics = ["accuracy", "f1", "eval_loss", "loss", "error_rate", "perplexity", "bleu"]
    for metric, goal in [("accuracy", "maximize"), ("loss", "minimize"), ("perplexity", "minimize")]:
        for name in metrics:
            trainer = trainer_evaluation._minimized(name, trainer_evaluation.Objective(metric, goal))
            operator = operator_objective.minimized(name, OperatorObjective(metric=metric, goal=goal))
            assert trainer == operator, (name, metric, goal)
