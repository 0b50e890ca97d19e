"""The one place a ``Trainer`` is built (:func:`make_trainer`), for fine-tuning and masked-LM pretraining.

``TexttuneTrainer`` is transformers' ``Trainer`` with a length-grouped data order that a resumed run
repeats; ``--max-tokens-per-batch`` swaps in token-budget batches. Imported lazily by
:mod:`texttune.training` and :mod:`texttune.pretraining` (it imports transformers and torch).
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler
from transformers import PrinterCallback, Trainer
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


def make_trainer(
    model,
    args,
    *,
    train_dataset,
    eval_dataset=None,
    tokenizer=None,
    collator=None,
    compute_metrics=None,
    compute_loss=None,
    callbacks=None,
    max_tokens_per_batch: int | None = None,
    progress: bool = True,
) -> Trainer:
    """A :class:`TexttuneTrainer` (token-budget batches with ``max_tokens_per_batch``).

    Args:
        model: The module to optimise.
        args: Its ``TrainingArguments``.
        train_dataset: Rows the collator batches.
        eval_dataset: Evaluated on the ``args`` schedule, when given.
        tokenizer: Saved with checkpoints (``processing_class``).
        collator: Batches rows.
        compute_metrics: Metrics from an ``EvalPrediction``.
        compute_loss: A loss function replacing the model's (``compute_loss_func``).
        callbacks: Extra ``TrainerCallback`` objects.
        max_tokens_per_batch: Build training batches up to this many padded tokens.
        progress: Show progress bars; without them the log dicts are not printed either (the run's
            training log keeps them).

    Returns:
        The trainer, ready for ``train()``.
    """
    trainer_class, extra = TexttuneTrainer, {}
    if max_tokens_per_batch:
        from .batching import make_token_budget_trainer_class

        trainer_class = make_token_budget_trainer_class(TexttuneTrainer)
        extra = {"max_tokens_per_batch": max_tokens_per_batch}
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
        compute_loss_func=compute_loss,
        callbacks=list(callbacks or []),
        **extra,
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    return trainer
