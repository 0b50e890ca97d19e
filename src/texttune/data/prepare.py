"""Raw rows -> prepared splits: clean rows, resolve the task and labels, split, subset, encode.

:func:`load_training_data` prepares ``--data`` (and ``--validation`` / ``--test``) for training;
:func:`load_labelled` prepares labelled data for a trained run, encoded like its training data.
``ClassLabel`` columns of saved or hub datasets are turned into their names; id ``-1`` (no label)
counts as a missing label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import datasets
import pandas as pd

from ..config import DataConfig
from ..errors import DataError
from ..tasks import LABELS, MULTI_LABEL, SINGLE_LABEL, TASKS, TEXT, TEXT_PAIR
from .columns import Columns, resolve_columns
from .labels import (
    LabelledRows,
    drop_rows,
    encode_labels,
    is_listlike,
    is_missing,
    label_kind,
    label_name,
    resolve_task,
    training_label_names,
)
from .sources import read_source
from .splits import (
    EVAL_SPLITS,
    TEST_SPLITS,
    TRAIN_SPLITS,
    VALIDATION_SPLITS,
    PickedSplit,
    describe,
    find_split,
    pick_split,
    split_off_validation,
    subset,
)

logger = logging.getLogger(__name__)

_SPLIT_ORDER = ("train", "validation", "test")
ROW = "row"
"""Column of a cleaned frame holding each row's 0-based position in its source (header excluded)."""


@dataclass
class PreparedData:
    """Training data ready for tokenization.

    Attributes:
        splits: ``train``, ``validation`` and, when given or built in, ``test``; columns ``text``,
            ``text_pair`` (pairs only) and ``labels`` (int64 class id, float32 multi-hot list, or float32).
        task: ``single_label``, ``multi_label`` or ``regression``.
        label_names: Class names in id order; ``[]`` for regression.
        text_column: The source column used as the text (resolved, for the saved run config).
        text_pair_column: The source column used as the second text, or None.
        label_column: The source column used as the label.
    """

    splits: datasets.DatasetDict
    task: str
    label_names: list[str]
    text_column: str
    text_pair_column: str | None
    label_column: str


def _source_frame(dataset: datasets.Dataset, columns: Columns) -> pd.DataFrame:
    """The used columns as a frame, with ``ClassLabel`` ids turned into their names."""
    label_column = columns.label
    used = [c for c in dict.fromkeys((columns.text, columns.pair, label_column)) if c is not None]
    frame = dataset.select_columns(used).to_pandas()
    feature = dataset.features.get(label_column)
    inner = getattr(feature, "feature", None)
    if isinstance(feature, datasets.ClassLabel):
        names = feature.names
        frame[label_column] = [None if is_missing(v) or v < 0 else names[int(v)] for v in frame[label_column]]
    elif isinstance(inner, datasets.ClassLabel):
        names = inner.names
        frame[label_column] = [
            None if not is_listlike(v) else [names[int(i)] for i in v if i >= 0] for v in frame[label_column]
        ]
    return frame


def _clean_rows(
    dataset: datasets.Dataset, columns: Columns, where: str, flag: str, strict: bool, optional: bool = False
) -> LabelledRows | None:
    """Keep the used columns; drop (or with --strict reject) rows with an empty text or a missing label.

    Returns None when ``optional`` and no row has a label (an unlabelled test split of a hub dataset).
    """
    source = _source_frame(dataset, columns)
    frame = pd.DataFrame(
        {
            name: pd.Series(source[column].tolist(), dtype=object)
            for name, column in ((TEXT, columns.text), (TEXT_PAIR, columns.pair), ("label", columns.label))
            if column is not None
        }
    )
    total = len(frame)
    frame[ROW] = range(total)
    for name, column in ((TEXT, columns.text), (TEXT_PAIR, columns.pair)):
        if column is not None:
            empty = frame[name].map(is_missing)
            has = "an empty or missing text"
            frame = drop_rows(frame, empty, where=where, total=total, column=column, has=has, strict=strict)
    missing = frame["label"].map(is_missing)
    if missing.all() and optional:
        logger.warning("%s has no labels in column %r; it is not used", where, columns.label)
        return None
    has = "a missing label"
    frame = drop_rows(frame, missing, where=where, total=total, column=columns.label, has=has, strict=strict)
    if frame.empty:
        raise DataError(
            f"{where} has no usable rows: all {total} rows have an empty text or a missing label "
            f"(columns {columns.text!r} and {columns.label!r}; check {flag})"
        )
    for name in (TEXT, TEXT_PAIR):
        if name in frame:
            frame[name] = [v if isinstance(v, str) else label_name(v) for v in frame[name]]
    return LabelledRows(frame.reset_index(drop=True), where)


def _features(task: str, pair: bool) -> datasets.Features:
    features: dict[str, Any] = {TEXT: datasets.Value("string")}
    if pair:
        features[TEXT_PAIR] = datasets.Value("string")
    if task == SINGLE_LABEL:
        features[LABELS] = datasets.Value("int64")
    elif task == MULTI_LABEL:
        sequence = getattr(datasets, "List", None) or datasets.Sequence  # List is new in datasets 4
        features[LABELS] = sequence(datasets.Value("float32"))
    else:
        features[LABELS] = datasets.Value("float32")
    return datasets.Features(features)


def _to_dataset(frame: pd.DataFrame, task: str, pair: bool) -> datasets.Dataset:
    features = _features(task, pair)
    return datasets.Dataset.from_dict({name: frame[name].tolist() for name in features}, features=features)


def load_training_data(cfg: DataConfig) -> PreparedData:
    """Read, check and split the training data described by ``cfg``.

    Steps: read ``--data`` (and ``--validation`` / ``--test``); resolve the text, pair and label
    columns on the training data; drop rows with empty texts or missing labels (``--strict``:
    fail instead); detect the task; fix the label names from the training rows; encode every split.
    Without ``--validation`` a DatasetDict's ``validation`` split is used, else a share
    ``--validation-split`` of the training rows is held out: stratified by class for single-label
    data, but a plain random split when some class has fewer than 2 rows or the held-out share is
    too small to include every class (a warning says so); a random split for multi-label and
    regression. Then ``--max-train-samples`` / ``--max-eval-samples`` take seeded random subsets.

    Args:
        cfg: The data options.

    Returns:
        The prepared splits with the task, label names and the source columns used.

    Raises:
        DataError: Missing or unreadable sources, undetectable columns, fewer than 2 classes, labels in
            validation/test never seen in training, no usable rows.

    Example:
        >>> from texttune.config import DataConfig
        >>> data = load_training_data(DataConfig(data="reviews.csv", max_train_samples=100))  # doctest: +SKIP
        >>> data.splits["train"].column_names  # doctest: +SKIP
        ['text', 'labels']
    """
    labelled = read_labelled(cfg)
    frames, columns, task, label_names = (
        labelled.frames,
        labelled.columns,
        labelled.task,
        labelled.label_names,
    )
    if "validation" not in frames:
        frames["train"], frames["validation"] = split_off_validation(frames["train"], task, cfg)

    frames["train"] = subset(frames["train"], cfg.max_train_samples, cfg.data_seed)
    for name in ("validation", "test"):
        if name in frames:
            frames[name] = subset(frames[name], cfg.max_eval_samples, cfg.data_seed)
    splits = datasets.DatasetDict(
        {
            name: _to_dataset(frames[name], task, columns.pair is not None)
            for name in _SPLIT_ORDER
            if name in frames
        }
    )
    _log_summary(splits, task, label_names)
    return PreparedData(
        splits=splits,
        task=task,
        label_names=label_names,
        text_column=columns.text,
        text_pair_column=columns.pair,
        label_column=columns.label,
    )


@dataclass
class LabelledData:
    """``--data`` (and ``--validation`` / ``--test``) read, cleaned and label-encoded, before any split.

    Attributes:
        frames: ``train`` (the rows of ``--data``) and, when given or found, ``validation`` and ``test``;
            columns ``text``, ``text_pair`` (pairs only), ``labels`` and :data:`ROW`.
        source: The raw training split as read, every column and row (what a cleaned copy is made from).
        columns: The source columns used.
        task: The resolved task.
        label_names: Class names in id order; ``[]`` for regression.
        where: ``--data`` as messages name it.
    """

    frames: dict[str, pd.DataFrame]
    source: datasets.Dataset
    columns: Columns
    task: str
    label_names: list[str]
    where: str


def read_labelled(cfg: DataConfig) -> LabelledData:
    """Read ``--data`` (and ``--validation`` / ``--test``), clean the rows and encode the labels.

    The first steps of :func:`load_training_data`, without the validation split and the subsets; each row
    keeps its position in its source file in the :data:`ROW` column.
    """
    if not cfg.data:
        raise DataError(
            "no training data given; pass --data (a file, a saved dataset folder or a built-in name)"
        )
    raw = read_source(cfg.data, cfg.encoding, flag="--data")
    picked = pick_split(raw, TRAIN_SPLITS, cfg.data, "--data")
    columns = resolve_columns(list(picked.dataset.column_names), cfg, None, picked.where)
    train = _clean_rows(picked.dataset, columns, picked.where, "--data", cfg.strict)
    assert train is not None
    rows = {"train": train, **_evaluation_rows(raw, picked.name, columns, cfg)}

    kind = label_kind(train.frame["label"].tolist())
    task = resolve_task(cfg, kind, columns.label, train.where)
    label_names = training_label_names(train, task, cfg.label_delimiter, columns.label)
    frames = {
        name: encode_labels(split, task, label_names, cfg.label_delimiter, columns.label, cfg.strict)
        for name, split in rows.items()
    }
    return LabelledData(frames, picked.dataset, columns, task, label_names, picked.where)


def _evaluation_rows(
    raw: datasets.Dataset | datasets.DatasetDict, train_split: str | None, columns: Columns, cfg: DataConfig
) -> dict[str, LabelledRows]:
    """The clean rows of the validation and test data: given by flag, else a split of ``--data``.

    A split found in ``--data`` (not the one used for training) is skipped when it has no labels.
    """
    found: dict[str, LabelledRows] = {}
    for name, flag, given, preferred in (
        ("validation", "--validation", cfg.validation, VALIDATION_SPLITS),
        ("test", "--test", cfg.test, TEST_SPLITS),
    ):
        if given:
            picked = pick_split(read_source(given, cfg.encoding, flag=flag), preferred, given, flag)
            optional = False
        elif isinstance(raw, datasets.DatasetDict) and (split := find_split(raw, preferred, train_split)):
            picked = PickedSplit(raw[split], describe("--data", cfg.data, split), split)
            flag, optional = "--data", True
        else:
            continue
        split_columns = resolve_columns(list(picked.dataset.column_names), cfg, columns, picked.where)
        rows = _clean_rows(picked.dataset, split_columns, picked.where, flag, cfg.strict, optional=optional)
        if rows is not None:
            found[name] = rows
    return found


def _log_summary(splits: datasets.DatasetDict, task: str, label_names: list[str]) -> None:
    logger.info(
        "data: %s; task %s%s",
        ", ".join(f"{name} {len(split)} rows" for name, split in splits.items()),
        task,
        f", {len(label_names)} labels: {', '.join(label_names[:10])}{' ...' if len(label_names) > 10 else ''}"
        if label_names
        else "",
    )


def load_labelled(
    source: str,
    cfg: DataConfig,
    *,
    task: str,
    label_names: list[str],
    text_column: str,
    text_pair_column: str | None,
    label_column: str,
    flag: str = "--data",
) -> datasets.Dataset:
    """Labelled evaluation data for a trained run, encoded like its training data.

    Columns: ``cfg.text_column`` / ``cfg.text_pair_column`` / ``cfg.label_column`` when set (they must
    exist), else the given names when the source has them, else detected. Whether texts come in pairs
    follows ``text_pair_column``. From a DatasetDict the ``test`` split is used (else ``validation``,
    else the only split). Empty texts and missing labels are dropped (``cfg.strict``: rejected), then
    ``cfg.max_eval_samples`` takes a seeded random subset.

    Args:
        source: A file, saved dataset folder, built-in name or hub id.
        cfg: Data options (encoding, label delimiter, strict, max_eval_samples, data_seed, columns).
        task: The run's task.
        label_names: The run's class names in id order.
        text_column: The run's text column.
        text_pair_column: The run's pair column, or None.
        label_column: The run's label column.
        flag: The option that named ``source``, for error messages.

    Returns:
        A Dataset with columns ``text``, ``text_pair`` (pairs only) and ``labels``.

    Raises:
        DataError: As :func:`load_training_data`, and for labels the run was not trained on (named).

    Example:
        >>> ds = load_labelled("test.csv", DataConfig(), task="single_label", label_names=["neg", "pos"],
        ...                    text_column="text", text_pair_column=None, label_column="label")  # doctest: +SKIP
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    picked = pick_split(read_source(source, cfg.encoding, flag=flag), EVAL_SPLITS, source, flag)
    columns = resolve_columns(
        list(picked.dataset.column_names),
        cfg,
        Columns(text_column, text_pair_column, label_column),
        picked.where,
    )
    split = _clean_rows(picked.dataset, columns, picked.where, flag, cfg.strict)
    assert split is not None
    label_names = [str(name) for name in label_names]
    frame = encode_labels(split, task, label_names, cfg.label_delimiter, columns.label, cfg.strict)
    frame = subset(frame, cfg.max_eval_samples, cfg.data_seed)
    return _to_dataset(frame, task, columns.pair is not None)
