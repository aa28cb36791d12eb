"""Reading a trainer's progress from its metrics page, and when a step counts as new."""

from __future__ import annotations

from datetime import UTC, timedelta

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from ludus.progress import ProgressSample, advance, parse_progress, poll_interval
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


def test_polling_sees_a_stall_within_a_third_of_the_deadline() -> None:
    assert poll_interval(600) == 10.0
    assert poll_interval(15) == 5.0
    assert poll_interval(2) == 1.0
    assert poll_interval(60, default=30.0) == 20.0


def test_the_poller_owns_its_targets_and_polls_only_jobs_with_an_address() -> None:
    from datetime import datetime

    from ludus.poller import ProgressPoller

    addresses = {("ns", "a"): "10.0.0.5", ("ns", "b"): None}
    active = [True]
    poller = ProgressPoller(addresses.get, lambda key: None, lambda: datetime.now(UTC),
                            active=lambda: active[0])
    poller.follow(("ns", "a"), "uid-a", 2.0)
    poller.follow(("ns", "b"), "uid-b", 2.0)  # worker 0 has no IP yet
    assert [(t.key, t.address, t.interval) for t in poller.targets()] == [(("ns", "a"), "10.0.0.5", 2.0)]
    active[0] = False  # a standby replica polls nothing
    assert poller.targets() == []
    active[0] = True
    poller.unfollow(("ns", "a"))
    poller.samples["uid-b"] = ProgressSample(3)
    poller.forget(("ns", "b"), "uid-b")
    assert poller.targets() == [] and poller.samples == {}
