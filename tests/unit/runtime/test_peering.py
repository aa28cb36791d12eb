"""Which replica acts, from the KopfPeering status, by Kopf's own rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ludus.runtime.peering import is_active, peering_path

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _peer(priority: int, seen_ago: float, lifetime: int = 15) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat()}


def test_alone_or_with_lower_peers_this_replica_acts() -> None:
    assert is_active({}, "me", 10, NOW)
    assert is_active({"me": _peer(10, 1)}, "me", 10, NOW)
    assert is_active({"me": _peer(10, 1), "other": _peer(5, 1)}, "me", 10, NOW)


def test_a_live_higher_or_equal_peer_makes_this_replica_stand_by() -> None:
    assert not is_active({"other": _peer(20, 3)}, "me", 10, NOW)
    assert not is_active({"other": _peer(10, 3)}, "me", 10, NOW)  # Kopf pauses both on a tie


def test_a_peer_not_seen_for_its_lifetime_is_dead() -> None:
    assert is_active({"other": _peer(20, 16)}, "me", 10, NOW)
    assert is_active({"other": _peer(20, 15)}, "me", 10, NOW)
    assert not is_active({"other": _peer(20, 14)}, "me", 10, NOW)
    # A peer that left cleanly sets its lifetime to 0.
    assert is_active({"other": _peer(20, 0, lifetime=0)}, "me", 10, NOW)


def test_the_peering_object_is_cluster_wide_or_per_namespace() -> None:
    assert peering_path("ludus", None) == "/apis/kopf.dev/v1/clusterkopfpeerings/ludus"
    assert peering_path("ludus", "team-a") == "/apis/kopf.dev/v1/namespaces/team-a/kopfpeerings/ludus"
