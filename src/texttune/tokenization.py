"""Tokenizer loading, encoding of single texts and pairs, and the dynamic-padding collator."""

from __future__ import annotations

import logging
from typing import Any

from .errors import ModelError
from .tasks import LABELS, TEXT, TEXT_PAIR

logger = logging.getLogger(__name__)

#: Upper bound for the default ``max_length``: BERT-style position tables stop at 512.
DEFAULT_MAX_LENGTH = 512


def load_tokenizer(model_path: str, *, trust_remote_code: bool = False):
    """Load the tokenizer that belongs to ``model_path`` and give decoder models a pad token.

    Example:
        >>> tok = load_tokenizer("path/to/model")  # doctest: +SKIP
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"could not load a tokenizer from {model_path!r}: {str(exc).splitlines()[0]} "
            "(check --model: a built-in name, a model folder or a hub id)"
        ) from exc
    if tokenizer.pad_token is None:
        # Decoder models (GPT-2, Llama) ship without a pad token; batching needs one.
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    return tokenizer


def resolve_max_length(tokenizer, requested: int | None) -> int:
    """The truncation length: ``requested`` if given, else the model's limit capped at 512."""
    model_limit = getattr(tokenizer, "model_max_length", None) or DEFAULT_MAX_LENGTH
    if model_limit > 100_000:  # tokenizers without a limit report a huge sentinel
        model_limit = DEFAULT_MAX_LENGTH
    default = min(model_limit, DEFAULT_MAX_LENGTH)
    if requested is None:
        return default
    if requested > model_limit:
        logger.warning(
            "--max-length %d exceeds the model's limit %d; using %d", requested, model_limit, model_limit
        )
        return model_limit
    return requested


def encode(batch: dict[str, list[Any]], tokenizer, max_length: int) -> dict[str, list[Any]]:
    """Tokenize a batch of rows; pairs use the tokenizer's real pair encoding (``[CLS] a [SEP] b [SEP]``).

    No padding here: each training batch is padded to its own longest member by the collator.
    """
    pairs = batch.get(TEXT_PAIR)
    return tokenizer(
        batch[TEXT],
        pairs,
        truncation="longest_first" if pairs is not None else True,
        max_length=max_length,
        padding=False,
    )


def drop_untokenizable(
    splits, tokenizer, *, text_column: str = TEXT, text_pair_column: str | None = None, strict: bool = False
):
    """Drop (or with ``--strict`` reject) rows whose text the tokenizer turns into no tokens at all.

    Such texts are not blank, yet hold nothing the tokenizer keeps (zero-width or control characters,
    say): encoded they are only special tokens (``<s></s>``), a row that ties its label to nothing.
    They are dropped where empty texts are (:func:`texttune.data.labels.drop_rows`), with a warning
    that counts them.

    Args:
        splits: A ``DatasetDict`` of prepared splits (columns ``text``, ``text_pair`` for pairs).
        tokenizer: The tokenizer of the model to be trained.
        text_column: The source column of ``text``, for messages.
        text_pair_column: The source column of ``text_pair``, for messages.
        strict: Raise instead of dropping (``--strict``).

    Returns:
        The splits without those rows.

    Raises:
        DataError: Under ``strict`` when there are such rows, or when a split keeps no row.

    Example:
        >>> splits = drop_untokenizable(splits, load_tokenizer("path/to/model"))  # doctest: +SKIP
    """
    import numpy as np
    import pandas as pd

    from .data.labels import drop_rows
    from .errors import DataError

    has = "a text the tokenizer cannot represent (nothing but special tokens)"
    kept = {}
    for name, split in splits.items():
        where = f"the {name} split"
        rows = pd.DataFrame({"row": range(len(split))})
        for column, source in ((TEXT, text_column), (TEXT_PAIR, text_pair_column)):
            if column in split.column_names:
                ids = tokenizer(list(split[column]), add_special_tokens=False, verbose=False)["input_ids"]
                empty = np.array([not row for row in ids], dtype=bool)[rows["row"].to_numpy()]
                rows = drop_rows(
                    rows, empty, where=where, total=len(split), column=source, has=has, strict=strict
                )
        if rows.empty:
            raise DataError(f"{where} has no usable rows: the tokenizer cannot represent any of its texts")
        kept[name] = split if len(rows) == len(split) else split.select(rows["row"].tolist())
    return type(splits)(kept)


def tokenize_dataset(dataset, tokenizer, max_length: int, *, desc: str = "Tokenizing"):
    """Encode a prepared dataset into model inputs, keeping ``labels`` when present."""
    remove = [c for c in dataset.column_names if c != LABELS]
    return dataset.map(
        lambda batch: encode(batch, tokenizer, max_length),
        batched=True,
        remove_columns=remove,
        desc=desc,
    )


def make_collator(tokenizer):
    """Pad each batch only to its longest member."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None)
