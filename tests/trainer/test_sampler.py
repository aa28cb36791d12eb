"""The sampler's position survives a change of world size without skipping or repeating samples."""

from __future__ import annotations

from ludus_trainer.sampler import ResumableDistributedSampler


def _take(size: int, world: int, epoch: int, start: int, batches: int, batch: int) -> list[int]:
    out: list[int] = []
    samplers = [ResumableDistributedSampler(size, r, world, seed=3) for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch, start)
    orders = [list(s) for s in samplers]
    for b in range(batches):
        for order in orders:
            out.extend(order[b * batch:(b + 1) * batch])
    return out


def test_ranks_split_the_epoch_without_overlap() -> None:
    samplers = [ResumableDistributedSampler(100, r, 4) for r in range(4)]
    seen = [set(s) for s in samplers]
    assert all(len(s) == 25 for s in seen)
    assert len(set().union(*seen)) == 100


def test_resume_with_a_different_world_size_continues_the_same_permutation() -> None:
    size, batch = 960, 8
    first = _take(size, world=4, epoch=2, start=0, batches=5, batch=batch)  # 4 ranks × 5 × 8 = 160 samples
    rest = _take(size, world=2, epoch=2, start=len(first), batches=50, batch=batch)  # the remaining 800
    assert len(set(first) & set(rest)) == 0
    assert sorted(first + rest) == list(range(size))


def test_epochs_shuffle_differently_and_reproducibly() -> None:
    a, b = ResumableDistributedSampler(50, 0, 1), ResumableDistributedSampler(50, 0, 1)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(2)
    assert list(a) != list(b)
