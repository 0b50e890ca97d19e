"""Any data source -> a prepared ``DatasetDict`` with columns ``text``, ``text_pair`` and ``labels``.

Sources, tried in this order:

1. an existing file: ``.csv``, ``.tsv``, ``.json`` (an array of records, one object of equal-length
   column lists, or JSON lines), ``.jsonl``, ``.parquet``; CSV/TSV/JSON/JSONL may be compressed
   (``.gz``, ``.bz2``, ``.xz``);
2. an existing folder written by ``datasets`` ``save_to_disk`` (a Dataset or a DatasetDict);
3. a built-in dataset name (see :mod:`texttune.assets`), which comes with train/validation/test;
4. anything else that looks like a hub id (``owner/name`` or ``name``): ``datasets.load_dataset``.

Type rules, so that a file means the same thing whatever its format:

- CSV/TSV cells are read as text (``dtype=str``) and label types are detected afterwards, so integer
  labels stay integer labels (pandas would turn ``0, 1, <empty>`` into floats).
- Labels are class *names*: integer labels become ``"0"``, ``"1"``, ...; whole-number floats and
  strings such as ``"1.0"`` name the same class as ``1``. Label names are sorted in natural order
  (numbers numerically, ``"item2"`` before ``"item10"``); class ids follow that order.
- A JSON column that mixes value types (say ``1`` and ``"pos"``) is read as text with a warning,
  rather than rejected: the label ``1`` and the label ``"1"`` then name the same class.
- ``ClassLabel`` columns of saved or hub datasets are turned into their names; id ``-1`` (no label)
  counts as a missing label.

Example:
    >>> from texttune.config import DataConfig
    >>> data = load_training_data(DataConfig(data="sms_spam"))
    >>> data.task, data.label_names, sorted(data.splits)
    ('single_label', ['ham', 'spam'], ['test', 'train', 'validation'])
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import itertools
import json
import logging
import lzma
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.table import InMemoryTable

from . import assets
from .config import DataConfig
from .errors import DataError
from .tasks import LABELS, MULTI_LABEL, REGRESSION, SINGLE_LABEL, TASKS, TEXT, TEXT_PAIR

logger = logging.getLogger(__name__)

#: Column names recognised as the text, in lower case. Exactly one may be present.
TEXT_COLUMN_NAMES = (
    "text",
    "texts",
    "sentence",
    "review",
    "review_text",
    "content",
    "body",
    "document",
    "doc",
    "comment",
    "message",
    "msg",
    "tweet",
    "post",
    "sms",
    "utterance",
    "question",
    "query",
    "passage",
    "paragraph",
    "abstract",
    "description",
)
#: Sentence-pair layouts (first text, second text), tried in this order when no --text-column is set.
PAIR_COLUMN_NAMES = (
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
    ("text_a", "text_b"),
    ("text1", "text2"),
    ("sentence_a", "sentence_b"),
    ("question", "sentence"),
    ("question", "passage"),
    ("query", "passage"),
    ("query", "document"),
)
#: Column names recognised as the label, in lower case, by priority (the first present one is used).
LABEL_COLUMN_NAMES = (
    "label",
    "labels",
    "category",
    "categories",
    "class",
    "target",
    "sentiment",
    "topic",
    "topics",
    "intent",
    "emotion",
    "emotions",
    "tag",
    "tags",
    "polarity",
    "stance",
    "gold_label",
    "y",
    "score",
    "rating",
)

_FORMATS = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
_COMPRESSIONS = {".gz": gzip, ".bz2": bz2, ".xz": lzma}
_FORMAT_ALIASES = {".ndjson": ".jsonl", ".tab": ".tsv"}
_SUPPORTED = ".csv, .tsv, .json, .jsonl, .parquet (CSV/TSV/JSON/JSONL may be compressed: .gz, .bz2, .xz)"
# Suffixes that mark a string as a file name (so a missing one is reported as a missing file, not
# looked up on the hub).
_FILE_SUFFIXES = {*_FORMATS, *_COMPRESSIONS, *_FORMAT_ALIASES, ".txt", ".xlsx", ".xls", ".arrow", ".zip"}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_INTEGRAL = re.compile(r"[+-]?\d+(\.0*)?")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TRAIN_SPLITS = ("train",)
_VALIDATION_SPLITS = ("validation", "valid", "dev", "val")
_TEST_SPLITS = ("test",)
_EVAL_SPLITS = ("test", *_VALIDATION_SPLITS)


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


# --------------------------------------------------------------------------------------------------
# Reading sources
# --------------------------------------------------------------------------------------------------


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
        return _read_file(path, encoding, flag)
    if assets.is_builtin_dataset(source):
        return assets.load_builtin_dataset(source)
    if _looks_like_path(source):
        raise DataError(f"data file not found: {source} (check {flag})")
    return _load_hub(source, flag)


def _looks_like_path(source: str) -> bool:
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:
        return True
    if Path(source).suffix.lower() in _FILE_SUFFIXES:
        return True
    return _HUB_ID.fullmatch(source) is None


def _load_hub(source: str, flag: str) -> datasets.DatasetDict:
    builtins = ", ".join(sorted(assets.BUILTIN_DATASETS))
    try:
        loaded = datasets.load_dataset(source)
    except Exception as exc:  # no network, unknown name, gated repo, bad files: one message for all
        reason = _first_line(exc)
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
            f"could not load the saved dataset {path} ({_first_line(exc)}); save it again with save_to_disk "
            f"(check {flag})"
        ) from None


def _format_of(path: Path) -> tuple[str | None, str | None]:
    """(format suffix, compression suffix) of a file name; format None when unsupported."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in _COMPRESSIONS else None
    fmt = _FORMAT_ALIASES.get(suffixes[-1], suffixes[-1]) if suffixes else None
    if fmt not in _FORMATS or (fmt == ".parquet" and compression):
        return None, compression
    return fmt, compression


def _check_file(path: Path, flag: str) -> tuple[str, str | None]:
    fmt, compression = _format_of(path)
    if fmt is None:
        raise DataError(f"unsupported data file type: {path.name} (given to {flag}); supported: {_SUPPORTED}")
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path} (check {flag})")
    return fmt, compression


def _read_file(path: Path, encoding: str, flag: str) -> datasets.Dataset:
    fmt, compression = _check_file(path, flag)
    if fmt in (".csv", ".tsv"):
        frame = _read_delimited(path, fmt, compression, encoding, flag)
        if frame.empty:
            raise DataError(f"data file {path} has a header but no rows (check {flag})")
        return datasets.Dataset.from_pandas(frame, preserve_index=False)
    if fmt == ".parquet":
        table = _read_parquet(path, flag)
    else:
        table = _records_to_table(_read_json_records(path, fmt, compression, encoding, flag), path)
    if table.num_rows == 0:
        raise DataError(f"data file {path} has no rows (check {flag})")
    return datasets.Dataset(InMemoryTable(table))


def _encoding_error(path: Path, encoding: str, exc: UnicodeDecodeError, flag: str) -> DataError:
    byte = exc.object[exc.start : exc.start + 1]
    return DataError(
        f"{path} is not valid {encoding} text (byte 0x{byte.hex()} at position {exc.start}); pass the file's "
        f"encoding with --encoding, e.g. --encoding latin-1 or --encoding cp1252 (check {flag})"
    )


@contextmanager
def _reading(path: Path, encoding: str, flag: str, kind: str) -> Iterator[None]:
    """Turn the exceptions of reading ``path`` into one-line DataErrors."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, encoding, exc, flag) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file is empty: {path} (check {flag})") from None
    except pd.errors.ParserError as exc:
        sep = "tab" if kind == "TSV" else "comma"
        raise DataError(
            f"could not parse {path} as {kind} ({_first_line(exc)}); every row needs the same number of "
            f"{sep}-separated fields, and a text that contains {sep}s must be in double quotes (check {flag})"
        ) from None
    except (OSError, EOFError) as exc:  # unreadable or corrupt compressed files
        raise DataError(f"could not read {path} ({_first_line(exc)}); check {flag}") from None


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"--encoding {encoding!r} is not a known text encoding; try utf-8, latin-1 or cp1252"
        ) from None


def _csv_options(path: Path, fmt: str, compression: str | None, encoding: str) -> dict[str, Any]:
    # Every cell as text: label types are detected later, so integer labels never turn into floats.
    options: dict[str, Any] = {"dtype": str, "keep_default_na": True, "encoding": encoding}
    if fmt == ".tsv":
        options.update(sep="\t", quoting=_tsv_quoting(path, compression, encoding))
    return options


def _tsv_quoting(path: Path, compression: str | None, encoding: str) -> int:
    """``csv.QUOTE_MINIMAL`` when the TSV quotes fields like a CSV, else ``csv.QUOTE_NONE``.

    Most TSV corpora write texts literally, so a text such as ``"Avoid" at all costs`` would lose its
    quotes (or swallow the following lines) if read with CSV quoting; files written by pandas or
    spreadsheets quote whole fields and double inner quotes. Any field that starts with a quote but is
    not quoted that way marks the file as literal. Streams the file: memory stays bounded.
    """
    with _open_text(path, compression, encoding) as handle:
        # strict: a quote that opens a field must close it right before a tab or the line end. Quoted
        # fields may span lines (a text with newlines); every row must then have the header's width.
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL, strict=True)
        width = None
        try:
            for row in reader:
                if not row:
                    continue
                width = width or len(row)
                if len(row) != width:
                    return csv.QUOTE_NONE
        except csv.Error:
            return csv.QUOTE_NONE
    return csv.QUOTE_MINIMAL


def _read_delimited(path: Path, fmt: str, compression: str | None, encoding: str, flag: str) -> pd.DataFrame:
    _check_encoding(encoding)
    with _reading(path, encoding, flag, fmt[1:].upper()):
        frame = pd.read_csv(path, **_csv_options(path, fmt, compression, encoding))
    frame.columns = [str(c) for c in frame.columns]
    _check_delimiter(frame, path, fmt, flag)
    return frame


_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}


def _check_delimiter(frame: pd.DataFrame, path: Path, fmt: str, flag: str) -> None:
    """A file read into one column whose name holds another separator was written with that separator."""
    if len(frame.columns) != 1:
        return
    name = str(frame.columns[0])
    own = "\t" if fmt == ".tsv" else ","
    for sep, word in _DELIMITERS.items():
        if sep != own and sep in name:
            fix = {"\t": "name it .tsv", ",": "name it .csv"}.get(
                sep, "save it comma-separated (.csv) or tab-separated (.tsv)"
            )
            raise DataError(
                f"{path} looks {word}-separated (its header {name!r} was read as a single column); texttune "
                f"reads {fmt} files {'tab' if fmt == '.tsv' else 'comma'}-separated: {fix} (check {flag})"
            )


def _open_text(path: Path, compression: str | None, encoding: str) -> IO[str]:
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark (Excel, Notepad) is not part of the first field
    if compression:
        return _COMPRESSIONS[compression].open(path, "rt", encoding=encoding)
    return open(path, encoding=encoding)


def _read_json_records(
    path: Path, fmt: str, compression: str | None, encoding: str, flag: str
) -> list[dict[str, Any]] | dict[str, list[Any]]:
    """Records (or columns) of a JSON or JSON-lines file."""
    _check_encoding(encoding)
    with _reading(path, encoding, flag, "JSON"), _open_text(path, compression, encoding) as handle:
        text = handle.read()
    stripped = text.lstrip()
    if not stripped:
        raise DataError(f"data file is empty: {path} (check {flag})")
    if fmt == ".json" and stripped[0] in "[{":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if not (stripped[0] == "{" and exc.msg == "Extra data"):
                raise DataError(
                    f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); expected an array of records "
                    f"or one JSON object per line (check {flag})"
                ) from None
        else:
            return _json_value_records(value, path, flag)
    return list(_json_lines(text.splitlines(), path, flag))


def _json_value_records(value: Any, path: Path, flag: str) -> list[dict[str, Any]] | dict[str, list[Any]]:
    if isinstance(value, list):
        for i, record in enumerate(value):
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}: item {i} of the JSON array is a {type(record).__name__}, not an object; expected "
                    f'an array of records like [{{"text": ..., "label": ...}}] (check {flag})'
                )
        return value
    if isinstance(value, dict):
        lists = {k: v for k, v in value.items() if isinstance(v, list)}
        if lists and len(lists) == len(value) and len({len(v) for v in lists.values()}) == 1:
            return lists  # {"text": [...], "label": [...]}
        record_lists = [v for v in lists.values() if v and all(isinstance(r, dict) for r in v)]
        if len(record_lists) == 1:
            return record_lists[0]  # {"data": [{...}, ...], "version": ...}
        if not lists:
            return [value]  # one record
    raise DataError(
        f"{path} holds a JSON {type(value).__name__} that is not a table; expected an array of records, "
        f"one object per line, or an object of equal-length column lists (check {flag})"
    )


def _json_lines(lines: Iterable[str], path: Path, flag: str, start: int = 1) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path} line {number} is not valid JSON ({exc.msg}); expected one JSON object per line "
                f"(check {flag})"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{path} line {number} is a JSON {type(record).__name__}, not an object; expected one record "
                f'like {{"text": ..., "label": ...}} per line (check {flag})'
            )
        yield record


def _records_to_columns(records: list[dict[str, Any]] | dict[str, list[Any]]) -> dict[str, list[Any]]:
    if isinstance(records, dict):
        return records
    names = list(dict.fromkeys(key for record in records for key in record))
    return {name: [record.get(name) for record in records] for name in names}


def _records_to_table(records: list[dict[str, Any]] | dict[str, list[Any]], path: Path) -> pa.Table:
    arrays = {}
    for name, values in _records_to_columns(records).items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            kinds = sorted({type(v).__name__ for v in values if v is not None})
            logger.warning(
                "column %r of %s mixes value types (%s); all its values are read as text",
                name,
                path,
                ", ".join(kinds),
            )
            arrays[name] = pa.array(_as_text_values(values))
    return pa.table(arrays)


def _as_text_values(values: list[Any]) -> list[Any]:
    """Mixed JSON values as strings; when some values are lists, every value becomes a list of strings."""

    def text(value: Any) -> str:
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        return _label_name(value)

    if any(isinstance(v, list) for v in values):
        return [
            None if v is None else [text(x) for x in v] if isinstance(v, list) else [text(v)] for v in values
        ]
    return [None if v is None else text(v) for v in values]


def _read_parquet(path: Path, flag: str) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"could not read {path} as Parquet ({_first_line(exc)}); check {flag}") from None
    keep = [name for name in table.column_names if not name.startswith("__index_level_")]
    return table.select(keep)


def iter_frames(
    source: str, batch_size: int, encoding: str = "utf-8", *, flag: str = "--data"
) -> Iterator[pd.DataFrame]:
    """Stream the raw rows of a source in chunks, with bounded memory.

    CSV/TSV (read as text, like :func:`read_source`), JSON lines and Parquet are streamed; a ``.json``
    array is read whole. Other sources (saved datasets, built-in and hub names) are read with
    :func:`read_source`; from a DatasetDict the ``test`` split is used (else ``validation``, else the
    only split).

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
        fmt, compression = _check_file(path, flag)
        if fmt in (".csv", ".tsv"):
            chunks = _iter_delimited(path, fmt, compression, batch_size, encoding, flag)
        elif fmt == ".parquet":
            chunks = _iter_parquet(path, batch_size, flag)
        else:
            chunks = _iter_json(path, fmt, compression, batch_size, encoding, flag)
    else:
        chunks = _iter_dataset(
            _single_split(read_source(source, encoding, flag=flag), _EVAL_SPLITS, source, flag), batch_size
        )
    for chunk in chunks:
        if len(chunk):
            rows += len(chunk)
            yield chunk
    if rows == 0:
        raise DataError(f"data file {source} has no rows (check {flag})")


def _iter_delimited(
    path: Path, fmt: str, compression: str | None, batch_size: int, encoding: str, flag: str
) -> Iterator[pd.DataFrame]:
    _check_encoding(encoding)
    with _reading(path, encoding, flag, fmt[1:].upper()):
        options = _csv_options(path, fmt, compression, encoding)
        with pd.read_csv(path, chunksize=batch_size, **options) as reader:
            for chunk in reader:
                chunk.columns = [str(c) for c in chunk.columns]
                _check_delimiter(chunk, path, fmt, flag)
                yield chunk


def _iter_parquet(path: Path, batch_size: int, flag: str) -> Iterator[pd.DataFrame]:
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=batch_size):
            frame = batch.to_pandas()
            yield frame[[c for c in frame.columns if not str(c).startswith("__index_level_")]]
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"could not read {path} as Parquet ({_first_line(exc)}); check {flag}") from None


def _iter_json(
    path: Path, fmt: str, compression: str | None, batch_size: int, encoding: str, flag: str
) -> Iterator[pd.DataFrame]:
    def whole() -> Iterator[pd.DataFrame]:
        frame = pd.DataFrame(_records_to_columns(_read_json_records(path, fmt, compression, encoding, flag)))
        for start in range(0, len(frame), batch_size):
            yield frame.iloc[start : start + batch_size].reset_index(drop=True)

    _check_encoding(encoding)
    with _reading(path, encoding, flag, "JSON"), _open_text(path, compression, encoding) as handle:
        first, number = "", 0
        for number, first in enumerate(handle, 1):  # noqa: B007 (the loop finds the first record)
            if first.strip():
                break
        if fmt == ".json" and not _is_record_line(first):
            yield from whole()  # an array, or one object (pretty-printed, or of column lists)
            return
        batch: list[dict[str, Any]] = []
        for record in _json_lines(itertools.chain([first], handle), path, flag, start=max(number, 1)):
            batch.append(record)
            if len(batch) == batch_size:
                yield pd.DataFrame.from_records(batch)
                batch = []
        if batch:
            yield pd.DataFrame.from_records(batch)


def _is_record_line(line: str) -> bool:
    """Whether a line holds one JSON record (so the file is JSON lines)."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and not (value and all(isinstance(v, list) for v in value.values()))


def _iter_dataset(dataset: datasets.Dataset, batch_size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(dataset), batch_size):
        yield dataset.select(range(start, min(start + batch_size, len(dataset)))).to_pandas()


def _single_split(
    data: datasets.Dataset | datasets.DatasetDict, preferred: tuple[str, ...], source: str, flag: str
) -> datasets.Dataset:
    """The Dataset itself, or from a DatasetDict the first preferred split present, else its only split."""
    if isinstance(data, datasets.Dataset):
        return data
    name = _pick_split(data, preferred, source, flag)
    if len(data) > 1:
        logger.info("%s %s: using split %r of %s", flag, source, name, ", ".join(data))
    return data[name]


def _pick_split(data: datasets.DatasetDict, preferred: tuple[str, ...], source: str, flag: str) -> str:
    for name in preferred:
        if name in data:
            return name
    if len(data) == 1:
        return next(iter(data))
    raise DataError(
        f"{flag} {source} is a DatasetDict with splits {', '.join(sorted(data))} but none named "
        f"{preferred[0]!r}; save the split you want on its own (dataset_dict[name].save_to_disk(...))"
    )


# --------------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------------


def _find(columns: list[str], name: str) -> str | None:
    """The column called ``name``: exact match first, else the only case-insensitive match."""
    if name in columns:
        return name
    matches = [c for c in columns if c.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _listing(columns: Iterable[str]) -> str:
    return ", ".join(sorted(columns)) or "(none)"


def _require(columns: list[str], name: str, flag: str, where: str) -> str:
    found = _find(columns, name)
    if found is None:
        raise DataError(f"{flag} {name!r} is not a column of {where}; its columns are: {_listing(columns)}")
    return found


def _detect_text(columns: list[str], exclude: set[str | None], where: str) -> str:
    matches = [c for c in columns if c.lower() in TEXT_COLUMN_NAMES and c not in exclude]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DataError(
            f"no text column found in {where} (looked for {', '.join(TEXT_COLUMN_NAMES[:8])}, ...); its columns "
            f"are: {_listing(columns)}; set --text-column"
        )
    raise DataError(
        f"several possible text columns in {where}: {', '.join(matches)}; set --text-column to one of them "
        f"(its columns are: {_listing(columns)})"
    )


def _detect_pair(columns: list[str]) -> tuple[str, str] | None:
    for first, second in PAIR_COLUMN_NAMES:
        found_first, found_second = _find(columns, first), _find(columns, second)
        if found_first and found_second:
            return found_first, found_second
    return None


def resolve_text_columns(
    columns: list[str], text_column: str | None, text_pair_column: str | None, *, where: str = "the data"
) -> tuple[str, str | None]:
    """Pick the text column (and the second text of a pair) among ``columns``.

    Given names must exist (matched exactly, else case-insensitively). Without ``text_column``, a
    sentence-pair layout (``sentence1``/``sentence2``, ``premise``/``hypothesis``, ...; see
    ``PAIR_COLUMN_NAMES``) is used when present, else the one column named like a text (``text``,
    ``sentence``, ``review``, ...; see ``TEXT_COLUMN_NAMES``).

    Args:
        columns: The source's column names.
        text_column: ``--text-column``, or None to detect.
        text_pair_column: ``--text-pair-column``, or None (detected only together with the text column).
        where: The source, for error messages.

    Returns:
        (text column, pair column or None).

    Raises:
        DataError: A given column is missing, or no single text column can be detected; the message
            lists the columns.

    Example:
        >>> resolve_text_columns(["id", "Review", "label"], None, None)
        ('Review', None)
        >>> resolve_text_columns(["premise", "hypothesis", "label"], None, None)
        ('premise', 'hypothesis')
    """
    columns = [str(c) for c in columns]
    if text_column is not None:
        text = _require(columns, text_column, "--text-column", where)
        pair = _require(columns, text_pair_column, "--text-pair-column", where) if text_pair_column else None
    elif text_pair_column is not None:
        pair = _require(columns, text_pair_column, "--text-pair-column", where)
        partners = [
            first for first, second in PAIR_COLUMN_NAMES if second == pair.lower() and _find(columns, first)
        ]
        text = _find(columns, partners[0]) if partners else None
        text = text or _detect_text(columns, {pair}, where)
    else:
        layout = _detect_pair(columns)
        if layout is not None:
            logger.info("%s: using the text pair columns %r and %r", where, *layout)
            return layout
        text, pair = _detect_text(columns, set(), where), None
    if pair == text:
        raise DataError(f"--text-pair-column {pair!r} must differ from the text column {text!r}")
    return text, pair


def _resolve_label_column(
    columns: list[str], label_column: str | None, exclude: set[str | None], where: str
) -> str:
    if label_column is not None:
        return _require(columns, label_column, "--label-column", where)
    candidates = [c for name in LABEL_COLUMN_NAMES for c in columns if c.lower() == name and c not in exclude]
    if not candidates:
        raise DataError(
            f"no label column found in {where} (looked for {', '.join(LABEL_COLUMN_NAMES[:8])}, ...); its columns "
            f"are: {_listing(columns)}; set --label-column"
        )
    if len(candidates) > 1:
        logger.info(
            "%s: using %r as the label column (also label-like: %s; set --label-column to choose)",
            where,
            candidates[0],
            ", ".join(candidates[1:]),
        )
    return candidates[0]


@dataclass
class _Columns:
    text: str
    pair: str | None
    label: str


def _resolve_columns(columns: list[str], cfg: DataConfig, preferred: _Columns | None, where: str) -> _Columns:
    """Columns of one source: the --*-column flags, else the preferred (training) names, else detected.

    With ``preferred``, whether texts come in pairs is fixed by it.
    """
    if preferred is None:
        text, pair = resolve_text_columns(columns, cfg.text_column, cfg.text_pair_column, where=where)
        return _Columns(text, pair, _resolve_label_column(columns, cfg.label_column, {text, pair}, where))

    def pick(flag_value: str | None, name: str | None) -> str | None:
        if flag_value is not None:
            return flag_value
        return _find(columns, name) if name is not None else None

    text = pick(cfg.text_column, preferred.text)
    pair = pick(cfg.text_pair_column, preferred.pair)
    if preferred.pair is None and pair is None:
        text = text or _detect_text(columns, set(), where)
    elif pair is None:
        layout = None if text is not None else _detect_pair(columns)
        if layout is None:
            raise DataError(
                f"the text pairs' second column {preferred.pair!r} is not a column of {where}; its columns are: "
                f"{_listing(columns)}; set --text-pair-column"
            )
        text, pair = layout
    text, pair = resolve_text_columns(columns, text, pair, where=where)
    label = _resolve_label_column(columns, pick(cfg.label_column, preferred.label), {text, pair}, where)
    return _Columns(text, pair, label)


# --------------------------------------------------------------------------------------------------
# Rows and labels
# --------------------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_listlike(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    return value is pd.NA or value is pd.NaT


def _label_name(value: Any) -> str:
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


def _as_number(value: Any) -> float | None:
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
    if all(_as_number(n) is not None for n in names):
        return sorted(names, key=lambda n: (_as_number(n), n))
    return sorted(names, key=lambda n: (_natural_key(n), n))


@dataclass
class _Split:
    """One split's clean rows (columns text, text_pair for pairs, label with raw values) and its origin."""

    frame: pd.DataFrame
    where: str


def _source_frame(dataset: datasets.Dataset, columns: _Columns) -> pd.DataFrame:
    """The used columns as a frame, with ``ClassLabel`` ids turned into their names."""
    label_column = columns.label
    used = [c for c in dict.fromkeys((columns.text, columns.pair, label_column)) if c is not None]
    frame = dataset.select_columns(used).to_pandas()
    feature = dataset.features.get(label_column)
    inner = getattr(feature, "feature", None)
    if isinstance(feature, datasets.ClassLabel):
        names = feature.names
        frame[label_column] = [
            None if _is_missing(v) or v < 0 else names[int(v)] for v in frame[label_column]
        ]
    elif isinstance(inner, datasets.ClassLabel):
        names = inner.names
        frame[label_column] = [
            None if not _is_listlike(v) else [names[int(i)] for i in v if i >= 0] for v in frame[label_column]
        ]
    return frame


def _clean_rows(
    dataset: datasets.Dataset, columns: _Columns, where: str, flag: str, strict: bool, optional: bool = False
) -> _Split | None:
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
    for name, column in ((TEXT, columns.text), (TEXT_PAIR, columns.pair)):
        if column is None:
            continue
        empty = frame[name].map(_is_missing)
        if empty.any():
            count = int(empty.sum())
            if strict:
                raise DataError(
                    f"{where}: {count} of {total} rows have an empty or missing text in column {column!r}; fix "
                    f"or remove them, or leave out --strict to skip them with a warning"
                )
            logger.warning(
                "%s: dropped %d of %d rows with an empty or missing text in column %r",
                where,
                count,
                total,
                column,
            )
            frame = frame[~empty]
    missing = frame["label"].map(_is_missing)
    if missing.all() and optional:
        logger.warning("%s has no labels in column %r; it is not used", where, columns.label)
        return None
    if missing.any():
        count = int(missing.sum())
        if strict:
            raise DataError(
                f"{where}: {count} of {total} rows have a missing label in column {columns.label!r}; fix or "
                f"remove them, or leave out --strict to skip them with a warning"
            )
        logger.warning(
            "%s: dropped %d of %d rows with a missing label in column %r", where, count, total, columns.label
        )
        frame = frame[~missing]
    if frame.empty:
        raise DataError(
            f"{where} has no usable rows: all {total} rows have an empty text or a missing label "
            f"(columns {columns.text!r} and {columns.label!r}; check {flag})"
        )
    for name in (TEXT, TEXT_PAIR):
        if name in frame:
            frame[name] = [v if isinstance(v, str) else _label_name(v) for v in frame[name]]
    return _Split(frame.reset_index(drop=True), where)


def _label_kind(values: list[Any]) -> str:
    """``list``, ``int`` (whole numbers), ``float`` (numbers, some fractional) or ``string``."""
    numbers = []
    for value in values:
        if _is_listlike(value):
            return "list"
        number = _as_number(value)
        if number is None:
            kind = "string"
            break
        numbers.append(number)
    else:
        kind = "int" if all(n.is_integer() for n in numbers) else "float"
    if kind == "string" and any(_is_listlike(v) for v in values):
        return "list"
    return kind


def _resolve_task(cfg: DataConfig, kind: str, label_column: str, where: str) -> str:
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
        if _is_listlike(value):
            names = [_label_name(v) for v in value if not _is_missing(v)]
        elif delimiter is not None and isinstance(value, str):
            names = [part.strip() for part in value.split(delimiter)]
        else:
            names = [_label_name(value)]
        sets.append(list(dict.fromkeys(n for n in names if n)))
    return sets


def _numbers(values: Iterable[Any], column: str, where: str) -> list[float]:
    numbers = []
    for value in values:
        number = None if _is_listlike(value) else _as_number(value)
        if number is None:
            raise DataError(
                f"regression needs numeric labels, but column {column!r} of {where} holds {value!r}; check "
                f"--label-column, or use --task single_label"
            )
        numbers.append(number)
    return numbers


def _unseen_error(split: _Split, unseen: Iterable[str], label_names: list[str]) -> DataError:
    unseen = sort_label_names(unseen)
    shown = ", ".join(repr(n) for n in unseen[:5]) + (
        f" (and {len(unseen) - 5} more)" if len(unseen) > 5 else ""
    )
    known = ", ".join(label_names[:20]) + (", ..." if len(label_names) > 20 else "")
    return DataError(
        f"{split.where} has labels never seen in training: {shown}; known labels: {known} (remove those rows, "
        f"or train with data that has them)"
    )


def _encode(
    split: _Split, task: str, label_names: list[str], delimiter: str | None, label_column: str, strict: bool
) -> pd.DataFrame:
    """The split with a ``labels`` column encoded for ``task`` (label names already fixed)."""
    frame = split.frame.drop(columns="label")
    raw = split.frame["label"].tolist()
    if task == REGRESSION:
        frame[LABELS] = _numbers(raw, label_column, split.where)
        return frame
    index = {name: i for i, name in enumerate(label_names)}
    if task == SINGLE_LABEL:
        if any(_is_listlike(v) for v in raw):
            raise DataError(
                f"the label column {label_column!r} of {split.where} holds lists of labels, but the task is "
                f"single_label; use --task multi_label"
            )
        names = [_label_name(v) for v in raw]
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


def _drop_unlabelled(
    frame: pd.DataFrame, sets: list[list[str]], split: _Split, column: str, strict: bool
) -> pd.DataFrame:
    empty = np.array([not labels for labels in sets], dtype=bool)
    if not empty.any():
        return frame
    count = int(empty.sum())
    if strict:
        raise DataError(
            f"{split.where}: {count} of {len(frame)} rows have no label in column {column!r}; fix or remove them, "
            f"or leave out --strict to skip them with a warning"
        )
    logger.warning(
        "%s: dropped %d of %d rows with an empty label set in column %r",
        split.where,
        count,
        len(frame),
        column,
    )
    frame = frame[~empty].reset_index(drop=True)
    if frame.empty:
        raise DataError(
            f"{split.where} has no usable rows: every row has an empty label set in column {column!r}"
        )
    return frame


def _training_label_names(split: _Split, task: str, delimiter: str | None, label_column: str) -> list[str]:
    values = split.frame["label"].tolist()
    if task == REGRESSION:
        return []
    if task == SINGLE_LABEL:
        names = sort_label_names(_label_name(v) for v in values if not _is_listlike(v))
    else:
        names = sort_label_names(n for labels in _label_sets(values, delimiter) for n in labels)
    if len(names) < 2:
        found = f"a single class {names[0]!r}" if names else "no labels"
        raise DataError(
            f"the training data ({split.where}) has {found} in column {label_column!r}; classification needs "
            f"at least 2 classes (check --label-column{', or use --task regression' if task == SINGLE_LABEL else ''})"
        )
    return names


# --------------------------------------------------------------------------------------------------
# Splits and datasets
# --------------------------------------------------------------------------------------------------


def _split_off_validation(
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
            f"cannot hold out --validation-split {cfg.validation_split} of {len(frame)} rows ({_first_line(exc)}); "
            f"change --validation-split or pass --validation"
        ) from None
    return frame.iloc[np.sort(train_rows)], frame.iloc[np.sort(validation_rows)]


def _subset(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """A seeded random subset of at most ``limit`` rows, in the original order."""
    if limit is None or len(frame) <= limit:
        return frame
    rows = np.sort(np.random.default_rng(seed).permutation(len(frame))[:limit])
    return frame.iloc[rows]


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


def _where(flag: str, source: str, split: str | None = None) -> str:
    return f"{flag} {source}" + (f" (split {split!r})" if split else "")


def _as_splits(
    data: datasets.Dataset | datasets.DatasetDict, preferred: tuple[str, ...], source: str, flag: str
) -> tuple[datasets.Dataset, str, str | None]:
    """(the dataset, its description for messages, the split name used when ``data`` is a DatasetDict)."""
    if isinstance(data, datasets.Dataset):
        return data, _where(flag, source), None
    name = _pick_split(data, preferred, source, flag)
    return data[name], _where(flag, source, name if len(data) > 1 else None), name


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
    if not cfg.data:
        raise DataError(
            "no training data given; pass --data (a file, a saved dataset folder or a built-in name)"
        )
    raw = read_source(cfg.data, cfg.encoding, flag="--data")
    train_data, train_where, train_split = _as_splits(raw, _TRAIN_SPLITS, cfg.data, "--data")
    columns = _resolve_columns(list(train_data.column_names), cfg, None, train_where)
    train = _clean_rows(train_data, columns, train_where, "--data", cfg.strict)
    assert train is not None

    others: dict[str, _Split] = {}
    for name, flag, given, preferred in (
        ("validation", "--validation", cfg.validation, _VALIDATION_SPLITS),
        ("test", "--test", cfg.test, _TEST_SPLITS),
    ):
        if given:
            data, where, _ = _as_splits(read_source(given, cfg.encoding, flag=flag), preferred, given, flag)
            optional = False
        elif isinstance(raw, datasets.DatasetDict) and (
            found := [s for s in preferred if s in raw and s != train_split]
        ):
            data, where, flag, optional = raw[found[0]], _where("--data", cfg.data, found[0]), "--data", True
        else:
            continue
        split_columns = _resolve_columns(list(data.column_names), cfg, columns, where)
        split = _clean_rows(data, split_columns, where, flag, cfg.strict, optional=optional)
        if split is not None:
            others[name] = split

    kind = _label_kind(train.frame["label"].tolist())
    task = _resolve_task(cfg, kind, columns.label, train.where)
    label_names = _training_label_names(train, task, cfg.label_delimiter, columns.label)
    frames = {"train": _encode(train, task, label_names, cfg.label_delimiter, columns.label, cfg.strict)}
    for name, split in others.items():
        frames[name] = _encode(split, task, label_names, cfg.label_delimiter, columns.label, cfg.strict)
    if "validation" not in frames:
        frames["train"], frames["validation"] = _split_off_validation(frames["train"], task, cfg)

    frames["train"] = _subset(frames["train"], cfg.max_train_samples, cfg.data_seed)
    for name in ("validation", "test"):
        if name in frames:
            frames[name] = _subset(frames[name], cfg.max_eval_samples, cfg.data_seed)
    pair = columns.pair is not None
    splits = datasets.DatasetDict(
        {
            name: _to_dataset(frames[name], task, pair)
            for name in ("train", "validation", "test")
            if name in frames
        }
    )
    logger.info(
        "data: %s; task %s%s",
        ", ".join(f"{name} {len(split)} rows" for name, split in splits.items()),
        task,
        f", {len(label_names)} labels: {', '.join(label_names[:10])}{' ...' if len(label_names) > 10 else ''}"
        if label_names
        else "",
    )
    return PreparedData(
        splits=splits,
        task=task,
        label_names=label_names,
        text_column=columns.text,
        text_pair_column=columns.pair,
        label_column=columns.label,
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
    data, where, _ = _as_splits(read_source(source, cfg.encoding, flag=flag), _EVAL_SPLITS, source, flag)
    columns = _resolve_columns(
        list(data.column_names), cfg, _Columns(text_column, text_pair_column, label_column), where
    )
    split = _clean_rows(data, columns, where, flag, cfg.strict)
    assert split is not None
    label_names = [str(name) for name in label_names]
    frame = _encode(split, task, label_names, cfg.label_delimiter, columns.label, cfg.strict)
    frame = _subset(frame, cfg.max_eval_samples, cfg.data_seed)
    return _to_dataset(frame, task, columns.pair is not None)
