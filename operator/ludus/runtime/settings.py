"""The one place Kopf and the garbage collector are tuned (the settings themselves: `ludus.settings`)."""

from __future__ import annotations

import gc
import logging
from typing import Any, Final

import kopf

from ludus.api import constants as c
from ludus.runtime.peering import PEERING_LIFETIME_SECONDS


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """Kopf builds a diff base for every watch event by deep-copying the whole body (status and
    managedFields included) - about a fifth of the operator's CPU under a burst of pods. Only
    on.create/update/delete handlers read it, and Ludus has none (level-based reconcile from
    on.event; tests/unit/test_settings.py keeps it that way), so this storage keeps nothing."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def tune_kopf(settings: kopf.OperatorSettings) -> None:
    """Kopf settings chosen for scale (see shared research): few writes, bounded waits."""
    # Kopf's own INFO messages would be posted as Events: two extra writes per object.
    settings.posting.level = logging.WARNING
    # Storage under our own prefix from the first release; switching later re-runs handlers.
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
    settings.persistence.diffbase_storage = NoDiffBaseStorage()
    # Watches behind load balancers can stall silently; reconnect instead of waiting forever.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 30
    # A killed replica's peering entry expires this soon, so a standby takes over within it.
    settings.peering.lifetime = PEERING_LIFETIME_SECONDS


# Allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD: Final = 50_000


def tune_gc() -> None:
    """Collect reference cycles less often, and never rescan what start-up loaded.

    Every watch event allocates hundreds of dicts and lists that live until Kopf has
    handled it. At CPython's default threshold a young collection ran every few events
    and a full one whenever the long-lived heap (Kopf's per-object state, the indexes)
    grew by a quarter: under a burst of pods, 9 of the operator's 13 CPU seconds
    (docs/benchmarks.md). At this threshold collections are rarer and each stays short
    (tens of milliseconds); the operator makes few cycles, so memory barely moves.
    """
    gc.collect()
    gc.freeze()  # modules and start-up objects move to a generation that is never scanned
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
