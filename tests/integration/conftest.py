"""Integration tests run on a real API server (the built-in control plane by default)."""

from __future__ import annotations

import pytest

from tests.fixtures import cluster, k, namespace, operator  # noqa: F401 - fixtures


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.integration)
