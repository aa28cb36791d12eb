"""Which replica is active when several run with Kopf peering.

Kopf pauses its own watches when a live peer with a higher (or equal) priority
shows up in the KopfPeering object; our reconcile workers and progress poller
run outside Kopf's handlers (delayed requeues, retries), so they follow the
same rule from the same object. A killed replica stops renewing its entry and
counts as dead `lifetime` seconds after it was last seen; the standby then
resumes, which is what bounds the hand-over time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import logging
import os
import random
import socket
import string
from collections.abc import Mapping
from typing import Any, Final

from ludus.runtime.kube import ApiError, KubeClient, namespaced, segment

logger = logging.getLogger("ludus.peering")

# How long a peer's keep-alive counts; Kopf renews it 5-10 s before it runs out.
PEERING_LIFETIME_SECONDS: Final = 15
FOLLOW_INTERVAL_SECONDS: Final = 1.0


def own_identity() -> str:
    """Kopf's format (POD_ID in a pod), fixed up front so that Kopf and our gate agree on who we are."""
    pod = os.environ.get("POD_ID")
    if pod:
        return pod
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=3))
    return f"{getpass.getuser()}@{socket.gethostname()}/{stamp}/{suffix}"


def _parse(value: Any) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def is_active(peers: Mapping[str, Any], identity: str, priority: int, now: dt.datetime) -> bool:
    """Kopf's rule: pause while any live peer has a priority at least ours."""
    for peer, info in peers.items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        seen = _parse(info.get("lastseen"))
        lifetime = int(info.get("lifetime", 60))
        if seen is None or seen + dt.timedelta(seconds=lifetime) <= now:
            continue  # dead: Kopf ignores it too
        if int(info.get("priority", 0)) >= priority:
            return False
    return True


def peering_path(name: str, namespace: str | None) -> str:
    if namespace is None:
        return f"/apis/kopf.dev/v1/clusterkopfpeerings/{segment(name)}"
    return namespaced(namespace, "kopfpeerings", name, api="/apis/kopf.dev/v1")


async def follow(
    client: KubeClient, path: str, identity: str, priority: int, active: asyncio.Event,
    interval: float = FOLLOW_INTERVAL_SECONDS,
) -> None:
    """Keep `active` set exactly while this replica is the one that should act."""
    while True:
        body: dict[str, Any] | None
        try:
            body = await client.request("GET", path)
        except ApiError as err:
            # No peering object: Kopf runs unpaused too. Other errors: keep the last decision.
            body = {} if err.status == 404 else None
        except (TimeoutError, OSError):
            body = None
        if body is not None:
            now = dt.datetime.now(dt.UTC)
            if is_active(body.get("status") or {}, identity, priority, now):
                if not active.is_set():
                    logger.info("this replica is now the active one (%s)", identity)
                    active.set()
            elif active.is_set():
                logger.info("another replica is active; standing by (%s)", identity)
                active.clear()
        await asyncio.sleep(interval)
