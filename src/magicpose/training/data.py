"""Training data: datasets from the config, and the step-indexed sampler that makes resume exact.

Sample position p of the run (p = 0, 1, 2, ...) is index perm_e[p mod L] of the dataset, with perm_e a
seeded permutation per epoch e = p // L. Micro-batch m of rank r holds positions
m*B*W + r*B ... m*B*W + r*B + B-1 (W ranks, B per rank): ranks never share a sample within a
step, and the batch of any (m, r) is known without replaying the run, so resuming at step k
sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from magicpose.data.pairs import ClipDataset, PairDataset
from magicpose.data.sources import PUPPET, open_collection
from magicpose.errors import InputError
from magicpose.training.config import DataConfig, TrainingConfig


def _videos(data: DataConfig, source: str, split: str | None, count: int | None = None):
    """`open_collection` with the config's puppet-world settings (render size, frames per video)."""
    return open_collection(source, split, size=data.puppet_size or data.size, frames=data.puppet_frames, count=count)


def training_dataset(config: TrainingConfig, clips: bool = False) -> Dataset:
    data = config.data
    videos = _videos(data, data.source, data.split, data.puppet_videos)
    options = dict(
        size=data.size,
        crop=data.crop,
        crop_scale=data.crop_scale,
        seed=config.train.seed,
        face_mask_probability=data.face_mask_probability,
        hand_mask_probability=data.hand_mask_probability,
    )
    return ClipDataset(videos, **options) if clips else PairDataset(videos, **options)


def validation_batch(config: TrainingConfig, count: int, clips: bool = False) -> dict:
    """A fixed batch of held-out pairs, or clips for clip stages (no augmentation): the puppet val split by default."""
    data = config.data
    source = data.validation_source or data.source
    split = data.validation_split if source == PUPPET or data.validation_source else data.split
    try:
        videos = _videos(data, source, split, count=max(count, 1))
    except InputError:  # a dataset folder without that split: validate on the training split
        videos = _videos(data, source, data.split)
    dataset_class = ClipDataset if clips else PairDataset
    dataset = dataset_class(videos, size=data.size, crop="center", seed=12345, length=count)
    return collate([dataset[i] for i in range(count)])


def collate(items: list[dict]) -> dict:
    """Default collation of the keys every item has (masks exist only where the source knows them)."""
    keys = set.intersection(*(set(item) for item in items))
    return torch.utils.data.default_collate([{key: item[key] for key in keys} for item in items])


class StepBatches(Sampler[list[int]]):
    """Batches of dataset indices for micro-batches start, start+1, ... of one rank (see module doc)."""

    def __init__(self, length: int, batch_size: int, rank: int, world_size: int, seed: int, start: int = 0):
        self.length, self.batch_size, self.rank, self.world_size = length, batch_size, rank, world_size
        self.seed, self.start = seed, start
        self._epoch, self._permutation = -1, None

    def positions(self, micro_batch: int) -> range:
        first = micro_batch * self.batch_size * self.world_size + self.rank * self.batch_size
        return range(first, first + self.batch_size)

    def index(self, position: int) -> int:
        epoch, offset = divmod(position, self.length)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._permutation = epoch, torch.randperm(self.length, generator=generator)
        return int(self._permutation[offset])

    def __iter__(self) -> Iterator[list[int]]:
        micro_batch = self.start
        while True:
            yield [self.index(p) for p in self.positions(micro_batch)]
            micro_batch += 1


def batches(dataset: Dataset, sampler: StepBatches, num_workers: int) -> Iterator[dict]:
    loader = DataLoader(
        dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate, persistent_workers=num_workers > 0
    )
    return iter(loader)
