"""A distributed sampler whose position survives a change of world size.

The position is a count of samples consumed from the epoch's global
permutation, not a per-rank batch index: after an elastic resize the new
ranks split what is left of the same permutation, so no sample is skipped or
repeated beyond the last checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableDistributedSampler(Sampler[int]):
    def __init__(self, size: int, rank: int, world_size: int, *, seed: int = 0, shuffle: bool = True) -> None:
        self.size, self.rank, self.world_size = size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch = 0
        self.start = 0  # samples of this epoch's permutation already consumed, across all ranks

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def remaining(self) -> list[int]:
        rest = self._order()[self.start:]
        usable = len(rest) - len(rest) % self.world_size  # equal shares keep collectives in step
        return rest[:usable]

    def __iter__(self) -> Iterator[int]:
        return iter(self.remaining()[self.rank:: self.world_size])

    def __len__(self) -> int:
        return len(self.remaining()) // self.world_size
