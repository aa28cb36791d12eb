"""The Python SDK: TrainingJobs from Python, on the official `kubernetes` client.

    from ludus.sdk import LudusClient
    client = LudusClient(namespace="team-a")
    job = client.train("train.py", replicas=2, nproc=2)
    final = client.wait(job.metadata.name)
    print(final.status.phase, final.status.evaluation)

The operator never imports this package (it keeps its own measured client).
"""

from ludus.sdk.client import LudusClient
from ludus.sdk.errors import (
    Invalid,
    LudusError,
    NotFound,
    NotInstalled,
    PermissionDenied,
    TooLarge,
    Unreachable,
    WaitTimeout,
)

__all__ = [
    "Invalid",
    "LudusClient",
    "LudusError",
    "NotFound",
    "NotInstalled",
    "PermissionDenied",
    "TooLarge",
    "Unreachable",
    "WaitTimeout",
]
