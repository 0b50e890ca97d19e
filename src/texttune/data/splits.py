"""Splits: picking a split of a DatasetDict, holding out a validation split, and seeded subsets.

A split is always picked the same way (:func:`pick_split`): the first of the preferred names that the
DatasetDict has, else its only split. Subsets (``--max-train-samples``, ``--max-eval-samples``) are
always drawn by :func:`subset`.

Example:
    >>> import pandas as pd
    >>> subset(pd.DataFrame({"n": range(10)}), 3, seed=0)["n"].tolist()
    [2, 4, 6]
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import TypeVar

import datasets
import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import DataError, first_line
from ..tasks import LABELS, SINGLE_LABEL

logger = logging.getLogger(__name__)

#: Split names looked for, in order, for the training, validation and test data and for evaluation.
TRAIN_SPLITS = ("train",)
VALIDATION_SPLITS = ("validation", "valid", "dev", "val")
TEST_SPLITS = ("test",)
EVAL_SPLITS = ("test", *VALIDATION_SPLITS)

Rows = TypeVar("Rows", pd.DataFrame, datasets.Dataset)


def describe(flag: str, source: str, split: str | None = None) -> str:
    """How error messages name a source: ``--data reviews.csv`` or ``--data glue (split 'test')``."""
    return f"{flag} {source}" + (f" (split {split!r})" if split else "")


@dataclass
class PickedSplit:
    """One split of a source.

    Attributes:
        dataset: The split's rows.
        where: The source as error messages name it (with the split name when there was a choice).
        name: The split's name in the DatasetDict, or None when the source is a single Dataset.
    """

    dataset: datasets.Dataset
    where: str
    name: str | None


def find_split(
    data: datasets.DatasetDict, preferred: tuple[str, ...], exclude: str | None = None
) -> str | None:
    """The first of the ``preferred`` split names that ``data`` has (other than ``exclude``), or None."""
    return next((name for name in preferred if name in data and name != exclude), None)


def pick_split(
    data: datasets.Dataset | datasets.DatasetDict,
    preferred: tuple[str, ...],
    source: str,
    flag: str,
    *,
    any_split: bool = False,
) -> PickedSplit:
    """The Dataset itself, or from a DatasetDict the first preferred split present, else its only split.

    Args:
        data: What :func:`~texttune.data.read_source` returned.
        preferred: Split names to look for, in order (e.g. :data:`EVAL_SPLITS`).
        source: The source as the user gave it, for messages.
        flag: The option that named ``source``, for messages.
        any_split: With no preferred split present, take the first split even when there are several.

    Returns:
        The split, how messages name it, and its name.

    Raises:
        DataError: A DatasetDict with several splits and none of the preferred ones (unless ``any_split``).

    Example:
        >>> two = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"]}),
        ...                             "test": datasets.Dataset.from_dict({"text": ["b"]})})
        >>> pick = pick_split(two, EVAL_SPLITS, "demo", "--data")
        >>> pick.name, pick.where
        ('test', "--data demo (split 'test')")
    """
    if isinstance(data, datasets.Dataset):
        return PickedSplit(data, describe(flag, source), None)
    name = find_split(data, preferred)
    if name is None:
        if len(data) != 1 and not any_split:
            raise DataError(
                f"{flag} {source} is a DatasetDict with splits {', '.join(sorted(data))} but none named "
                f"{preferred[0]!r}; save the split you want on its own (dataset_dict[name].save_to_disk(...))"
            )
        name = next(iter(data))
    return PickedSplit(data[name], describe(flag, source, name if len(data) > 1 else None), name)


def subset(data: Rows, limit: int | None, seed: int) -> Rows:
    """A seeded random subset of at most ``limit`` rows, in the original order.

    The same ``seed`` and row count give the same rows, for a DataFrame and a Dataset alike.

    Args:
        data: The rows.
        limit: The most rows to keep; None keeps all.
        seed: The random seed (``--data-seed`` when preparing data; 42 for ``texttune evaluate``).

    Returns:
        ``data`` itself when it has at most ``limit`` rows, else the chosen rows.
    """
    if limit is None or len(data) <= limit:
        return data
    rows = np.sort(np.random.default_rng(seed).permutation(len(data))[:limit])
    if isinstance(data, pd.DataFrame):
        return data.iloc[rows]
    return data.select(rows.tolist())


def split_off_validation(
    frame: pd.DataFrame, task: str, cfg: DataConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    if len(frame) < 2:
        raise DataError(
            f"--data has only {len(frame)} usable row; at least 2 are needed to hold out a validation split, "
            f"or pass --validation"
        )
    stratify = None
    if task == SINGLE_LABEL:
        counts = Counter(frame[LABELS])
        rare = [name for name, count in counts.items() if count < 2]
        if rare:
            logger.warning(
                "%d class(es) have fewer than 2 training rows; the validation split is not stratified",
                len(rare),
            )
        else:
            stratify = frame[LABELS].to_numpy()
    rows = np.arange(len(frame))
    try:
        try:
            train_rows, validation_rows = train_test_split(
                rows, test_size=cfg.validation_split, random_state=cfg.data_seed, stratify=stratify
            )
        except ValueError:
            if stratify is None:
                raise
            # Too few held-out rows to give every class one: fall back to a plain random split.
            logger.warning(
                "a --validation-split of %s is too small to hold out every class; the split is not stratified",
                cfg.validation_split,
            )
            train_rows, validation_rows = train_test_split(
                rows, test_size=cfg.validation_split, random_state=cfg.data_seed
            )
    except ValueError as exc:
        raise DataError(
            f"cannot hold out --validation-split {cfg.validation_split} of {len(frame)} rows ({first_line(exc)}); "
            f"change --validation-split or pass --validation"
        ) from None
    return frame.iloc[np.sort(train_rows)], frame.iloc[np.sort(validation_rows)]
