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
                 "ENV_CHECKPOINT_INTERVAL", "ENV_METRICS_PORT"):
        assert getattr(operator_side, name) == getattr(trainer_side, name), name
