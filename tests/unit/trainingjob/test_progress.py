"""Reading a trainer's progress from its metrics page, and when a step counts as new."""

from __future__ import annotations

from datetime import UTC, timedelta

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from ludus.trainingjob.progress import ProgressSample, advance, parse_progress, poll_interval
from tests.factories import T0


def _page(step: float | None, *, ranks: int = 1, loss: float = 0.5) -> str:
    """A metrics page as the trainer serves it (ludus_trainer.metrics uses these names and labels)."""
    registry = CollectorRegistry()
    labels = ["job", "rank"]
    gauges = {name: Gauge(f"ludus_trainer_{name}", name, labels, registry=registry)
              for name in ("step", "epoch", "loss", "samples_per_second")}
    for rank in range(ranks):
        if step is not None:
            gauges["step"].labels("digits", str(rank)).set(step)
        gauges["epoch"].labels("digits", str(rank)).set(2)
        gauges["loss"].labels("digits", str(rank)).set(loss)
        gauges["samples_per_second"].labels("digits", str(rank)).set(812.5)
    return generate_latest(registry).decode()


def test_the_step_epoch_loss_and_rate_are_read() -> None:
    sample = parse_progress(_page(120))
    assert sample == ProgressSample(step=120, epoch=2, loss=0.5, samples_per_second=812.5)


def test_a_page_without_a_step_has_no_progress() -> None:
    assert parse_progress(_page(None)) is None
    assert parse_progress("") is None


def test_unrelated_metrics_are_ignored() -> None:
    text = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.5\n" + _page(7)
    assert parse_progress(text).step == 7  # type: ignore[union-attr]


def test_the_time_moves_only_when_the_step_does() -> None:
    first = advance(None, ProgressSample(step=10), T0)
    assert first.observed_at == T0
    same = advance(first, ProgressSample(step=10, loss=0.1), T0 + timedelta(seconds=30))
    assert same.observed_at == T0 and same.loss == 0.1  # a stalled trainer keeps serving step 10
    moved = advance(same, ProgressSample(step=11), T0 + timedelta(seconds=40))
    assert moved.observed_at == T0 + timedelta(seconds=40)
    # A group restart resumes from the checkpoint at a lower step: that is movement too.
    back = advance(moved, ProgressSample(step=5), T0 + timedelta(seconds=50))
    assert back.observed_at == T0 + timedelta(seconds=50)


def test_every_job_is_polled_each_interval_and_stalls_are_seen_within_a_third_of_the_deadline() -> None:
    assert poll_interval(30.0, None) == 30.0
    assert poll_interval(30.0, 600) == 30.0
    assert poll_interval(30.0, 15) == 5.0
    assert poll_interval(30.0, 2) == 1.0
    assert poll_interval(0.2, None) == 1.0


def test_the_poller_owns_its_targets_and_polls_only_jobs_with_an_address() -> None:
    from datetime import datetime

    from ludus.runtime.poller import ProgressPoller

    addresses = {("ns", "a"): ("10.0.0.5", "pod-a"), ("ns", "b"): None}
    active = [True]
    poller = ProgressPoller(addresses.get, lambda key: None, lambda: datetime.now(UTC),
                            active=lambda: active[0])
    poller.follow(("ns", "a"), "uid-a", 2.0)
    poller.follow(("ns", "b"), "uid-b", 2.0)  # worker 0 has no IP yet
    assert [(t.key, t.address, t.interval, t.source) for t in poller.targets()] == [
        (("ns", "a"), "10.0.0.5", 2.0, "pod-a")
    ]
    active[0] = False  # a standby replica polls nothing
    assert poller.targets() == []
    active[0] = True
    poller.unfollow(("ns", "a"))
    poller.samples["uid-b"] = ProgressSample(3)
    poller.forget(("ns", "b"), "uid-b")
    assert poller.targets() == [] and poller.samples == {}


def _full_page(step: int, *, total: int = 600, start: int = 0, restarts: int = 0, loss: str = "0.5") -> str:
    return (
        f'ludus_trainer_step{{job="j",rank="0"}} {step}\n'
        f'ludus_trainer_total_steps{{job="j",rank="0"}} {total}\n'
        f'ludus_trainer_start_step{{job="j",rank="0"}} {start}\n'
        f'ludus_trainer_loss{{job="j",rank="0"}} {loss}\n'
        f'ludus_trainer_tokens_per_second{{job="j",rank="0"}} 5000\n'
        f'ludus_trainer_restarts_total{{job="j",rank="0"}} {restarts}\n'
        'ludus_trainer_phase_seconds{job="j",rank="0",phase="train"} 12.5\n'
        'ludus_trainer_phase_seconds{job="j",rank="0",phase="startup"} 3.25\n'
        'ludus_trainer_phase_seconds{job="j",rank="0",phase="bogus"} 99\n'
    )


def test_totals_phases_and_the_run_are_read() -> None:
    sample = parse_progress(_full_page(120, start=100, restarts=1))
    assert sample is not None
    assert (sample.step, sample.total_steps, sample.start_step, sample.restarts) == (120, 600, 100, 1)
    assert sample.tokens_per_second == 5000 and sample.percent == 20.0
    assert sample.phases == {"train": 12.5, "startup": 3.25}  # unknown phases are not the trainer's


def test_a_non_finite_loss_is_left_out_and_the_step_still_counts() -> None:
    for loss in ("NaN", "+Inf"):
        sample = parse_progress(_full_page(7, loss=loss))
        assert sample is not None and sample.step == 7 and sample.loss is None


def test_what_is_not_a_metrics_page_raises_or_has_no_step() -> None:
    for text in ("<html><body>502 Bad Gateway</body></html>", '{"step": 12, "loss": 0.'):
        try:
            assert parse_progress(text) is None
        except ValueError:
            pass
    assert parse_progress('ludus_trainer_step{job="j",rank="0"} -3\n') is None
    assert parse_progress('ludus_trainer_step{job="j",rank="0"} 1e300\n') is None


def test_percent_and_eta_come_from_the_step_rate_the_operator_measured() -> None:
    first = advance(None, parse_progress(_full_page(100)), T0)  # type: ignore[arg-type]
    assert first.eta_seconds is None  # one look is no rate
    later = advance(first, parse_progress(_full_page(160)), T0 + timedelta(seconds=30))  # type: ignore[arg-type]
    assert later.steps_per_second == 2.0 and later.eta_seconds == 220.0 and later.percent == 26.7
    # A new run (torchrun restarted the trainer in place) measures its rate afresh.
    again = advance(later, parse_progress(_full_page(50, restarts=1)), T0 + timedelta(seconds=60))  # type: ignore[arg-type]
    assert again.rate_from == (50, T0 + timedelta(seconds=60)) and again.eta_seconds is None


def test_the_page_the_trainer_really_serves_is_read() -> None:
    """ludus_trainer.metrics' own exposition, with its counters' _total and _created samples."""
    from ludus_trainer.metrics import TrainerMetrics

    metrics = TrainerMetrics(job="j", rank=0)
    metrics.started(world_size=2, restarts=2)
    metrics.plan(start_step=30, total_steps=90)
    metrics.step(45, 1, 0.25, 100.0, None)
    metrics.phases({"startup": 4.0, "train": 6.5})
    sample = parse_progress(generate_latest(metrics.registry).decode())
    assert sample is not None
    assert (sample.step, sample.total_steps, sample.start_step, sample.restarts, sample.epoch) == (45, 90, 30, 2, 1)
    assert sample.phases == {"startup": 4.0, "train": 6.5} and sample.loss == 0.25


def test_the_evaluation_while_training_is_read_with_its_step_and_reaches_the_status() -> None:
    """What a Sweep's early stopping compares before a trial ends."""
    from ludus.trainingjob.status import evaluation_status, live_report
    from ludus_trainer.metrics import TrainerMetrics

    metrics = TrainerMetrics(job="j", rank=0)
    metrics.step(45, 3, 0.25, 100.0, None)
    assert parse_progress(generate_latest(metrics.registry).decode()).evaluation == {}  # none yet
    metrics.evaluation({"accuracy": 0.9, "f1": 0.8}, step=40)
    metrics.objective("accuracy", "maximize")
    sample = parse_progress(generate_latest(metrics.registry).decode())
    assert sample is not None and sample.evaluation == {"accuracy": 0.9, "f1": 0.8} and sample.evaluation_step == 40
    evaluation = evaluation_status(None, [], None, live_report(sample))
    assert evaluation is not None
    assert evaluation.latest["accuracy"].value == 0.9 and evaluation.latest["accuracy"].step == 40
    # The trainer's own objective, not the loss default, while it trains.
    assert evaluation.objective is not None and evaluation.objective.metric == "accuracy"
    assert evaluation.objective.goal == "maximize" and evaluation.objective.value == 0.9


def test_only_the_trainers_own_lines_are_parsed_and_only_so_many() -> None:
    from ludus.trainingjob.progress import MAX_TRAINER_LINES, trainer_lines

    page = "# HELP python_info x\npython_info 1\n# TYPE ludus_trainer_step gauge\nludus_trainer_step 3\n"
    assert trainer_lines(page) == "# TYPE ludus_trainer_step gauge\nludus_trainer_step 3\n"
    flood = "".join(f'ludus_trainer_eval_metric{{metric="m{i}"}} 1\n' for i in range(5 * MAX_TRAINER_LINES))
    assert len(trainer_lines(flood).splitlines()) == MAX_TRAINER_LINES


def test_a_live_evaluation_is_rounded_as_the_trainer_rounds_its_baseline() -> None:
    """A ContinuousTraining compares a run's baseline (rounded by the trainer) with the champion's evaluation,
    which may come from the metrics page: 1002/1024 must be the same number from both."""
    from ludus.trainingjob.status import live_report
    from ludus_trainer.evaluation import EvaluationRecord, Objective
    from ludus_trainer.metrics import TrainerMetrics

    metrics = TrainerMetrics(job="j", rank=0)
    metrics.step(45, 3, 0.25, 100.0, None)
    metrics.evaluation({"accuracy": 1002 / 1024}, step=40)
    report = live_report(parse_progress(generate_latest(metrics.registry).decode()))
    record = EvaluationRecord(Objective("accuracy", "maximize"))
    record.set_baseline({"accuracy": 1002 / 1024})
    assert report is not None and report["latest"]["accuracy"]["value"] == record.baseline["accuracy"]["value"]
