"""orjson for the operator's own API traffic: the pod watch and our requests' bodies and responses.

Pod bodies are kilobytes (managedFields included) and the pod watch is the busiest
stream the operator reads; orjson turns the same text into the same dicts several
times faster than the standard library. Kopf's own stream (TrainingJobs only, a
few small events per job) keeps Kopf's decoder: patching its private API module
was measured to gain nothing once pods left Kopf (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

import orjson

loads = orjson.loads


def dumps(value: Any) -> bytes:
    """Compact JSON as bytes (what aiohttp sends as a request body)."""
    return orjson.dumps(value)
