"""orjson for the watch streams Kopf decodes and for our own requests.

Kopf parses every watch event with the standard library's `json`: a quarter of
the operator's CPU under a burst of pods (pod bodies are kilobytes, with
managedFields). orjson turns the same text into the same dicts and lists
several times faster. Kopf has no hook for its decoder, so the name `json` in
its API client module is pointed at a shim whose `loads` is orjson's; the
patch applies only where that module still uses the standard library's json,
and a unit test fails if a Kopf upgrade moves it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

loads = orjson.loads


def dumps(value: Any) -> bytes:
    """Compact JSON as bytes (what aiohttp sends as a request body)."""
    return orjson.dumps(value)


class _KopfJson:
    """Stands in for the `json` module inside Kopf's API client: orjson's loads, the rest stdlib."""

    loads = staticmethod(loads)

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)


def speed_up_kopf() -> bool:
    """Make Kopf's watch streams decode with orjson; False if this Kopf no longer looks as expected."""
    from kopf._cogs.clients import api

    current = getattr(api, "json", None)
    if isinstance(current, _KopfJson):
        return True
    if current is not json:
        return False
    api.json = _KopfJson()  # type: ignore[attr-defined, assignment]
    return True
