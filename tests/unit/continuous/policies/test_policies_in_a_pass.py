"""The pass's other policies, each on its own: ended runs decided in order, a promotion by hand,
triggers, concurrency and history limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ludus.api import constants as c
from ludus.api.continuous import Champion, ContinuousTraining
from ludus.api.models import TrainingJob
from ludus.continuous.policies.concurrency import replace_older_runs, start_runs
from ludus.continuous.policies.history import expired_runs
from ludus.continuous.policies.promotion import decide_ended_runs, promote_by_hand
from ludus.continuous.policies.triggers import read_triggers
from ludus.continuous.state import Observed
from tests.unit.continuous.factories import T0, ct_body, make_pass, run_job

S, F, R = c.PHASE_SUCCEEDED, c.PHASE_FAILED, c.PHASE_RUNNING


def _champion(job: str, accuracy: float) -> Champion:
    return Champion(job=job, claim_name="models", model_path="fresh/champion", source_path=f"fresh/runs/{job}/model",
                    evaluation={"accuracy": accuracy}, promoted_at=T0, reason=c.CT_REASON_FIRST_CHAMPION)


@pytest.mark.parametrize(("runs", "champion", "publishing", "reasons"), [
    ({0: (S, {"accuracy": 0.9})}, None, "fresh-0", {0: c.CT_REASON_PUBLISHING}),
    ({0: (S, {"accuracy": 0.9}), 1: (S, {"accuracy": 0.95})}, None, "fresh-0",
     {0: c.CT_REASON_PUBLISHING, 1: ""}),
    ({1: (S, {"accuracy": 0.805})}, 0.8, None, {1: c.CT_REASON_NOT_BETTER}),
    ({1: (F, {})}, 0.8, None, {1: c.CT_REASON_RUN_FAILED}),
    ({1: (R, {})}, 0.8, None, {1: ""}),
], ids=["the first evaluated run is published", "one publication at a time: the next waits",
        "no better by minImprovement: rejected", "a failed run is recorded, never promoted", "a running run waits"])
def test_ended_runs_are_decided_in_order(runs: dict[int, tuple[str, dict[str, float]]], champion: float | None,
                                         publishing: str | None, reasons: dict[int, str]) -> None:
    s = make_pass(runs)
    s.champion = _champion("fresh-0", champion) if champion is not None else None
    decide_ended_runs(s)
    assert (s.publishing.job if s.publishing else None) == publishing
    assert {n: s.records[n].reason for n in runs} == reasons


@pytest.mark.parametrize(("request_", "champion", "publishing", "refused"), [
    ("fresh-0@1", "fresh-1", "fresh-0", False),
    ("fresh-1@1", "fresh-1", None, True),
    ("fresh-2@1", "fresh-1", None, True),
    ("fresh-7@1", "fresh-1", None, True),
], ids=["a rollback to an older succeeded run is published", "the champion itself: refused",
        "a failed run: refused", "no such run: refused"])
def test_a_promotion_by_hand(request_: str, champion: str, publishing: str | None, refused: bool) -> None:
    s = make_pass({0: (S, {"accuracy": 0.8}), 1: (S, {"accuracy": 0.9}), 2: (F, {})},
                  decided={0: False, 1: True, 2: False}, annotations={c.ANNOTATION_PROMOTE: request_})
    s.champion = _champion(champion, 0.9)
    promote_by_hand(s)
    assert (s.publishing.job if s.publishing else None) == publishing
    assert s.handled_promote == request_
    assert any(reason == c.CT_REASON_PROMOTE_REFUSED for _, reason, _ in s.plan.events) is refused
    promote_by_hand(s)  # the same request again: handled once
    assert len(s.plan.events) == (1 if refused else 0) and len(s.plan.create) == (0 if refused else 1)


def _ct(annotations: dict[str, str] | None = None, status: dict[str, Any] | None = None,
        **spec: Any) -> ContinuousTraining:
    body = ct_body("fresh", annotations, **spec)
    if status:
        body["status"] = status
    return ContinuousTraining.model_validate(body)


@pytest.mark.parametrize(("ct", "jobs", "observed", "fired"), [
    (_ct(), [], Observed(), ()),
    (_ct(schedule="*/5 * * * *"), [], Observed(), ("Schedule",)),
    (_ct(annotations={c.ANNOTATION_DATA_VERSION: "v2"}), [], Observed(), ("DataVersion",)),
    (_ct(annotations={c.ANNOTATION_DATA_VERSION: "v2"}),
     [run_job("fresh", 0, R, annotations={c.ANNOTATION_DATA_VERSION: "v2"})],
     Observed(), ()),
    (_ct(annotations={c.ANNOTATION_RETRAIN: "r1", c.ANNOTATION_DATA_VERSION: "v3"}, schedule="*/5 * * * *"), [],
     Observed(), ("Manual", "DataVersion", "Schedule")),
    (_ct(status={"handledRetrain": "r1"}, annotations={c.ANNOTATION_RETRAIN: "r1"}), [], Observed(), ()),
], ids=["nothing asked", "the schedule fired", "a new data version", "a data version a run already trained on",
        "all three, a retrain request first", "a retrain request already handled"])
def test_triggers_fire_once_each(ct: ContinuousTraining, jobs: list[TrainingJob], observed: Observed,
                                 fired: tuple[str, ...]) -> None:
    assert read_triggers(ct, jobs, observed, T0 + timedelta(minutes=6)).fired == fired


@pytest.mark.parametrize(("policy", "active_after", "replaced", "started"), [
    ("Forbid", ["fresh-0", "fresh-1"], [], False),
    ("Replace", ["fresh-2"], ["fresh-0", "fresh-1"], True),
], ids=["Forbid skips the firing and keeps the runs", "Replace keeps the newest, then replaces it for the trigger"])
def test_concurrency_policies(policy: str, active_after: list[str], replaced: list[str], started: bool) -> None:
    s = make_pass({0: (R, {}), 1: (R, {})}, concurrencyPolicy=policy, schedule="*/5 * * * *")
    replace_older_runs(s)
    triggers = read_triggers(s.ct, list(s.by_number.values()), Observed(), T0 + timedelta(minutes=6))
    start_runs(s, triggers)
    assert [r.name for r in s.active] == active_after
    assert s.plan.delete_runs == replaced
    assert bool(s.plan.started) is started
    if policy == "Forbid":
        assert [reason for _, reason, _ in s.plan.events] == [c.CT_REASON_SKIPPED]


def test_a_suspended_resource_starts_nothing_and_records_the_firing_as_missed() -> None:
    s = make_pass(suspend=True, schedule="*/5 * * * *")
    triggers = read_triggers(s.ct, [], Observed(), T0 + timedelta(minutes=6))
    assert start_runs(s, triggers) == triggers.fire and not s.plan.create


@pytest.mark.parametrize(("runs", "decided", "champion", "expired"), [
    ({n: (S, {}) for n in range(5)}, {n: False for n in range(5)}, None, ["fresh-1", "fresh-0"]),
    ({n: (S, {}) for n in range(5)}, {n: False for n in range(5)}, "fresh-0", ["fresh-1"]),
    ({n: (F, {}) for n in range(3)}, {n: False for n in range(3)}, None, ["fresh-0"]),
    ({n: (S, {}) for n in range(5)}, {}, None, []),
], ids=["the newest successful runs are kept", "the champion's run is kept always",
        "failed runs go by their own limit", "an undecided run is never deleted"])
def test_history_limits(runs: dict[int, tuple[str, dict[str, float]]], decided: dict[int, bool], champion: str | None,
                        expired: list[str]) -> None:
    s = make_pass(runs, decided, successfulRunsHistoryLimit=3, failedRunsHistoryLimit=2)
    s.champion = _champion(champion, 0.9) if champion else None
    assert expired_runs(s) == expired
