"""How a pod reaches the job's object store: the URI, the endpoint and the keys from its environment.

Kept free of torch: the start-up check (`ludus_trainer.storecheck`) runs as an init container and should
take a second, not the time torch takes to import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

# Set (to s3://bucket/prefix) when the job's checkpoints live in object storage (spec.checkpoint.uri).
ENV_CHECKPOINT_URI: Final = "LUDUS_CHECKPOINT_URI"
# The environment a pod gets from the job's checkpoint Secret (keys documented in the README).
ENDPOINT_ENV = "LUDUS_S3_ENDPOINT"


def storage_options(uri: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """How to reach the store behind `uri`: for s3://, the endpoint (an S3-compatible server) and the
    credentials from the environment (never from the spec); nothing for other schemes."""
    env = os.environ if env is None else env
    if not uri.startswith("s3://"):
        return {}
    options: dict[str, Any] = {"client_kwargs": {"region_name": env.get("AWS_REGION") or "us-east-1"}}
    if env.get(ENDPOINT_ENV):
        options["endpoint_url"] = env[ENDPOINT_ENV]
    if env.get("AWS_ACCESS_KEY_ID"):
        options["key"], options["secret"] = env["AWS_ACCESS_KEY_ID"], env.get("AWS_SECRET_ACCESS_KEY", "")
    return options
