"""A promotion in flight ends with its publish pod: crowned, refused with the pod's words, or waited for."""

from __future__ import annotations

from typing import Any

import pytest

from ludus.api import constants as c
from ludus.api.continuous import Champion, ChampionHistory, Publishing
from ludus.continuous.policies.publication import finish_publication
from ludus.continuous.publish import publish_pod_name
from tests.unit.continuous.factories import T0, make_pass

OLD = Champion(job="fresh-0", claim_name="models", model_path="fresh/champion", source_path="fresh/runs/fresh-0/model",
               evaluation={"accuracy": 0.8}, promoted_at=T0, reason=c.CT_REASON_FIRST_CHAMPION)


def _pod(phase: str | None, message: str = "") -> dict[str, Any]:
    pod: dict[str, Any] = {"metadata": {"name": publish_pod_name("fresh", 1)}}
    if phase is not None:
        pod["status"] = {"phase": phase, "containerStatuses": [{"state": {"terminated": {"message": message}}}]}
    return pod


@pytest.mark.parametrize(("pods", "champion", "promoted", "created", "deleted", "events"), [
    ([], "fresh-0", None, 1, [], []),
    ([_pod("Running")], "fresh-0", None, 0, [], []),
    ([_pod("Succeeded", '{"sha256":"abc","step":9}')], "fresh-1", True, 0, ["fresh-publish-1"],
     [c.CT_REASON_PROMOTED]),
    ([_pod("Failed", '{"error":"no model"}')], "fresh-0", False, 0, ["fresh-publish-1"], [c.CT_REASON_PUBLISH_FAILED]),
], ids=["its pod is missing (a restart after the decision): created again", "its pod runs: nothing yet",
        "its pod succeeded: the run is the champion and the old one retired",
        "its pod failed: the champion stays and the run is refused with the pod's words"])
def test_a_publication_ends_with_its_pod(pods: list[dict[str, Any]], champion: str, promoted: bool | None,
                                         created: int, deleted: list[str], events: list[str]) -> None:
    s = make_pass({0: (c.PHASE_SUCCEEDED, {"accuracy": 0.8}), 1: (c.PHASE_SUCCEEDED, {"accuracy": 0.9})},
                  decided={0: True})
    s.champion, s.champions = OLD, [ChampionHistory(job="fresh-0", promoted_at=T0, reason=OLD.reason)]
    s.publishing = Publishing(job="fresh-1", reason=c.CT_REASON_BETTER, message="better", started_at=T0,
                              evaluation={"accuracy": 0.9})
    finish_publication(s, pods)
    assert s.champion is not None and s.champion.job == champion
    assert s.records[1].promoted is promoted
    assert len(s.plan.create) == created and s.plan.delete_pods == deleted
    assert [reason for _, reason, _ in s.plan.events] == events
    assert (s.publishing is None) == bool(deleted)
    if promoted:
        assert s.champion.sha256 == "abc" and s.champions[0].retired_at == T0 and s.promotions == 1
    if promoted is False:
        assert "no model" in s.records[1].message and s.rejections == 1


def test_a_publication_of_a_run_without_a_record_is_dropped_with_a_warning() -> None:
    s = make_pass()
    s.publishing = Publishing(job="fresh-9", reason=c.CT_REASON_BETTER, message="", started_at=T0)
    finish_publication(s, [])
    assert s.publishing is None and s.plan.events[0][:2] == ("Warning", c.CT_REASON_PUBLISH_FAILED)
