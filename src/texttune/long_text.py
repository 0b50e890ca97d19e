"""Texts longer than the model's window: keep the head and the tail, or cut them into sliding windows.

``truncate`` (the tokenizer's own truncation) keeps the first ``max_length`` tokens. ``head-tail`` keeps
the first quarter and the last three quarters of the token budget, which Sun et al. (2019, "How to
Fine-Tune BERT for Text Classification?") found best for long reviews and news. ``sliding`` cuts a text
into overlapping windows of ``max_length`` tokens; each window is a training example with the document's
label, and at prediction time the windows' logits are averaged back into one row per document.

Both modes tokenize the whole text once with the special tokens and then select token positions, so
they work with any tokenizer (``[CLS] ... [SEP]``, ``<s> ... </s>`` or none at all).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ConfigError
from .tasks import LABELS, TEXT, TEXT_PAIR

logger = logging.getLogger(__name__)

TRUNCATE = "truncate"
HEAD_TAIL = "head-tail"
SLIDING = "sliding"

#: Column holding a window's document index in an encoded ``sliding`` dataset.
DOCUMENT_ID = "document_id"

#: Share of the token budget that ``head-tail`` gives to the start of the text.
HEAD_SHARE = 0.25


def default_stride(max_length: int) -> int:
    """Tokens shared by neighbouring windows when ``--stride`` is not given: a quarter of the window."""
    return max_length // 4


def check_long_text(mode: str, max_length: int, stride: int | None, has_pairs: bool) -> int:
    """Validate the long-text settings against the resolved ``max_length``; returns the stride to use."""
    if mode != TRUNCATE and has_pairs:
        raise ConfigError(
            f"--long-text {mode} works on single texts, not sentence pairs; use --long-text truncate"
        )
    stride = default_stride(max_length) if stride is None else stride
    if mode == SLIDING and stride >= max_length // 2:
        raise ConfigError(f"--stride {stride} must be below half of --max-length {max_length}")
    return stride


def _special_layout(mask: Sequence[int]) -> tuple[int, int]:
    """(leading, trailing) special tokens of one encoded text, e.g. (1, 1) for ``[CLS] ... [SEP]``."""
    lead = 0
    while lead < len(mask) and mask[lead]:
        lead += 1
    trail = 0
    while trail < len(mask) - lead and mask[len(mask) - 1 - trail]:
        trail += 1
    return lead, trail


def _windows(length: int, mask: Sequence[int], mode: str, max_length: int, stride: int) -> list[list[int]]:
    """Token positions to keep, one list per window (one window unless ``sliding``)."""
    if length <= max_length:
        return [list(range(length))]
    lead, trail = _special_layout(mask)
    budget = max_length - lead - trail
    head = list(range(lead))
    tail = list(range(length - trail, length))
    content = range(lead, length - trail)
    if mode == HEAD_TAIL:
        n_head = int(budget * HEAD_SHARE)
        n_tail = budget - n_head
        return [head + list(content[:n_head]) + list(content[len(content) - n_tail :]) + tail]
    step = budget - stride
    windows = []
    for start in range(0, len(content), step):
        windows.append(head + list(content[start : start + budget]) + tail)
        if start + budget >= len(content):
            break
    return windows


def encode_long(
    texts: Sequence[str], tokenizer, max_length: int, mode: str, stride: int
) -> tuple[dict[str, list[list[int]]], list[int]]:
    """Encode texts under ``mode``; returns the model inputs (one row per window) and each row's text index.

    Example:
        >>> enc, docs = encode_long(["a long text ..."], tok, 128, "sliding", 32)  # doctest: +SKIP
    """
    if mode == TRUNCATE:
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
        return {k: list(v) for k, v in encoded.items()}, list(range(len(texts)))
    full = tokenizer(list(texts), truncation=False, return_special_tokens_mask=True, verbose=False)
    keys = [k for k in full if k != "special_tokens_mask"]
    out: dict[str, list[list[int]]] = {k: [] for k in keys}
    documents: list[int] = []
    for i, ids in enumerate(full["input_ids"]):
        for positions in _windows(len(ids), full["special_tokens_mask"][i], mode, max_length, stride):
            for key in keys:
                row = full[key][i]
                out[key].append([row[p] for p in positions])
            documents.append(i)
    return out, documents


def tokenize_long_dataset(dataset, tokenizer, max_length: int, mode: str, stride: int, *, desc: str = ""):
    """Encode a prepared dataset under ``head-tail`` or ``sliding``; windows inherit their document's label.

    Returns a dataset with one row per window and a ``document_id`` column (the row's index in ``dataset``).
    """
    if TEXT_PAIR in dataset.column_names:
        raise ConfigError(
            f"--long-text {mode} works on single texts, not sentence pairs; use --long-text truncate"
        )

    def encode_batch(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        encoded, documents = encode_long(batch[TEXT], tokenizer, max_length, mode, stride)
        encoded[DOCUMENT_ID] = [indices[d] for d in documents]
        if LABELS in batch:
            encoded[LABELS] = [batch[LABELS][d] for d in documents]
        return encoded

    encoded = dataset.map(
        encode_batch,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        desc=desc or f"Tokenizing ({mode})",
    )
    if mode == SLIDING:
        logger.info("%d texts became %d windows of at most %d tokens", len(dataset), len(encoded), max_length)
    return encoded


def tokenize_splits(splits, tokenizer, max_length: int, mode: str, stride: int) -> dict[str, Any]:
    """Encode every split of a prepared ``DatasetDict`` under ``mode`` (the tokenizer truncates by default)."""
    from .tokenization import tokenize_dataset

    if mode == TRUNCATE:
        return {name: tokenize_dataset(split, tokenizer, max_length) for name, split in splits.items()}
    return {
        name: tokenize_long_dataset(split, tokenizer, max_length, mode, stride)
        for name, split in splits.items()
    }


def aggregate_windows(logits: np.ndarray, documents: Sequence[int], n_documents: int) -> np.ndarray:
    """Average the logits of each document's windows: shape (windows, k) -> (n_documents, k).

    Example:
        >>> aggregate_windows(np.array([[1.0], [3.0], [5.0]]), [0, 0, 1], 2).tolist()
        [[2.0], [5.0]]
    """
    documents = np.asarray(documents)
    sums = np.zeros((n_documents, logits.shape[1]), dtype=np.float64)
    np.add.at(sums, documents, logits)
    counts = np.bincount(documents, minlength=n_documents).reshape(-1, 1)
    return (sums / np.maximum(counts, 1)).astype(logits.dtype)


def document_compute_metrics(compute_metrics, documents: Sequence[int]):
    """Wrap a ``compute_metrics`` so the Trainer's per-epoch evaluation scores documents, not windows.

    The evaluation set is read in order, so prediction row ``i`` belongs to ``documents[i]``.
    """
    from transformers import EvalPrediction

    documents = np.asarray(documents)
    n_documents = int(documents.max()) + 1 if len(documents) else 0
    first = np.unique(documents, return_index=True)[1]  # each document's first window holds its label

    def compute(eval_prediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        if isinstance(logits, tuple):
            logits = logits[0]
        labels = np.asarray(eval_prediction.label_ids)
        if len(logits) != len(documents):  # not the evaluation set we were built for
            return compute_metrics(eval_prediction)
        merged = aggregate_windows(np.asarray(logits), documents, n_documents)
        return compute_metrics(EvalPrediction(predictions=merged, label_ids=labels[first]))

    return compute
