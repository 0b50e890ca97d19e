"""The one place a ``Trainer`` is built (:func:`make_trainer`), for fine-tuning and masked-LM pretraining.

``TexttuneTrainer`` is transformers' ``Trainer`` with a length-grouped data order that a resumed run
repeats, and which runs a batch of more padded tokens than ``--micro-batch-tokens`` in slices whose
gradients add up to the batch's (the same update in less memory); ``--max-tokens-per-batch`` swaps in
token-budget batches. Imported lazily by :mod:`texttune.training` and :mod:`texttune.pretraining` (it
imports transformers and torch).
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch.utils.data import Sampler
from transformers import PrinterCallback, Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

logger = logging.getLogger(__name__)


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


def micro_batches(inputs: dict, max_tokens: int) -> list[dict]:
    """Cut a batch into slices of rows with at most ``max_tokens`` padded tokens each (at least one row).

    Every tensor whose first dimension is the batch's rows is sliced; anything else goes to every slice.
    A batch without ``input_ids`` (cached features), or within the budget, or ``max_tokens`` 0, stays whole.

    Example:
        >>> batch = {"input_ids": torch.zeros(5, 100, dtype=torch.long), "labels": torch.arange(5)}
        >>> [len(part["labels"]) for part in micro_batches(batch, 200)]
        [2, 2, 1]
    """
    ids = inputs.get("input_ids")
    if not max_tokens or not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.numel() <= max_tokens:
        return [inputs]
    rows, per_slice = ids.shape[0], max(1, max_tokens // ids.shape[1])

    def part(value, start):
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows:
            return value[start : start + per_slice]
        return value

    return [{key: part(value, start) for key, value in inputs.items()} for start in range(0, rows, per_slice)]


class TexttuneTrainer(Trainer):
    """``Trainer`` whose training order depends only on the seed and the epoch (see :class:`EpochSeededSampler`),
    whose loss is always the batch's mean, and which runs a batch over ``micro_batch_tokens`` padded tokens
    in slices (see :func:`micro_batches`).

    Args:
        micro_batch_tokens: Slice training batches of more padded tokens than this (0: never).
        *args, **kwargs: ``Trainer``'s.
    """

    # Every loss is its batch's mean, which Trainer divides by the gradient accumulation steps. Left to
    # itself, Trainer passes models that take **kwargs the label count of all accumulated batches (and
    # multiplies the loss by the process count), but BERT-style classifiers ignore that count and return
    # a mean, so their gradients came out accumulation-steps (and processes) times too large.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, micro_batch_tokens: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.micro_batch_tokens = micro_batch_tokens
        self._loss_weight = 1.0
        self._said_sliced = False

    # Overridden to turn the label count off (see loss_is_scaled_for_ga).
    def _get_num_items_in_batch(self, batch_samples, device):
        return None

    # Overridden because the stock length-grouped sampler cannot be re-seeded per epoch from outside.
    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            return EpochSeededSampler(sampler, self.args.seed)
        return sampler

    # Overridden to run a long batch in slices: memory grows with rows x length (attention with its
    # square), and 32 texts of 512 tokens need over 20 GB for a 12-layer model. Each slice's loss is its
    # mean times its share of the rows, so the slices' gradients add up to the whole batch's.
    def training_step(self, model, inputs, num_items_in_batch=None):
        parts = micro_batches(inputs, self.micro_batch_tokens)
        if len(parts) == 1:
            return super().training_step(model, inputs, num_items_in_batch)
        rows, total = len(inputs["input_ids"]), 0.0
        if not self._said_sliced:
            self._said_sliced = True
            logger.info(
                "a batch of %d texts x %d tokens runs in %d slices of the same update (--micro-batch-tokens %d)",
                rows,
                inputs["input_ids"].shape[1],
                len(parts),
                self.micro_batch_tokens,
            )
        try:
            for index, part in enumerate(parts):
                self._loss_weight = len(part["input_ids"]) / rows
                # Across processes, the slices' summed gradients are synchronised once, with the last slice.
                last = index == len(parts) - 1
                with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                    total = total + super().training_step(model, part, num_items_in_batch)
        finally:
            self._loss_weight = 1.0
        return total

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self._loss_weight == 1.0:
            return result
        if return_outputs:
            return result[0] * self._loss_weight, result[1]
        return result * self._loss_weight


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
    micro_batch_tokens: int = 0,
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
        micro_batch_tokens: Run a training batch of more padded tokens in slices (0: never).
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
        micro_batch_tokens=micro_batch_tokens,
        **extra,
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    return trainer
