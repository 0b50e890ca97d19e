"""Any data source -> its raw rows: a file, a saved dataset folder, a built-in dataset or a hub dataset.

Sources, tried in this order:

1. an existing file, read by its format's reader (see :mod:`texttune.data.readers`);
2. an existing folder written by ``datasets`` ``save_to_disk`` (a Dataset or a DatasetDict);
3. a built-in dataset name (see :mod:`texttune.assets`), which comes with train/validation/test;
4. anything else that looks like a hub id (``owner/name`` or ``name``): ``datasets.load_dataset``.

``ClassLabel`` columns of saved or hub datasets keep their ids here; preparing the data turns them
into their names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import datasets
import pandas as pd
import pyarrow as pa

from .. import assets
from ..errors import DataError, first_line
from .readers import FILE_SUFFIXES, open_data_file, read_file
from .splits import EVAL_SPLITS, pick_split

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def read_source(
    source: str, encoding: str = "utf-8", *, flag: str = "--data"
) -> datasets.Dataset | datasets.DatasetDict:
    """Read a data source into raw rows with all its columns.

    Args:
        source: A file, a folder saved with ``save_to_disk``, a built-in dataset name or a hub id.
        encoding: Text encoding of CSV/TSV/JSON files.
        flag: The option that named ``source``, for error messages (``--data``, ``--validation``, ...).

    Returns:
        A Dataset, or a DatasetDict for saved dataset dicts, built-in datasets and hub datasets.

    Raises:
        DataError: The source is missing, unreadable, empty or of an unsupported type.

    Example:
        >>> read_source("reviews.csv").column_names  # doctest: +SKIP
        ['text', 'label']
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_saved(path, flag)
    if path.is_file():
        return read_file(path, encoding, flag)
    if assets.is_builtin_dataset(source):
        return assets.load_builtin_dataset(source)
    if _looks_like_path(source):
        raise DataError(f"data file not found: {source} (check {flag})")
    return _load_hub(source, flag)


def iter_frames(
    source: str, batch_size: int, encoding: str = "utf-8", *, flag: str = "--data"
) -> Iterator[pd.DataFrame]:
    """Stream the raw rows of a source in chunks, with bounded memory.

    Files are streamed by their format's reader: CSV/TSV (read as text, like :func:`read_source`),
    JSON lines and Parquet in chunks, a ``.json`` array whole. Other sources (saved datasets, built-in
    and hub names) are read with :func:`read_source`; from a DatasetDict the ``test`` split is used
    (else ``validation``, else the only split).

    Args:
        source: The data source.
        batch_size: Rows per chunk.
        encoding: Text encoding of CSV/TSV/JSON files.
        flag: The option that named ``source``, for error messages.

    Yields:
        DataFrames with all the original columns; their concatenation is the whole source.

    Raises:
        DataError: The source is missing, unreadable, empty or has no rows.

    Example:
        >>> sum(len(frame) for frame in iter_frames("big.csv", 1000))  # doctest: +SKIP
        125000
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    path = Path(source).expanduser()
    rows = 0
    if path.is_file():
        file = open_data_file(path, encoding, flag)
        chunks = file.reader.stream(file, batch_size)
    else:
        data = read_source(source, encoding, flag=flag)
        picked = pick_split(data, EVAL_SPLITS, source, flag)
        if isinstance(data, datasets.DatasetDict) and len(data) > 1:
            logger.info("%s %s: using split %r of %s", flag, source, picked.name, ", ".join(data))
        chunks = _iter_dataset(picked.dataset, batch_size)
    for chunk in chunks:
        if len(chunk):
            rows += len(chunk)
            yield chunk
    if rows == 0:
        raise DataError(f"data file {source} has no rows (check {flag})")


def _looks_like_path(source: str) -> bool:
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:
        return True
    if Path(source).suffix.lower() in FILE_SUFFIXES:
        return True
    return _HUB_ID.fullmatch(source) is None


def _load_hub(source: str, flag: str) -> datasets.DatasetDict:
    builtins = ", ".join(sorted(assets.BUILTIN_DATASETS))
    try:
        loaded = datasets.load_dataset(source)
    except Exception as exc:  # no network, unknown name, gated repo, bad files: one message for all
        reason = first_line(exc)
        raise DataError(
            f"{flag} {source!r} is neither an existing file or folder nor a built-in dataset ({builtins}), "
            f"and loading it from the Hugging Face hub failed ({reason}); check {flag}"
        ) from None
    if not isinstance(loaded, (datasets.Dataset, datasets.DatasetDict)):
        raise DataError(f"{flag} {source!r}: the hub returned a {type(loaded).__name__}, not a dataset")
    return loaded


def _read_saved(path: Path, flag: str) -> datasets.Dataset | datasets.DatasetDict:
    if not ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        raise DataError(
            f"{path} is a folder but not a dataset saved with datasets' save_to_disk (no dataset_dict.json "
            f"or state.json in it); pass a data file or a saved dataset folder to {flag}"
        )
    try:
        return datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError, json.JSONDecodeError, pa.ArrowException) as exc:
        raise DataError(
            f"could not load the saved dataset {path} ({first_line(exc)}); save it again with save_to_disk "
            f"(check {flag})"
        ) from None


def _iter_dataset(dataset: datasets.Dataset, batch_size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(dataset), batch_size):
        yield dataset.select(range(start, min(start + batch_size, len(dataset)))).to_pandas()
