"""Label values -> class names, the label kind, the task, the training label names, and encoded labels.

Labels are class *names*: integer labels become ``"0"``, ``"1"``, ...; whole-number floats and strings
such as ``"1.0"`` name the same class as ``1``. Label names are sorted in natural order (numbers
numerically, ``"item2"`` before ``"item10"``); class ids follow that order.

Example:
    >>> label_name(1.0), label_name("1.0"), sort_label_names(["item10", "item2"])
    ('1', '1', ['item2', 'item10'])
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import DataError
from ..tasks import LABELS, MULTI_LABEL, REGRESSION, SINGLE_LABEL

logger = logging.getLogger(__name__)

_INTEGRAL = re.compile(r"[+-]?\d+(\.0*)?")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def is_listlike(value: Any) -> bool:
    """Whether a label value holds several labels (a list, tuple or array)."""
    return isinstance(value, (list, tuple, np.ndarray))


def is_missing(value: Any) -> bool:
    """Whether a cell is empty: None, NaN, NA, NaT or a blank string."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    return value is pd.NA or value is pd.NaT


def label_name(value: Any) -> str:
    """The class name of a scalar label: ``1``, ``1.0`` and ``"1.0"`` all name class ``"1"``."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    if _INTEGRAL.fullmatch(text) and "." in text:
        return str(int(float(text)))
    return text


def as_number(value: Any) -> float | None:
    """The value as a float when it is a number or a numeric string (not a bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, int(c), c) if c.isdigit() else (1, 0, c.lower()) for c in re.split(r"(\d+)", name))


def sort_label_names(names: Iterable[str]) -> list[str]:
    """Label names in natural order: numbers numerically, then ``item2`` before ``item10``.

    Example:
        >>> sort_label_names(["10", "9", "-1"]), sort_label_names(["b", "item10", "item2", "A"])
        (['-1', '9', '10'], ['A', 'b', 'item2', 'item10'])
    """
    names = sorted(set(names))
    if all(as_number(n) is not None for n in names):
        return sorted(names, key=lambda n: (as_number(n), n))
    return sorted(names, key=lambda n: (_natural_key(n), n))


@dataclass
class LabelledRows:
    """One split's clean rows (columns text, text_pair for pairs, label with raw values) and its origin.

    Attributes:
        frame: The rows.
        where: The source as error messages name it (``--validation val.csv``).
    """

    frame: pd.DataFrame
    where: str


def label_kind(values: list[Any]) -> str:
    """``list``, ``int`` (whole numbers), ``float`` (numbers, some fractional) or ``string``."""
    numbers = []
    for value in values:
        if is_listlike(value):
            return "list"
        number = as_number(value)
        if number is None:
            kind = "string"
            break
        numbers.append(number)
    else:
        kind = "int" if all(n.is_integer() for n in numbers) else "float"
    if kind == "string" and any(is_listlike(v) for v in values):
        return "list"
    return kind


def resolve_task(cfg: DataConfig, kind: str, label_column: str, where: str) -> str:
    """``--task``, or with ``auto`` the task the label kind implies; rejects a task the labels cannot have."""
    if cfg.task == "auto":
        if kind == "list" or cfg.label_delimiter is not None:
            task = MULTI_LABEL
        elif kind == "float":
            task = REGRESSION
        else:
            task = SINGLE_LABEL
        if task == SINGLE_LABEL and kind == "int":
            logger.info(
                "labels in %r are whole numbers: each is a class name; pass --task regression for a numeric target",
                label_column,
            )
        return task
    if cfg.task == SINGLE_LABEL and kind == "list":
        raise DataError(
            f"the label column {label_column!r} of {where} holds lists of labels; use --task multi_label "
            f"(or --task auto) for several labels per text"
        )
    if cfg.task == REGRESSION and kind in ("list", "string"):
        raise DataError(
            f"--task regression needs numeric labels, but column {label_column!r} of {where} holds text; "
            f"check --label-column, or use --task single_label"
        )
    return cfg.task


def _label_sets(values: Iterable[Any], delimiter: str | None) -> list[list[str]]:
    sets = []
    for value in values:
        if is_listlike(value):
            names = [label_name(v) for v in value if not is_missing(v)]
        elif delimiter is not None and isinstance(value, str):
            names = [part.strip() for part in value.split(delimiter)]
        else:
            names = [label_name(value)]
        sets.append(list(dict.fromkeys(n for n in names if n)))
    return sets


def _numbers(values: Iterable[Any], column: str, where: str) -> list[float]:
    numbers = []
    for value in values:
        number = None if is_listlike(value) else as_number(value)
        if number is None:
            raise DataError(
                f"regression needs numeric labels, but column {column!r} of {where} holds {value!r}; check "
                f"--label-column, or use --task single_label"
            )
        numbers.append(number)
    return numbers


def _unseen_error(split: LabelledRows, unseen: Iterable[str], label_names: list[str]) -> DataError:
    unseen = sort_label_names(unseen)
    shown = ", ".join(repr(n) for n in unseen[:5]) + (
        f" (and {len(unseen) - 5} more)" if len(unseen) > 5 else ""
    )
    known = ", ".join(label_names[:20]) + (", ..." if len(label_names) > 20 else "")
    return DataError(
        f"{split.where} has labels never seen in training: {shown}; known labels: {known} (remove those rows, "
        f"or train with data that has them)"
    )


def encode_labels(
    split: LabelledRows,
    task: str,
    label_names: list[str],
    delimiter: str | None,
    label_column: str,
    strict: bool,
) -> pd.DataFrame:
    """The split with a ``labels`` column encoded for ``task`` (label names already fixed)."""
    frame = split.frame.drop(columns="label")
    raw = split.frame["label"].tolist()
    if task == REGRESSION:
        frame[LABELS] = _numbers(raw, label_column, split.where)
        return frame
    index = {name: i for i, name in enumerate(label_names)}
    if task == SINGLE_LABEL:
        if any(is_listlike(v) for v in raw):
            raise DataError(
                f"the label column {label_column!r} of {split.where} holds lists of labels, but the task is "
                f"single_label; use --task multi_label"
            )
        names = [label_name(v) for v in raw]
        unseen = set(names) - set(index)
        if unseen:
            raise _unseen_error(split, unseen, label_names)
        frame[LABELS] = [index[n] for n in names]
        return frame
    sets = _label_sets(raw, delimiter)
    unseen = {n for labels in sets for n in labels} - set(index)
    if unseen:
        raise _unseen_error(split, unseen, label_names)
    frame[LABELS] = [_multi_hot(labels, index) for labels in sets]
    return _drop_unlabelled(frame, sets, split, label_column, strict)


def _multi_hot(labels: list[str], index: dict[str, int]) -> list[float]:
    vector = [0.0] * len(index)
    for name in labels:
        vector[index[name]] = 1.0
    return vector


def drop_rows(
    frame: pd.DataFrame,
    flagged,
    *,
    where: str,
    total: int,
    column: str,
    has: str,
    strict: bool,
    logged_as: str | None = None,
) -> pd.DataFrame:
    """Drop the rows ``flagged`` (a boolean mask) with a warning, or refuse them all under ``--strict``.

    ``has`` words what is wrong with them (``"a missing label"``); ``logged_as`` words it in the warning
    when that reads better otherwise.
    """
    count = int(np.asarray(flagged).sum())
    if not count:
        return frame
    if strict:
        raise DataError(
            f"{where}: {count} of {total} rows have {has} in column {column!r}; fix or remove them, or leave "
            "out --strict to skip them with a warning"
        )
    logger.warning(
        "%s: dropped %d of %d rows with %s in column %r", where, count, total, logged_as or has, column
    )
    return frame[~np.asarray(flagged)]


def _drop_unlabelled(
    frame: pd.DataFrame, sets: list[list[str]], split: LabelledRows, column: str, strict: bool
) -> pd.DataFrame:
    empty = np.array([not labels for labels in sets], dtype=bool)
    if not empty.any():
        return frame
    frame = drop_rows(
        frame,
        empty,
        where=split.where,
        total=len(frame),
        column=column,
        has="no label",
        strict=strict,
        logged_as="an empty label set",
    ).reset_index(drop=True)
    if frame.empty:
        raise DataError(
            f"{split.where} has no usable rows: every row has an empty label set in column {column!r}"
        )
    return frame


def training_label_names(
    split: LabelledRows, task: str, delimiter: str | None, label_column: str
) -> list[str]:
    """The class names of the training rows, sorted (``[]`` for regression); at least 2 are needed."""
    values = split.frame["label"].tolist()
    if task == REGRESSION:
        return []
    if task == SINGLE_LABEL:
        names = sort_label_names(label_name(v) for v in values if not is_listlike(v))
    else:
        names = sort_label_names(n for labels in _label_sets(values, delimiter) for n in labels)
    if len(names) < 2:
        found = f"a single class {names[0]!r}" if names else "no labels"
        raise DataError(
            f"the training data ({split.where}) has {found} in column {label_column!r}; classification needs "
            f"at least 2 classes (check --label-column{', or use --task regression' if task == SINGLE_LABEL else ''})"
        )
    return names
