"""Training batches built to a token budget from texts of similar length (``--max-tokens-per-batch``).

A fixed number of texts per batch makes the work per step swing with text length: 32 tweets are a few
hundred tokens, 32 news articles sixteen thousand. Packing each batch up to a budget of padded tokens
(batch size x longest text) keeps every step the same size: large batches of short texts keep the
matrix multiplications big enough to run near peak, and long texts no longer blow up memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np

logger = logging.getLogger(__name__)


def token_budget_batches(lengths: Sequence[int], max_tokens: int, seed: int) -> list[list[int]]:
    """Split all indices into batches whose padded size (count x longest) stays within ``max_tokens``.

    Texts are sorted by length with a random tie-break, then cut greedily into batches. The batch sizes
    depend only on the multiset of lengths, so every epoch (every ``seed``) has the same number of
    batches, which ``Trainer`` needs to plan its schedule; which texts share a batch changes with the seed.
    A text longer than the budget gets a batch of its own.

    Args:
        lengths: Token count of each training example.
        max_tokens: Budget of padded tokens per batch.
        seed: Seed of the tie-break and of the batch order.

    Returns:
        Batches of indices, in random order.

    Example:
        >>> token_budget_batches([3, 5, 4, 10], max_tokens=12, seed=0)  # doctest: +SKIP
        [[3], [0, 2], [1]]
    """
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.lexsort((rng.random(len(lengths)), lengths))  # by length, random among equal lengths
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending: the newcomer is the longest, so it sets the padded length.
        if current and (len(current) + 1) * int(lengths[index]) > max_tokens:
            batches.append(current)
            current = []
        current.append(int(index))
    if current:
        batches.append(current)
    return [batches[i] for i in rng.permutation(len(batches))]


class TokenBudgetBatchSampler:
    """A batch sampler (for ``DataLoader(batch_sampler=...)``) over :func:`token_budget_batches`.

    Args:
        lengths: Token count of each training example.
        max_tokens: Budget of padded tokens per batch.
        seed: Base seed; epoch ``e`` uses ``seed + e`` (set by ``Trainer`` through :meth:`set_epoch`).
    """

    def __init__(self, lengths: Sequence[int], max_tokens: int, seed: int = 42):
        self.lengths = list(lengths)
        self.max_tokens = max_tokens
        self.seed = seed
        self.epoch = 0
        self._count = len(token_budget_batches(self.lengths, max_tokens, seed))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[list[int]]:
        batches = token_budget_batches(self.lengths, self.max_tokens, self.seed + self.epoch)
        self.epoch += 1  # a new order next time even if nobody calls set_epoch
        yield from batches


def make_token_budget_trainer_class(base=None):
    """A ``Trainer`` subclass (of ``base``, default ``Trainer``) whose training batches come from
    :class:`TokenBudgetBatchSampler`.

    Why a subclass: ``Trainer`` builds its training DataLoader with a fixed ``batch_size`` (its only
    variable-size sampler, ``batch_rebalance``, keeps a fixed number of samples per step), and a batch
    sampler is not one of its extension points, so ``get_train_dataloader`` is overridden, and nothing else.
    Evaluation keeps ``--eval-batch-size``.
    """
    from torch.utils.data import DataLoader
    from transformers import Trainer

    class TokenBudgetTrainer(base or Trainer):
        def __init__(self, *args, max_tokens_per_batch: int, **kwargs):
            super().__init__(*args, **kwargs)
            self.max_tokens_per_batch = max_tokens_per_batch

        def get_train_dataloader(self) -> DataLoader:
            dataset = self._remove_unused_columns(self.train_dataset, description="Training")
            if "input_ids" not in dataset.column_names:  # e.g. cached features of a frozen encoder
                logger.warning("--max-tokens-per-batch applies to token inputs only; using --batch-size")
                return super().get_train_dataloader()
            lengths = [len(ids) for ids in dataset["input_ids"]]
            sampler = TokenBudgetBatchSampler(lengths, self.max_tokens_per_batch, seed=self.args.seed)
            logger.info(
                "token-budget batches: %d per epoch, %.1f texts each on average (budget %d tokens)",
                len(sampler),
                len(lengths) / max(len(sampler), 1),
                self.max_tokens_per_batch,
            )
            loader = DataLoader(
                dataset,
                batch_sampler=sampler,
                collate_fn=self.data_collator,
                num_workers=self.args.dataloader_num_workers,
                pin_memory=self.args.dataloader_pin_memory,
            )
            return self.accelerator.prepare(loader)

    return TokenBudgetTrainer
