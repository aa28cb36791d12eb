"""ContinuousTraining's pure logic: the model's checks, the schedule, triggers, concurrency, promotion
through a publish pod, history limits, and a pass repeated as after an operator restart."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.continuous import ContinuousTraining
from ludus.continuous.publish import published
from ludus.continuous.reconcile import CTPlan, Observed, reconcile_continuous
from ludus.continuous.runs import run_number
from ludus.continuous.schedule import due, next_after
from ludus.trainingjob.child import read_children
from tests.unit.continuous.factories import T0, ct_body


class World:
    """The resource, its runs and publish pods as the API server would hold them between passes."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}

    def annotate(self, data: str | None = None, retrain: str | None = None, promote: str | None = None) -> None:
        """What a user (or `ludus retrain`/`ludus promote`) sets on the resource."""
        for key, value in ((c.ANNOTATION_DATA_VERSION, data), (c.ANNOTATION_RETRAIN, retrain),
                           (c.ANNOTATION_PROMOTE, promote)):
            if value is not None:
                self.body["metadata"]["annotations"][key] = value

    def step(self, now: datetime, observed: Observed | None = None, write: bool = True) -> CTPlan:
        ct = ContinuousTraining.model_validate(self.body)
        plan = reconcile_continuous(ct, read_children(self.jobs.values()), list(self.pods.values()),
                                    observed or Observed(), now)
        for manifest in plan.create:
            target = self.jobs if manifest["kind"] == c.KIND else self.pods
            target.setdefault(manifest["metadata"]["name"], copy.deepcopy(manifest))
        if write:
            self.body["status"] = plan.status.model_dump(by_alias=True, exclude_none=True, mode="json")
            for name in plan.delete_runs:
                self.jobs.pop(name, None)
            for name in plan.delete_pods:
                self.pods.pop(name, None)
        return plan

    def finish(self, run: str, phase: str = c.PHASE_SUCCEEDED, baseline: dict[str, float] | None = None,
               **metrics: float) -> None:
        self.jobs[run]["status"] = {"phase": phase, "evaluation": {
            "latest": {m: {"value": v, "step": 100} for m, v in metrics.items()},
            "baseline": {m: {"value": v, "step": 0} for m, v in (baseline or {}).items()}}}

    def run_pod(self, run: str, ok: bool = True, message: str = "") -> None:
        number = run_number(read_children([self.jobs[run]])[0]) if run in self.jobs else None
        pod = next(p for p in self.pods.values() if p["metadata"]["labels"][c.LABEL_PUBLISH] == run)
        assert number is None or pod["metadata"]["name"].endswith(f"-publish-{number}")
        pod["status"] = {"phase": "Succeeded" if ok else "Failed", "containerStatuses": [{"state": {"terminated": {
            "message": '{"sha256":"abc123","step":100}' if ok else (message or '{"error":"no model"}')}}}]}

    @property
    def status(self) -> dict[str, Any]:
        return self.body.get("status") or {}


def reasons(plan: CTPlan) -> list[str]:
    return [reason for _, reason, _ in plan.events]


# --- the model -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "words"), [
    ({"schedule": "61 * * * *"}, "not a cron schedule"),
    ({"schedule": "0 3 * * *", "timeZone": "Mars/Olympus"}, "not a time zone"),
    ({"timeZone": "UTC"}, "timeZone applies to a schedule"),
    ({"template": {"image": "x"}}, "set template.checkpoint.claimName or template.checkpoint.uri"),
    ({"promotion": {"thresholds": ["precision about 0.9"]}}, "is not a threshold"),
    ({"subPath": "a/../b"}, "subPath must stay inside the claim"),
])
def test_invalid_specs_name_what_is_wrong(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ContinuousTraining.model_validate(ct_body(**spec))


def test_schedule_fires_on_its_grid_in_its_time_zone_and_makes_up_one_missed_firing() -> None:
    # 03:00 in Paris is 02:00 UTC in winter.
    assert next_after("0 3 * * *", "Europe/Paris", T0) == datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    fire, nxt = due("*/5 * * * *", None, T0, T0 + timedelta(minutes=17))
    assert fire == T0 + timedelta(minutes=15) and nxt == T0 + timedelta(minutes=20)  # three missed: fires once
    assert due("*/5 * * * *", None, T0, T0 + timedelta(minutes=4)) == (None, T0 + timedelta(minutes=5))
    fire, _ = due("* * * * * */2", None, T0, T0 + timedelta(seconds=3))  # a seconds field, for tests
    assert fire == T0 + timedelta(seconds=2)


# --- triggers and runs -------------------------------------------------------------------------------------

def test_nothing_starts_without_a_trigger_and_the_schedule_requeues_for_its_next_firing() -> None:
    world = World(ct_body(schedule="*/10 * * * *"))
    plan = world.step(T0 + timedelta(minutes=3))
    assert not plan.create and world.status["phase"] == "Waiting"
    assert plan.requeue_after == pytest.approx(7 * 60)
    plan = world.step(T0 + timedelta(minutes=10, seconds=1))
    assert [j["metadata"]["name"] for j in plan.create] == ["fresh-0"]
    job = plan.create[0]
    assert job["metadata"]["annotations"][c.ANNOTATION_TRIGGER] == "Schedule"
    assert job["metadata"]["annotations"][c.ANNOTATION_SCHEDULED_TIME] == "2026-12-04T10:10:00Z"
    assert job["spec"]["checkpoint"]["subPath"] == "fresh/runs/fresh-0"
    assert "init" not in job["spec"]  # no champion yet: a fresh start
    assert job["spec"]["objective"] == {"metric": "accuracy", "goal": "maximize"}
    assert job["metadata"]["ownerReferences"][0]["kind"] == c.CT_KIND


def test_a_new_data_version_starts_one_run_and_the_same_version_never_another() -> None:
    world = World(ct_body())
    world.annotate(data="v1")
    plan = world.step(T0)
    assert len(plan.create) == 1 and reasons(plan) == [c.CT_REASON_RUN_STARTED]
    assert world.status["dataVersion"] == "v1"
    world.finish("fresh-0", accuracy=0.9)
    world.step(T0 + timedelta(seconds=5))
    assert not [j for j in world.step(T0 + timedelta(seconds=6)).create if j["kind"] == c.KIND]
    # A restarted operator whose status write was lost still sees v1 on the run itself.
    del world.body["status"]["dataVersion"]
    assert not [j for j in world.step(T0 + timedelta(seconds=7)).create if j["kind"] == c.KIND]


def test_data_version_from_a_config_map_and_a_missing_key_is_a_condition() -> None:
    world = World(ct_body(dataVersion={"configMapName": "data", "key": "version"}))
    plan = world.step(T0, Observed(data_error="ConfigMap data has no key 'version'"))
    assert not plan.create
    cond = next(x for x in world.status["conditions"] if x["type"] == "DataVersionAvailable")
    assert cond["status"] == "False" and "no key 'version'" in cond["message"]
    plan = world.step(T0, Observed(data_version="2026-12-01"))
    assert plan.create[0]["metadata"]["annotations"][c.ANNOTATION_DATA_VERSION] == "2026-12-01"


def test_forbid_skips_a_firing_while_a_run_is_active_and_a_data_version_waits_for_it() -> None:
    world = World(ct_body(schedule="*/10 * * * *"))
    world.annotate(retrain="r1")
    assert world.step(T0).create[0]["metadata"]["annotations"][c.ANNOTATION_TRIGGER] == "Manual"
    plan = world.step(T0 + timedelta(minutes=10, seconds=1))
    assert not plan.create and reasons(plan) == [c.CT_REASON_SKIPPED]
    world.annotate(data="v2")
    assert not world.step(T0 + timedelta(minutes=11)).create
    world.finish("fresh-0", accuracy=0.8)
    plan = world.step(T0 + timedelta(minutes=12))  # first, its model is published: the next run starts from it
    assert [m["kind"] for m in plan.create] == ["Pod"]
    world.run_pod("fresh-0")
    plan = world.step(T0 + timedelta(minutes=13))
    runs = [j for j in plan.create if j["kind"] == c.KIND]
    assert [j["metadata"]["name"] for j in runs] == ["fresh-1"]
    assert runs[0]["metadata"]["annotations"][c.ANNOTATION_TRIGGER] == "DataVersion"
    assert runs[0]["spec"]["init"]["path"] == "fresh/runs/fresh-0/model"


def test_replace_stops_the_active_run_and_a_restart_mid_replace_keeps_only_the_newest() -> None:
    world = World(ct_body(concurrencyPolicy="Replace"))
    world.annotate(data="v1")
    world.step(T0)
    world.annotate(data="v2")
    plan = world.step(T0 + timedelta(minutes=1))
    assert plan.delete_runs == ["fresh-0"] and [j["metadata"]["name"] for j in plan.create] == ["fresh-1"]
    assert c.CT_REASON_REPLACED in reasons(plan)
    record = next(r for r in world.status["runs"] if r["name"] == "fresh-0")
    assert record["phase"] == c.CT_PHASE_REPLACED and record["promoted"] is False
    # As if the operator died after creating fresh-2 but before deleting fresh-1 or writing the status.
    world.annotate(data="v3")
    world.step(T0 + timedelta(minutes=2), write=False)
    plan = world.step(T0 + timedelta(minutes=3))
    assert plan.delete_runs == ["fresh-1"] and not [j for j in plan.create if j["kind"] == c.KIND]
    assert world.status["active"] == ["fresh-2"]


# --- promotion -------------------------------------------------------------------------------------------

def test_first_run_is_published_then_champion_and_the_next_warm_starts_from_it() -> None:
    world = World(ct_body(promotion={"objective": {"metric": "accuracy", "goal": "maximize"},
                                     "thresholds": ["precision >= 0.9"]}))
    world.annotate(data="v1")
    world.step(T0)
    world.finish("fresh-0", accuracy=0.95, precision=0.93)
    plan = world.step(T0 + timedelta(minutes=1))
    pods = [m for m in plan.create if m["kind"] == "Pod"]
    assert [p["metadata"]["name"] for p in pods] == ["fresh-publish-0"]
    command = pods[0]["spec"]["containers"][0]["command"]
    assert command[-4:] == ["--run", "fresh-0", "--link", "champion"]
    assert pods[0]["spec"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": "models"}
    assert world.status["phase"] == "Publishing" and "champion" not in world.status
    world.run_pod("fresh-0")
    plan = world.step(T0 + timedelta(minutes=2))
    assert reasons(plan) == [c.CT_REASON_PROMOTED] and plan.delete_pods == ["fresh-publish-0"]
    assert plan.decisions == [("promoted", "FirstChampion")]
    champion = world.status["champion"]
    assert champion["job"] == "fresh-0" and champion["modelPath"] == "fresh/champion"
    assert champion["sha256"] == "abc123" and champion["evaluation"]["accuracy"] == 0.95
    assert world.status["championSummary"] == "fresh-0 accuracy 0.95"
    world.annotate(data="v2")
    run = next(j for j in world.step(T0 + timedelta(minutes=3)).create if j["kind"] == c.KIND)
    assert run["spec"]["init"] == {"claimName": "models", "path": "fresh/runs/fresh-0/model", "strict": True,
                                   "freeze": []}


def promoted_world() -> World:
    world = World(ct_body())
    world.annotate(data="v1")
    world.step(T0)
    world.finish("fresh-0", accuracy=0.95)
    world.step(T0 + timedelta(minutes=1))
    world.run_pod("fresh-0")
    world.step(T0 + timedelta(minutes=2))
    assert world.status["champion"]["job"] == "fresh-0"
    return world


@pytest.mark.parametrize(("metrics", "reason"), [
    ({"accuracy": 0.955}, "NotBetterEnough"),  # beats it, but by less than minImprovement 0.01
    ({"accuracy": 0.95}, "NotBetterEnough"),  # a tie
    ({"loss": 0.1}, "NotEvaluated"),  # never reported the objective
    ({"accuracy": 0.1}, "NotBetterEnough"),  # a bad challenger (a learning rate of 10)
])
def test_a_challenger_not_better_is_rejected_with_its_reason_and_the_champion_stays(
        metrics: dict[str, float], reason: str) -> None:
    world = promoted_world()
    world.annotate(data="v2")
    world.step(T0 + timedelta(minutes=3))
    world.finish("fresh-1", **metrics)
    plan = world.step(T0 + timedelta(minutes=4))
    assert reasons(plan) == [c.CT_REASON_REJECTED] and plan.decisions == [("rejected", reason)]
    assert not [m for m in plan.create if m["kind"] == "Pod"]
    record = next(r for r in world.status["runs"] if r["name"] == "fresh-1")
    assert record["promoted"] is False and record["reason"] == reason and record["message"]
    assert world.status["champion"]["job"] == "fresh-0" and world.status["rejections"] == 1


def test_a_better_challenger_replaces_the_champion_and_the_audit_trail_keeps_both() -> None:
    world = promoted_world()
    world.annotate(data="v2")
    world.step(T0 + timedelta(minutes=3))
    world.finish("fresh-1", accuracy=0.97)
    world.step(T0 + timedelta(minutes=4))
    world.run_pod("fresh-1")
    world.step(T0 + timedelta(minutes=5))
    assert world.status["champion"]["job"] == "fresh-1" and world.status["champion"]["reason"] == "BetterObjective"
    trail = world.status["champions"]
    assert [h["job"] for h in trail] == ["fresh-0", "fresh-1"]
    assert trail[0]["retiredAt"] and "retiredAt" not in trail[1]
    assert world.status["promotions"] == 2


@pytest.mark.parametrize(("final", "baseline", "decision", "words"), [
    # v2 is harder: the champion scores 0.85 on it. 0.90 is worse than its 0.95 on v1, better on the same data.
    (0.90, 0.85, "promoted", "beats the champion's on this run's data (its baseline) 0.85"),
    # v2 is easier: 0.97 beats the champion's 0.95 on v1, not its 0.99 on v2.
    (0.97, 0.99, "rejected", "against the champion's on this run's data (its baseline) 0.99"),
])
def test_a_run_is_compared_with_the_champion_on_its_own_data_its_baseline(
        final: float, baseline: float, decision: str, words: str) -> None:
    world = promoted_world()
    world.annotate(data="v2")
    world.step(T0 + timedelta(minutes=3))
    world.finish("fresh-1", baseline={"accuracy": baseline}, accuracy=final)
    plan = world.step(T0 + timedelta(minutes=4))
    record = next(r for r in world.status["runs"] if r["name"] == "fresh-1")
    assert record["baseline"] == {"accuracy": baseline} and record["evaluation"] == {"accuracy": final}
    assert record["warmStart"] == "fresh-0" and words in record["message"]
    if decision == "promoted":
        assert [m for m in plan.create if m["kind"] == "Pod"]  # its publication
    else:
        assert plan.decisions == [("rejected", "NotBetterEnough")]


def test_a_baseline_of_another_model_than_the_champion_in_service_is_not_compared_with() -> None:
    """A run warm-started from a champion replaced since: its baseline measured a retired model."""
    world = promoted_world()
    world.annotate(data="v2")
    world.step(T0 + timedelta(minutes=3))
    record = next(r for r in world.status["runs"] if r["name"] == "fresh-1")
    world.body["status"]["champion"]["job"] = "someone-else"  # promoted by hand meanwhile
    world.finish("fresh-1", baseline={"accuracy": 0.5}, accuracy=0.9)
    world.step(T0 + timedelta(minutes=4))
    record = next(r for r in world.status["runs"] if r["name"] == "fresh-1")
    assert record["promoted"] is False and "against the champion's 0.95" in record["message"]


def test_a_failed_publication_keeps_the_champion_and_says_why() -> None:
    world = promoted_world()
    world.annotate(data="v2")
    world.step(T0 + timedelta(minutes=3))
    world.finish("fresh-1", accuracy=0.99)
    world.step(T0 + timedelta(minutes=4))
    world.run_pod("fresh-1", ok=False, message='{"error":"weights do not match their metadata"}')
    plan = world.step(T0 + timedelta(minutes=5))
    assert plan.decisions == [("rejected", "PublishFailed")]
    assert "weights do not match" in plan.events[0][2]
    assert world.status["champion"]["job"] == "fresh-0" and "publishing" not in world.status


def test_a_run_that_exported_no_model_is_named_in_a_condition_until_a_run_is_published() -> None:
    """A script that never calls export_model: its runs can never be promoted, and the resource says why."""
    world = promoted_world()
    world.annotate(data="v2")
    world.step(T0 + timedelta(minutes=3))
    world.finish("fresh-1", accuracy=0.99)
    world.step(T0 + timedelta(minutes=4))
    world.run_pod("fresh-1", ok=False,
                  message='{"error":"runs/fresh-1/model does not exist: the run exported no model",'
                          '"reason":"NoExportedModel"}')
    plan = world.step(T0 + timedelta(minutes=5))
    assert plan.decisions == [("rejected", c.CT_REASON_NO_EXPORT)]
    (cond,) = [x for x in world.status["conditions"] if x["type"] == c.CT_COND_MODEL_EXPORTED]
    assert cond["status"] == "False" and cond["reason"] == c.CT_REASON_NO_EXPORT
    assert "fresh-1 exported no model" in cond["message"] and "export_model(model)" in cond["message"]
    record = next(r for r in world.status["runs"] if r["name"] == "fresh-1")
    assert record["promoted"] is False and record["reason"] == c.CT_REASON_NO_EXPORT
    assert world.status["champion"]["job"] == "fresh-0"  # the champion stays
    # The next run exports, and is published: the condition says so.
    world.annotate(data="v3")
    world.step(T0 + timedelta(minutes=6))
    world.finish("fresh-2", accuracy=0.995)
    world.step(T0 + timedelta(minutes=7))
    world.run_pod("fresh-2")
    world.step(T0 + timedelta(minutes=8))
    (cond,) = [x for x in world.status["conditions"] if x["type"] == c.CT_COND_MODEL_EXPORTED]
    assert (cond["status"], cond["reason"]) == ("True", c.CT_REASON_MODEL_PUBLISHED)
    assert world.status["champion"]["job"] == "fresh-2"


def test_a_restart_between_a_runs_end_and_its_promotion_neither_loses_nor_doubles_it() -> None:
    world = World(ct_body())
    world.annotate(data="v1")
    world.step(T0)
    world.finish("fresh-0", accuracy=0.95)
    # The decision's status write is lost: the pod exists, the status does not say so.
    first = world.step(T0 + timedelta(minutes=1), write=False)
    again = world.step(T0 + timedelta(minutes=2))
    assert [m["metadata"]["name"] for m in first.create] == [m["metadata"]["name"] for m in again.create]
    assert len(world.pods) == 1
    world.run_pod("fresh-0")
    # The pod finished; the pass that records the champion is lost too, then repeated.
    lost = world.step(T0 + timedelta(minutes=3), write=False)
    done = world.step(T0 + timedelta(minutes=4))
    assert reasons(lost) == reasons(done) == [c.CT_REASON_PROMOTED]
    assert world.status["promotions"] == 1 and len(world.status["champions"]) == 1
    assert not world.pods
    assert not world.step(T0 + timedelta(minutes=5)).events  # nothing more to do: no second promotion


def test_promote_by_hand_rolls_back_and_refuses_what_cannot_be_promoted() -> None:
    world = promoted_world()
    world.annotate(data="v2")
    world.step(T0 + timedelta(minutes=3))
    world.finish("fresh-1", accuracy=0.99)
    world.step(T0 + timedelta(minutes=4))
    world.run_pod("fresh-1")
    world.step(T0 + timedelta(minutes=5))
    world.annotate(promote="fresh-0@1")
    world.step(T0 + timedelta(minutes=6))
    world.run_pod("fresh-0")
    world.step(T0 + timedelta(minutes=7))
    assert world.status["champion"]["job"] == "fresh-0" and world.status["champion"]["reason"] == "Manual"
    world.annotate(promote="nope@2")
    plan = world.step(T0 + timedelta(minutes=8))
    assert plan.events[0][1] == "PromoteRefused" and "no run of that name" in plan.events[0][2]
    assert not world.step(T0 + timedelta(minutes=9)).events  # handled once


def test_history_limits_delete_old_runs_but_never_the_champions() -> None:
    world = promoted_world()
    for version in range(2, 6):
        world.annotate(data=f"v{version}")
        world.step(T0 + timedelta(minutes=10 * version))
        world.finish(f"fresh-{version - 1}", accuracy=0.5)  # each rejected
        world.step(T0 + timedelta(minutes=10 * version + 1))
    world.step(T0 + timedelta(hours=2))
    assert sorted(world.jobs) == ["fresh-0", "fresh-2", "fresh-3", "fresh-4"]  # 3 kept, plus the champion
    assert len(world.status["runs"]) == 5  # the record outlives the runs


def test_a_failed_run_is_recorded_not_promoted_and_kept_by_the_failed_limit() -> None:
    world = promoted_world()
    world.annotate(data="v2")
    world.step(T0 + timedelta(minutes=3))
    world.finish("fresh-1", phase=c.PHASE_FAILED)
    plan = world.step(T0 + timedelta(minutes=4))
    record = next(r for r in world.status["runs"] if r["name"] == "fresh-1")
    assert record["promoted"] is False and record["reason"] == "RunFailed"
    assert "fresh-1" in world.jobs and not plan.decisions


def test_suspend_starts_nothing_and_missed_firings_are_not_saved_up() -> None:
    world = World(ct_body(schedule="*/10 * * * *", suspend=True))
    assert not world.step(T0 + timedelta(minutes=25)).create and world.status["phase"] == "Suspended"
    world.body["spec"]["suspend"] = False
    assert not world.step(T0 + timedelta(minutes=26)).create


def test_publish_outcome_reads_the_termination_message() -> None:
    assert published({"status": {"phase": "Running"}}) is None
    failed = published({"status": {"phase": "Failed", "containerStatuses": [
        {"state": {"terminated": {"message": '{"error":"x does not exist"}'}}}]}})
    assert failed is not None and not failed.ok and failed.message == "x does not exist"


def test_a_continuous_training_with_runs_whose_spec_stops_validating_keeps_its_phase() -> None:
    from ludus.api.continuous import ContinuousTrainingStatus, RunRecord
    from ludus.continuous.status import invalid_status

    running = ContinuousTrainingStatus(phase="Running", runs=[RunRecord(number=1, name="fresh-1")], active=["fresh-1"])
    status = invalid_status(running, "spec.schedule: not a cron expression", 3, T0)
    assert status.phase == "Running" and status.active == ["fresh-1"]
    (cond,) = [x for x in status.conditions if x.type == c.CT_COND_VALID]
    assert (cond.status, cond.reason) == ("False", c.REASON_INVALID_SPEC)
    assert invalid_status(ContinuousTrainingStatus(), "spec.schedule: x", 1, T0).phase == c.PHASE_FAILED
