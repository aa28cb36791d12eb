"""The status write of resources that own jobs: a merge patch that removes what the new status lacks."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ludus.controller.owner import merge_patch

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=10)
# Merge patches cannot write a null value (null means remove): statuses leave None fields out.
DOCUMENT = st.dictionaries(st.text(max_size=3), JSON.filter(lambda v: v is not None), max_size=4)


def apply(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply(result.get(key), value)
    return result


def _no_nulls(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and _no_nulls(v) for v in value.values())
    return True


def test_a_finished_publication_is_removed_not_left_behind() -> None:
    old = {"phase": "Publishing", "publishing": {"job": "ct-0"}, "champion": {"job": "a", "sha256": "x"}}
    new = {"phase": "Waiting", "champion": {"job": "ct-0"}}
    patch = merge_patch(old, new)
    assert patch["publishing"] is None and patch["champion"]["sha256"] is None
    assert apply(old, patch) == new


@given(DOCUMENT, DOCUMENT)
def test_applying_the_patch_to_the_old_status_gives_the_new_one(old: dict[str, Any], new: dict[str, Any]) -> None:
    if _no_nulls(new):
        assert apply(old, merge_patch(old, new)) == new
