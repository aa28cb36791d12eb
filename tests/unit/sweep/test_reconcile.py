"""The Sweep's pure logic: the model's checks, suggestions, early stopping and one pass's plan."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ludus.api import constants as c
from ludus.api.models import Objective
from ludus.api.sweep import Sweep, SweepSpec
from ludus.sweep.reconcile import SweepPlan
from ludus.sweep.reconcile import reconcile_sweep as _reconcile_sweep
from ludus.sweep.space import SpaceError, grid_size
from ludus.sweep.study import TrialOutcome, suggest, to_stop
from ludus.trainingjob.child import read_children
from tests.factories import T0

MAXIMIZE = Objective(metric="accuracy", goal="maximize")


def reconcile_sweep(sweep: Sweep, jobs: list[dict[str, Any]], now: datetime,
                    record_pods: Sequence[Mapping[str, Any]] = ()) -> SweepPlan:
    """The pass, given the trial jobs as the controller hands them over: read once as models."""
    return _reconcile_sweep(sweep, read_children(jobs), now, record_pods)


def sweep_body(name: str = "s", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "template": {"image": "ludus-trainer:latest", "command": ["python", "-m", "ludus_trainer"],
                     "args": ["--lr", "${lr}"]},
        "parameters": [{"name": "lr", "type": "float", "min": 1e-4, "max": 1.0, "log": True},
                       {"name": "width", "type": "int", "min": 16, "max": 256, "step": 16}],
        "objective": {"metric": "accuracy", "goal": "maximize"},
        "maxTrials": 6, "parallelTrials": 2,
    }
    base.update(spec)
    return {"apiVersion": c.API_VERSION, "kind": c.SWEEP_KIND,
            "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}", "generation": 1},
            "spec": base}


def sweep(**spec: Any) -> Sweep:
    return Sweep.model_validate(sweep_body(**spec))


def finished(job: dict[str, Any], phase: str, metrics: dict[str, float] | None = None, step: int = 100
             ) -> dict[str, Any]:
    job = copy.deepcopy(job)
    job["status"] = {"phase": phase}
    if metrics is not None:
        job["status"]["evaluation"] = {"latest": {m: {"value": v, "step": step} for m, v in metrics.items()}}
    return job


# --- the model -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("parameter, message", [
    ({"name": "lr", "type": "float", "min": 1.0, "max": 0.1}, "min must not be greater than max"),
    ({"name": "lr", "type": "float", "min": 0.0, "max": 1.0, "log": True}, "log-scale range needs min > 0"),
    ({"name": "act", "type": "categorical", "values": []}, "non-empty values"),
    ({"name": "lr", "type": "float"}, "needs min and max"),
])
def test_a_bad_parameter_is_refused_with_what_is_wrong(parameter: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Sweep.model_validate(sweep_body(parameters=[parameter]))


def test_more_parallel_trials_than_trials_and_unknown_algorithms_are_refused() -> None:
    with pytest.raises(ValidationError, match="parallelTrials must not exceed maxTrials"):
        sweep(maxTrials=2, parallelTrials=3)
    with pytest.raises(ValidationError, match="algorithm"):
        sweep(algorithm={"name": "hyperband"})
    with pytest.raises(ValidationError, match="template"):
        sweep(template={"image": "x", "replicas": 0})


# --- suggestions -----------------------------------------------------------------------------------------

def branin_like(lr: float, width: int) -> float:
    """A known function to maximise: best at lr = 0.01, width = 128."""
    return -((math.log10(lr) + 2) ** 2) - ((width - 128) / 64) ** 2


def _search(algorithm: str, budget: int, seed: int) -> float:
    spec = SweepSpec.model_validate({**sweep_body()["spec"], "algorithm": {"name": algorithm, "seed": seed},
                                     "maxTrials": budget, "parallelTrials": 1})
    trials: list[TrialOutcome] = []
    for number in range(budget):
        values = suggest(spec, MAXIMIZE, trials, number)
        assert values is not None
        value = branin_like(float(values["lr"]), int(values["width"]))
        trials.append(TrialOutcome(number=number, values=values, state="succeeded", value=value))
    return max(t.value for t in trials if t.value is not None)


def test_tpe_beats_random_on_a_known_function_in_the_same_budget() -> None:
    seeds = range(5)
    tpe = [_search("tpe", 30, s) for s in seeds]
    rand = [_search("random", 30, s) for s in seeds]
    assert sum(tpe) / len(tpe) > sum(rand) / len(rand), (tpe, rand)


def test_the_same_records_suggest_the_same_values() -> None:
    spec = sweep(algorithm={"name": "tpe", "seed": 7}).spec
    history = [TrialOutcome(number=i, values={"lr": str(10 ** -(i + 1)), "width": "64"}, state="succeeded",
                            value=0.5 + i / 10) for i in range(4)]
    assert suggest(spec, MAXIMIZE, history, 4) == suggest(spec, MAXIMIZE, list(history), 4)


def test_grid_visits_every_combination_once_then_stops() -> None:
    spec = sweep(parameters=[{"name": "lr", "type": "float", "min": 0.1, "max": 0.3, "step": 0.1},
                             {"name": "act", "type": "categorical", "values": ["relu", "tanh"]}],
                 algorithm={"name": "grid"}).spec
    assert grid_size(spec.parameters) == 6
    points = [suggest(spec, MAXIMIZE, [], n) for n in range(6)]
    assert len({json.dumps(p, sort_keys=True) for p in points}) == 6
    assert suggest(spec, MAXIMIZE, [], 6) is None
    with pytest.raises(SpaceError, match=r"parameters\[lr\].step"):
        sweep(algorithm={"name": "grid"}).spec and suggest(sweep(algorithm={"name": "grid"}).spec, MAXIMIZE, [], 0)


# --- early stopping --------------------------------------------------------------------------------------

def _history() -> list[TrialOutcome]:
    done = [TrialOutcome(number=i, values={"lr": "0.01", "width": "64"}, state="succeeded", value=0.9,
                         intermediate={10: 0.5 + i / 100, 20: 0.7, 30: 0.9}) for i in range(3)]
    bad = TrialOutcome(number=3, values={"lr": "0.5", "width": "16"}, state="running", intermediate={10: 0.2})
    good = TrialOutcome(number=4, values={"lr": "0.02", "width": "64"}, state="running", intermediate={10: 0.6})
    return [*done, bad, good]


def test_median_stopping_stops_a_trial_worse_than_the_median_at_its_step() -> None:
    spec = sweep(earlyStopping={"warmupSteps": 5, "minTrials": 3}).spec
    assert to_stop(spec, MAXIMIZE, _history()) == [3]
    assert to_stop(sweep().spec, MAXIMIZE, _history()) == []  # off unless asked for
    warm = sweep(earlyStopping={"warmupSteps": 50, "minTrials": 3}).spec
    assert to_stop(warm, MAXIMIZE, _history()) == []  # still warming up
    few = sweep(earlyStopping={"minTrials": 4}).spec
    assert to_stop(few, MAXIMIZE, _history()) == []  # not enough finished trials yet


def test_early_stopping_decides_the_same_after_a_rebuild_from_the_status() -> None:
    """The pass reads the trials back from the sweep's status (as a restarted operator does)."""
    body = sweep_body(earlyStopping={"minTrials": 3}, maxTrials=10, parallelTrials=2)
    jobs: list[dict[str, Any]] = []
    first = reconcile_sweep(Sweep.model_validate(body), jobs, T0)
    jobs = [finished(j, "Succeeded", {"accuracy": 0.9}, step=10) for j in first.create]
    for _ in range(2):  # run the sweep on until 3 trials are done and 2 run
        body["status"] = reconcile_sweep(Sweep.model_validate(body), jobs, T0).status.model_dump(
            by_alias=True, mode="json", exclude_none=True)
        plan = reconcile_sweep(Sweep.model_validate(body), jobs, T0)
        jobs += [finished(j, "Succeeded", {"accuracy": 0.9}, step=10) for j in plan.create[:1]]
    running = reconcile_sweep(Sweep.model_validate(body), jobs, T0).create
    jobs += [finished(running[0], "Running", {"accuracy": 0.1}, step=10),
             finished(running[1], "Running", {"accuracy": 0.95}, step=10)]
    before = reconcile_sweep(Sweep.model_validate(body), jobs, T0)
    assert before.stop == [running[0]["metadata"]["name"]]
    # A fresh operator: only the status it wrote and the trial jobs.
    body["status"] = before.status.model_dump(by_alias=True, mode="json", exclude_none=True)
    after = reconcile_sweep(Sweep.model_validate(json.loads(json.dumps(body))), jobs, T0)
    assert after.stop == before.stop


# --- a pass ----------------------------------------------------------------------------------------------

def test_a_pass_starts_parallel_trials_with_values_in_env_and_args() -> None:
    plan = reconcile_sweep(sweep(), [], T0)
    assert [j["metadata"]["name"] for j in plan.create] == ["s-0", "s-1"]
    job = plan.create[0]
    values = json.loads(job["metadata"]["annotations"][c.ANNOTATION_TRIAL_PARAMETERS])
    env = {e["name"]: e["value"] for e in job["spec"]["env"]}
    assert env["LUDUS_PARAM_LR"] == values["lr"] and json.loads(env[c.ENV_TRIAL_PARAMETERS]) == values
    assert job["spec"]["args"] == ["--lr", values["lr"]]
    assert job["metadata"]["labels"][c.LABEL_SWEEP] == "s" and job["metadata"]["labels"][c.LABEL_TRIAL] == "0"
    assert job["metadata"]["ownerReferences"][0]["kind"] == c.SWEEP_KIND
    assert plan.status.phase == c.PHASE_RUNNING and plan.status.running == 2


def _run(s: Sweep, outcome: Callable[[dict[str, Any]], dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    body = s.model_dump(by_alias=True, mode="json", exclude_none=True)
    jobs: list[dict[str, Any]] = []
    for _ in range(50):
        plan = reconcile_sweep(Sweep.model_validate(body), jobs, T0)
        assert plan.status.running <= s.spec.parallel_trials
        jobs += [outcome(j) for j in plan.create]
        body["status"] = plan.status.model_dump(by_alias=True, mode="json", exclude_none=True)
        if plan.status.phase in c.TERMINAL_PHASES:
            return plan, jobs
    raise AssertionError("the sweep never ended")


def test_the_sweep_ends_at_max_trials_with_the_best_trial_and_its_metrics() -> None:
    def trained(job: dict[str, Any]) -> dict[str, Any]:
        lr = float(json.loads(job["metadata"]["annotations"][c.ANNOTATION_TRIAL_PARAMETERS])["lr"])
        return finished(job, "Succeeded", {"accuracy": 1 - abs(math.log10(lr) + 2) / 10, "f1": 0.5})

    plan, jobs = _run(sweep(), trained)
    assert plan.status.phase == c.PHASE_SUCCEEDED and len(jobs) == 6
    assert plan.status.conditions[0].reason == c.SWEEP_REASON_MAX_TRIALS
    best = plan.status.best
    assert best is not None and best.value == max(t.value for t in plan.status.trials if t.value is not None)
    assert best.metrics["f1"] == 0.5 and plan.status.best_summary.startswith("accuracy ")
    assert plan.status.progress == "6/6"


def test_too_many_failed_trials_fail_the_sweep() -> None:
    plan, _ = _run(sweep(maxFailedTrials=2), lambda j: finished(j, "Failed"))
    assert plan.status.phase == c.PHASE_FAILED
    assert any(x.reason == c.SWEEP_REASON_TOO_MANY_FAILED for x in plan.status.conditions)


def test_an_objective_never_reported_fails_the_sweep_naming_what_was() -> None:
    plan, _ = _run(sweep(objective={"metric": "bleu", "goal": "maximize"}),
                   lambda j: finished(j, "Succeeded", {"accuracy": 0.9, "f1": 0.8}))
    failed = next(x for x in plan.status.conditions if x.reason == c.SWEEP_REASON_OBJECTIVE_MISSING)
    assert "'bleu'" in failed.message and "accuracy, f1" in failed.message


def test_a_grid_smaller_than_max_trials_ends_when_exhausted() -> None:
    plan, jobs = _run(sweep(parameters=[{"name": "act", "type": "categorical", "values": ["a", "b", "c"]}],
                            algorithm={"name": "grid"}, maxTrials=10),
                      lambda j: finished(j, "Succeeded", {"accuracy": 0.5}))
    assert len(jobs) == 3 and plan.status.conditions[0].reason == c.SWEEP_REASON_EXHAUSTED


def test_suspend_suspends_running_trials_and_starts_none() -> None:
    first = reconcile_sweep(sweep(), [], T0)
    jobs = [finished(j, "Running") for j in first.create]
    plan = reconcile_sweep(sweep(suspend=True), jobs, T0)
    assert plan.create == [] and sorted(plan.suspend) == ["s-0", "s-1"]
    assert plan.status.phase == c.PHASE_SUSPENDED
    for job in jobs:
        job["spec"]["suspend"] = True
    resumed = reconcile_sweep(sweep(), jobs, T0)
    assert sorted(resumed.resume) == ["s-0", "s-1"] and resumed.create == []


def test_trials_sharing_a_claim_each_get_their_own_directory_in_it() -> None:
    template = {**sweep_body()["spec"]["template"], "checkpoint": {"claimName": "ckpt"}}
    first, second = reconcile_sweep(sweep(template=template), [], T0).create
    assert first["spec"]["checkpoint"]["subPath"] == "s-0" and second["spec"]["checkpoint"]["subPath"] == "s-1"
    from ludus.api.models import TrainingJob
    from ludus.builders.pods import build_worker_pod

    pod = build_worker_pod(TrainingJob.model_validate({**first, "metadata": {**first["metadata"], "uid": "u"}}), 0)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env[c.ENV_CHECKPOINT_DIR] == "/checkpoints/s-0"  # a directory of its own in the shared claim


def test_trials_sharing_a_bucket_prefix_each_get_their_own_prefix_under_it() -> None:
    template = {**sweep_body()["spec"]["template"], "checkpoint": {"uri": "s3://ckpts/sweeps/"}}
    first, second = reconcile_sweep(sweep(template=template), [], T0).create
    assert (first["spec"]["checkpoint"]["uri"], second["spec"]["checkpoint"]["uri"]) == (
        "s3://ckpts/sweeps/s-0", "s3://ckpts/sweeps/s-1")


def test_an_undeclared_objective_is_settled_by_a_finished_trial_not_a_running_one() -> None:
    body = sweep_body()
    del body["spec"]["objective"]
    s = Sweep.model_validate(body)
    first = reconcile_sweep(s, [], T0).create
    running = finished(first[0], "Running", {"accuracy": 0.5})
    running["status"]["evaluation"]["objective"] = {"metric": "loss", "goal": "minimize"}
    assert reconcile_sweep(s, [running], T0).status.objective is None
    done = finished(first[1], "Succeeded", {"accuracy": 0.9})
    done["status"]["evaluation"]["objective"] = {"metric": "accuracy", "goal": "maximize"}
    settled = reconcile_sweep(s, [running, done], T0).status
    assert settled.objective == MAXIMIZE and settled.best is not None and settled.best.value == 0.9



def test_a_range_no_algorithm_can_search_fails_the_sweep_naming_the_parameter() -> None:
    plan = reconcile_sweep(sweep(parameters=[{"name": "lr", "type": "float", "min": -1e308, "max": 1e308,
                                               "step": 1.0}]), [], T0)
    assert plan.status.phase == "Failed" and plan.create == []
    assert "parameters[lr]" in plan.status.conditions[-1].message


# --- ownership ---------------------------------------------------------------------------------------------

def test_a_trial_deleted_by_hand_before_it_finished_frees_its_place_and_the_sweep_ends() -> None:
    body = sweep_body(maxTrials=2, parallelTrials=2)
    kept, deleted = reconcile_sweep(Sweep.model_validate(body), [], T0).create
    seen = reconcile_sweep(Sweep.model_validate(body), [kept, deleted], T0)
    assert seen.status.running == 2
    body["status"] = seen.status.model_dump(by_alias=True, mode="json", exclude_none=True)
    jobs = [finished(kept, "Running", {"accuracy": 0.5})]  # s-1 is gone, never finished
    plan = reconcile_sweep(Sweep.model_validate(body), jobs, T0)
    gone = next(t for t in plan.status.trials if t.name == deleted["metadata"]["name"])
    assert gone.phase == c.SWEEP_TRIAL_DELETED and plan.status.running == 1 and plan.status.deleted == 1
    assert [e[1] for e in plan.events] == [c.SWEEP_REASON_TRIAL_DELETED] and plan.create == []
    body["status"] = plan.status.model_dump(by_alias=True, mode="json", exclude_none=True)
    done = reconcile_sweep(Sweep.model_validate(body), [finished(kept, "Succeeded", {"accuracy": 0.5})], T0)
    assert done.status.phase == c.PHASE_SUCCEEDED and done.status.best is not None
    assert c.SWEEP_REASON_TRIAL_DELETED not in [e[1] for e in done.events]  # said once


def test_only_trials_the_sweep_controls_are_its_trials_whatever_their_labels() -> None:
    """A TrainingJob anyone labels as trial 7 of the sweep, succeeded with the best score, is not taken."""
    s = sweep(maxTrials=2, parallelTrials=1)
    real = reconcile_sweep(s, [], T0).create[0]
    forged = copy.deepcopy(real)
    forged["metadata"].update(name="s-7", labels={**real["metadata"]["labels"], c.LABEL_TRIAL: "7"})
    forged["metadata"]["ownerReferences"] = []
    impostor = copy.deepcopy(forged)
    impostor["metadata"]["ownerReferences"] = [{**real["metadata"]["ownerReferences"][0], "uid": "someone-else"}]
    bodies = [finished(real, "Running", {"accuracy": 0.5}), finished(forged, "Succeeded", {"accuracy": 0.99}),
              finished(impostor, "Succeeded", {"accuracy": 0.99})]
    children = read_children(bodies, owner_uid=s.metadata.uid)
    assert [j.metadata.name for j in children] == ["s-0"]
    plan = _reconcile_sweep(s, children, T0)
    assert [t.number for t in plan.status.trials] == [0] and plan.status.best is None


def test_a_sweep_of_many_trials_lists_a_bounded_window_and_counts_the_rest() -> None:
    from ludus.sweep.status import MAX_LISTED_TRIALS

    def trained(job: dict[str, Any]) -> dict[str, Any]:
        number = int(job["metadata"]["labels"][c.LABEL_TRIAL])
        return finished(job, "Succeeded", {"accuracy": 0.99 if number == 7 else number / 1000})

    plan, jobs = _run(sweep(maxTrials=150, parallelTrials=10, algorithm={"name": "random"}), trained)
    status = plan.status
    assert status.phase == c.PHASE_SUCCEEDED and status.succeeded == 150 and status.created == 150
    assert status.progress == "150/150" and len(jobs) == 150
    listed = [t.number for t in status.trials]
    assert len(listed) == MAX_LISTED_TRIALS and 7 in listed and listed[-1] == 149
    assert status.best is not None and status.best.number == 7
    size = len(json.dumps(status.model_dump(by_alias=True, mode="json")))
    assert size < 256 * 1024, size


def test_a_started_sweep_whose_spec_stops_validating_keeps_its_phase_and_is_valid_again_once_fixed() -> None:
    from ludus.api.sweep import SweepStatus
    from ludus.sweep.status import invalid_status

    started = SweepStatus(phase="Running", start_time=T0, created=2, running=2)
    status = invalid_status(started, "spec.maxTrials: Input should be a valid integer", T0)
    assert status.phase == "Running" and status.completion_time is None and status.running == 2
    (cond,) = [x for x in status.conditions if x.type == c.COND_SPEC_VALID]
    assert (cond.status, cond.reason) == ("False", c.REASON_INVALID_SPEC) and "maxTrials" in cond.message
    # Fixed: the next pass says so, and goes on.
    sweep = Sweep.model_validate({**sweep_body("s"), "status": status.model_dump(by_alias=True, mode="json")})
    plan = reconcile_sweep(sweep, [], T0)
    (cond,) = [x for x in plan.status.conditions if x.type == c.COND_SPEC_VALID]
    assert (cond.status, cond.reason) == ("True", c.REASON_SPEC_VALID)
    # A sweep that never started still fails at once, naming the field.
    fresh = invalid_status(SweepStatus(), "spec.maxTrials: Input should be a valid integer", T0)
    assert fresh.phase == c.PHASE_FAILED and fresh.completion_time == T0
