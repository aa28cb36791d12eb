"""Kopf tuning: the diff base it would copy per event is never needed."""

from __future__ import annotations

import kopf

import ludus.handlers  # noqa: F401 - registers the handlers
from ludus.runtime.settings import NoDiffBaseStorage, tune_kopf


def test_no_handler_needs_a_diff_base() -> None:
    """NoDiffBaseStorage is only right while no on.create/update/delete/resume handler exists."""
    registry = kopf.get_default_registry()
    changing = list(registry._changing.get_all_handlers())
    assert changing == [], "a change-detecting handler needs Kopf's diff base: drop NoDiffBaseStorage"


def test_the_diff_base_costs_nothing() -> None:
    settings = kopf.OperatorSettings()
    tune_kopf(settings)
    storage = settings.persistence.diffbase_storage
    assert isinstance(storage, NoDiffBaseStorage)
    body = kopf.Body({"metadata": {"name": "x"}, "spec": {"replicas": 4}, "status": {"phase": "Running"}})
    assert storage.build(body=body) == {} and storage.fetch(body=body) is None
    assert settings.posting.level >= 30  # Kopf's INFO lines are not posted as Events


def test_gc_runs_rarely_and_skips_start_up_objects() -> None:
    import gc

    from ludus.runtime.settings import GC_YOUNG_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD and gc.isenabled()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
