"""Read-your-writes: the status this operator last wrote, until the job watch catches up with it.

Kopf's job index lags our own status writes by a watch event. A pass that read
the older status would compute from it and its write would conflict; instead
the pass sees what was written, with the resourceVersion the write returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resource_version(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


class WrittenStatus:
    def __init__(self) -> None:
        self._written: dict[str, tuple[int, dict[str, Any]]] = {}

    def remember(self, uid: str, response: Mapping[str, Any]) -> None:
        """Keep the status and resourceVersion a status write returned."""
        rv = resource_version((response.get("metadata") or {}).get("resourceVersion"))
        self._written[uid] = (rv, dict(response.get("status") or {}))

    def current(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """The job as this operator knows it: the cached body, or our newer write over it."""
        meta = body["metadata"]
        written = self._written.get(str(meta.get("uid", "")))
        if written and written[0] > resource_version(meta.get("resourceVersion")):
            rv, status = written
            return {**body, "metadata": {**meta, "resourceVersion": str(rv)}, "status": status}
        return body

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)
