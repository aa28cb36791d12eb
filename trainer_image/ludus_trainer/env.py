"""Environment names shared with the operator (ludus.api.constants says the same)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ENV_JOB_NAME: Final = "LUDUS_JOB_NAME"
ENV_JOB_NAMESPACE: Final = "LUDUS_JOB_NAMESPACE"
ENV_REPLICA_INDEX: Final = "LUDUS_REPLICA_INDEX"
ENV_CHECKPOINT_DIR: Final = "LUDUS_CHECKPOINT_DIR"
ENV_CHECKPOINT_INTERVAL: Final = "LUDUS_CHECKPOINT_INTERVAL"
ENV_METRICS_PORT: Final = "LUDUS_METRICS_PORT"
ENV_PROGRESS_FILE: Final = "LUDUS_PROGRESS_FILE"
ENV_OBJECTIVE: Final = "LUDUS_OBJECTIVE"  # "<metric>:<goal>" when spec.objective is set
ENV_TRIAL_PARAMETERS: Final = "LUDUS_TRIAL_PARAMETERS"  # a Sweep trial's values, as JSON
ENV_TRIAL_PARAMETER_PREFIX: Final = "LUDUS_PARAM_"  # and each on its own: LUDUS_PARAM_<NAME>
ENV_INIT_FROM: Final = "LUDUS_INIT_FROM"  # a model to start from (transfer learning): a path
ENV_INIT_STRICT: Final = "LUDUS_INIT_STRICT"  # "false": load what fits, re-initialise the rest
ENV_INIT_FREEZE: Final = "LUDUS_INIT_FREEZE"  # module prefixes to keep fixed, comma-separated
ENV_TERMINATION_LOG: Final = "LUDUS_TERMINATION_LOG"  # where the evaluation is left for the operator
# The experiment tracker (spec.tracking; ludus_trainer.tracking): MLflow's own variable for the server.
ENV_TRACKING_URI: Final = "MLFLOW_TRACKING_URI"
ENV_EXPERIMENT: Final = "LUDUS_TRACKING_EXPERIMENT"
ENV_JOB_UID: Final = "LUDUS_JOB_UID"
ENV_PARENT: Final = "LUDUS_TRACKING_PARENT"  # "<kind>:<namespace>/<name>": the run's parent (a Sweep)
ENV_IMAGE: Final = "LUDUS_IMAGE"
# A ContinuousTraining's run: its exported model becomes a version of this registered model.
ENV_REGISTERED_MODEL: Final = "LUDUS_TRACKING_REGISTERED_MODEL"


@dataclass(frozen=True)
class InitSettings:
    """spec.init as the operator hands it to every worker: the model to start from, strict, frozen prefixes."""

    source: Path | None
    strict: bool = True
    freeze: tuple[str, ...] = ()
    uri: str | None = None  # a model in object storage (s3://...), downloaded before it is loaded

    @classmethod
    def from_environ(cls) -> InitSettings:
        env = os.environ
        value = env.get(ENV_INIT_FROM) or ""
        remote = value.startswith("s3://")
        return cls(Path(value) if value and not remote else None,
                   env.get(ENV_INIT_STRICT, "true").lower() != "false",
                   tuple(p for p in env.get(ENV_INIT_FREEZE, "").split(",") if p),
                   value if remote else None)


@dataclass(frozen=True)
class RunEnv:
    """Who this process is, from torchrun's variables and the operator's."""

    rank: int
    local_rank: int
    world_size: int
    restart_count: int
    job: str
    replica_index: int

    @classmethod
    def from_environ(cls) -> RunEnv:
        env = os.environ
        return cls(
            rank=int(env.get("RANK", 0)),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            world_size=int(env.get("WORLD_SIZE", 1)),
            restart_count=int(env.get("TORCHELASTIC_RESTART_COUNT", 0)),
            job=env.get(ENV_JOB_NAME, "local"),
            replica_index=int(env.get(ENV_REPLICA_INDEX, 0)),
        )
