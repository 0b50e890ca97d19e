"""``TexttuneTrainer``: transformers' ``Trainer`` with a length-grouped data order that a resumed run repeats.

Imported lazily by :mod:`texttune.training` (it imports transformers and torch).
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler


class EpochSeededSampler(Sampler):
    """Give a ``LengthGroupedSampler`` a generator seeded by ``seed + epoch`` at the start of every epoch.

    ``LengthGroupedSampler`` otherwise draws each epoch's order from the global RNG when the epoch starts;
    a run resumed in the middle of an epoch has a different global RNG state then, so it would see other
    batches than the uninterrupted run. ``Trainer`` calls ``set_epoch`` before it iterates an epoch.

    Args:
        sampler: The length-grouped sampler to drive.
        seed: The run's ``--seed``.
    """

    def __init__(self, sampler: LengthGroupedSampler, seed: int):
        self.sampler = sampler
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        generator = torch.Generator()
        generator.manual_seed(self.seed + int(epoch))
        self.sampler.generator = generator

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        return iter(self.sampler)


class TexttuneTrainer(Trainer):
    """``Trainer`` whose training order depends only on the seed and the epoch (see :class:`EpochSeededSampler`)."""

    # Overridden because the stock length-grouped sampler cannot be re-seeded per epoch from outside.
    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            return EpochSeededSampler(sampler, self.args.seed)
        return sampler
