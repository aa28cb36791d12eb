"""Kopf tuning: the diff base it would copy per event is never needed."""

from __future__ import annotations

import kopf

import ludus.handlers  # noqa: F401 - registers the handlers
from ludus.settings import NoDiffBaseStorage, tune_kopf


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
