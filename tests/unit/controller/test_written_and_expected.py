"""Read-your-writes over Kopf's lagging index, and created pods the watch has not shown yet."""

from __future__ import annotations

from ludus.controller.expectations import Expectations
from ludus.controller.written import WrittenStatus

KEY = ("team-a", "digits")


def _body(rv: str, phase: str) -> dict:
    return {"metadata": {"uid": "u1", "resourceVersion": rv}, "status": {"phase": phase}}


def test_our_newer_write_shows_over_the_lagging_index() -> None:
    written = WrittenStatus()
    written.remember("u1", {"metadata": {"resourceVersion": "12"}, "status": {"phase": "Running"}})
    seen = written.current(_body("10", "Pending"))
    assert seen["status"] == {"phase": "Running"} and seen["metadata"]["resourceVersion"] == "12"


def test_once_the_index_catches_up_it_wins() -> None:
    written = WrittenStatus()
    written.remember("u1", {"metadata": {"resourceVersion": "12"}, "status": {"phase": "Running"}})
    later = _body("15", "Restarting")  # someone wrote after us: the index is the truth now
    assert written.current(later) is later
    written.forget("u1")
    assert written.current(_body("11", "Pending"))["status"] == {"phase": "Pending"}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_created_pod_counts_as_existing_until_seen_or_expired() -> None:
    clock = Clock()
    expectations = Expectations(ttl=30, clock=clock)
    expectations.created(KEY, "digits-worker-0")
    expectations.created(KEY, "digits-worker-1")
    assert expectations.pending(KEY, []) == {"digits-worker-0", "digits-worker-1"}
    expectations.observed(KEY, "digits-worker-0")  # its watch event arrived
    assert expectations.pending(KEY, []) == {"digits-worker-1"}
    clock.now = 31  # the event never came: stop trusting the expectation
    assert expectations.pending(KEY, []) == frozenset()


def test_a_pod_in_the_listing_meets_its_expectation() -> None:
    expectations = Expectations(clock=Clock())
    expectations.created(KEY, "digits-rdzv")
    assert expectations.pending(KEY, ["digits-rdzv"]) == frozenset()
    expectations.created(KEY, "digits-rdzv")
    expectations.forget(KEY)
    assert expectations.pending(KEY, []) == frozenset()


def test_an_owner_sees_the_child_it_created_until_the_index_shows_it_or_it_expires() -> None:
    clock = Clock()
    expectations = Expectations(ttl=30, clock=clock)
    trial = {"metadata": {"name": "search-0"}}
    expectations.created(KEY, "search-0", trial)
    expectations.created(KEY, "search-1", {"metadata": {"name": "search-1"}})
    assert expectations.pending_bodies(KEY, []) == [trial, {"metadata": {"name": "search-1"}}]
    assert expectations.pending_bodies(KEY, ["search-1"]) == [trial]  # the index shows it: its own body is used
    expectations.observed(KEY, "search-0")  # deleted here
    assert expectations.pending_bodies(KEY, []) == []
    expectations.created(KEY, "search-2", {"metadata": {"name": "search-2"}})
    clock.now = 31
    assert expectations.pending_bodies(KEY, []) == []
