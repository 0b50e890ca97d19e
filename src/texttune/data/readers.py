"""Data files: one table, :data:`READERS`, maps a file suffix to the reader of that format.

Each reader reads a file whole (:meth:`Reader.read`, a Dataset) and in chunks (:meth:`Reader.stream`,
DataFrames with bounded memory). To add a format, write one reader with those two methods and add its
row (or rows, for other names of the same format) to :data:`READERS`. CSV/TSV/JSON/JSONL files may be
compressed (:data:`COMPRESSIONS`): ``reviews.csv.gz`` is read by the ``.csv`` reader.

Type rules, so that a file means the same thing whatever its format:

- CSV/TSV cells are read as text (``dtype=str``) and label types are detected afterwards, so integer
  labels stay integer labels (pandas would turn ``0, 1, <empty>`` into floats).
- A JSON column that mixes value types (say ``1`` and ``"pos"``) is read as text with a warning,
  rather than rejected: the label ``1`` and the label ``"1"`` then name the same class.

Example:
    >>> sorted(READERS)
    ['.csv', '.json', '.jsonl', '.ndjson', '.parquet', '.tab', '.tsv']
    >>> READERS[".tab"] is READERS[".tsv"]
    True
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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.table import InMemoryTable

from ..errors import DataError, first_line
from .labels import label_name

logger = logging.getLogger(__name__)

#: Compression suffix -> the module that opens such files as text.
COMPRESSIONS = {".gz": gzip, ".bz2": bz2, ".xz": lzma}
_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}


@dataclass(frozen=True)
class DataFile:
    """A data file about to be read, with what its name says about it.

    Attributes:
        path: The file.
        reader: The reader of its format.
        compression: Its compression suffix (``.gz``, ...), or None.
        encoding: Text encoding of text formats (``--encoding``).
        flag: The option that named the file, for error messages.
    """

    path: Path
    reader: Reader
    compression: str | None
    encoding: str
    flag: str

    def open_text(self) -> IO[str]:
        """The file as text, decompressed; a UTF-8 byte-order mark is not part of the first field."""
        encoding = self.encoding
        if codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"  # a byte-order mark (Excel, Notepad) is not part of the first field
        if self.compression:
            return COMPRESSIONS[self.compression].open(self.path, "rt", encoding=encoding)
        return open(self.path, encoding=encoding)


@dataclass(frozen=True)
class Reader:
    """How one file format is read; subclasses implement :meth:`read` and :meth:`stream`.

    Attributes:
        name: The format's name in messages (``CSV``, ``Parquet``).
        suffix: The format's own suffix, named in messages (``.tab`` files are read as ``.tsv``).
        compressible: Whether ``.gz``/``.bz2``/``.xz`` copies of such files are read.
    """

    name: str
    suffix: str
    compressible: bool = True

    def read(self, file: DataFile) -> datasets.Dataset:
        """The whole file, every column; may have no rows (the caller rejects that)."""
        raise NotImplementedError

    def stream(self, file: DataFile, batch_size: int) -> Iterator[pd.DataFrame]:
        """The file in DataFrames of at most ``batch_size`` rows, every column."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------
# Errors while reading
# --------------------------------------------------------------------------------------------------


def _encoding_error(path: Path, encoding: str, exc: UnicodeDecodeError, flag: str) -> DataError:
    byte = exc.object[exc.start : exc.start + 1]
    return DataError(
        f"{path} is not valid {encoding} text (byte 0x{byte.hex()} at position {exc.start}); pass the file's "
        f"encoding with --encoding, e.g. --encoding latin-1 or --encoding cp1252 (check {flag})"
    )


@contextmanager
def _reading(file: DataFile) -> Iterator[None]:
    """Turn the exceptions of reading ``file`` into one-line DataErrors."""
    path, flag, kind = file.path, file.flag, file.reader.name
    try:
        yield
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, file.encoding, exc, flag) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file is empty: {path} (check {flag})") from None
    except pd.errors.ParserError as exc:
        sep = "tab" if kind == "TSV" else "comma"
        raise DataError(
            f"could not parse {path} as {kind} ({first_line(exc)}); every row needs the same number of "
            f"{sep}-separated fields, and a text that contains {sep}s must be in double quotes (check {flag})"
        ) from None
    except (OSError, EOFError) as exc:  # unreadable or corrupt compressed files
        raise DataError(f"could not read {path} ({first_line(exc)}); check {flag}") from None


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"--encoding {encoding!r} is not a known text encoding; try utf-8, latin-1 or cp1252"
        ) from None


# --------------------------------------------------------------------------------------------------
# CSV and TSV
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DelimitedReader(Reader):
    """CSV or TSV: every cell read as text, so that integer labels never turn into floats."""

    sep: str = ","

    def read(self, file: DataFile) -> datasets.Dataset:
        _check_encoding(file.encoding)
        with _reading(file):
            frame = pd.read_csv(file.path, **self._options(file))
        frame.columns = [str(c) for c in frame.columns]
        self._check_delimiter(frame, file)
        if frame.empty:
            raise DataError(f"data file {file.path} has a header but no rows (check {file.flag})")
        return datasets.Dataset.from_pandas(frame, preserve_index=False)

    def stream(self, file: DataFile, batch_size: int) -> Iterator[pd.DataFrame]:
        _check_encoding(file.encoding)
        with _reading(file):
            options = self._options(file)
            with pd.read_csv(file.path, chunksize=batch_size, **options) as reader:
                for chunk in reader:
                    chunk.columns = [str(c) for c in chunk.columns]
                    self._check_delimiter(chunk, file)
                    yield chunk

    def _options(self, file: DataFile) -> dict[str, Any]:
        # Every cell as text: label types are detected later, so integer labels never turn into floats.
        options: dict[str, Any] = {"dtype": str, "keep_default_na": True, "encoding": file.encoding}
        if self.sep == "\t":
            options.update(sep="\t", quoting=_tsv_quoting(file))
        return options

    def _check_delimiter(self, frame: pd.DataFrame, file: DataFile) -> None:
        """A file read into one column whose name holds another separator was written with that separator."""
        if len(frame.columns) != 1:
            return
        name = str(frame.columns[0])
        for sep, word in _DELIMITERS.items():
            if sep != self.sep and sep in name:
                fix = {"\t": "name it .tsv", ",": "name it .csv"}.get(
                    sep, "save it comma-separated (.csv) or tab-separated (.tsv)"
                )
                raise DataError(
                    f"{file.path} looks {word}-separated (its header {name!r} was read as a single column); "
                    f"texttune reads {self.suffix} files {_DELIMITERS[self.sep]}-separated: {fix} "
                    f"(check {file.flag})"
                )


def _tsv_quoting(file: DataFile) -> int:
    """``csv.QUOTE_MINIMAL`` when the TSV quotes fields like a CSV, else ``csv.QUOTE_NONE``.

    Most TSV corpora write texts literally, so a text such as ``"Avoid" at all costs`` would lose its
    quotes (or swallow the following lines) if read with CSV quoting; files written by pandas or
    spreadsheets quote whole fields and double inner quotes. Any field that starts with a quote but is
    not quoted that way marks the file as literal. Streams the file: memory stays bounded.
    """
    with file.open_text() as handle:
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


# --------------------------------------------------------------------------------------------------
# JSON and JSON lines
# --------------------------------------------------------------------------------------------------

Records = list[dict[str, Any]] | dict[str, list[Any]]


@dataclass(frozen=True)
class JsonReader(Reader):
    """JSON lines; with ``lines_only`` False also a JSON array of records or one object of column lists."""

    lines_only: bool = True

    def read(self, file: DataFile) -> datasets.Dataset:
        return datasets.Dataset(InMemoryTable(_records_to_table(self._records(file), file.path)))

    def stream(self, file: DataFile, batch_size: int) -> Iterator[pd.DataFrame]:
        _check_encoding(file.encoding)
        with _reading(file), file.open_text() as handle:
            first, number = "", 0
            for number, first in enumerate(handle, 1):  # noqa: B007 (the loop finds the first record)
                if first.strip():
                    break
            if not self.lines_only and not _is_record_line(first):
                # an array, or one object (pretty-printed, or of column lists): read whole
                frame = pd.DataFrame(_records_to_columns(self._records(file)))
                for start in range(0, len(frame), batch_size):
                    yield frame.iloc[start : start + batch_size].reset_index(drop=True)
                return
            batch: list[dict[str, Any]] = []
            lines = itertools.chain([first], handle)
            for record in _json_lines(lines, file.path, file.flag, start=max(number, 1)):
                batch.append(record)
                if len(batch) == batch_size:
                    yield pd.DataFrame.from_records(batch)
                    batch = []
            if batch:
                yield pd.DataFrame.from_records(batch)

    def _records(self, file: DataFile) -> Records:
        """Records (or columns) of the whole file."""
        path, flag = file.path, file.flag
        _check_encoding(file.encoding)
        with _reading(file), file.open_text() as handle:
            text = handle.read()
        stripped = text.lstrip()
        if not stripped:
            raise DataError(f"data file is empty: {path} (check {flag})")
        if not self.lines_only and stripped[0] in "[{":
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


def _json_value_records(value: Any, path: Path, flag: str) -> Records:
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


def _is_record_line(line: str) -> bool:
    """Whether a line holds one JSON record (so the file is JSON lines)."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and not (value and all(isinstance(v, list) for v in value.values()))


def _records_to_columns(records: Records) -> dict[str, list[Any]]:
    if isinstance(records, dict):
        return records
    names = list(dict.fromkeys(key for record in records for key in record))
    return {name: [record.get(name) for record in records] for name in names}


def _records_to_table(records: Records, path: Path) -> pa.Table:
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
        return label_name(value)

    if any(isinstance(v, list) for v in values):
        return [
            None if v is None else [text(x) for x in v] if isinstance(v, list) else [text(v)] for v in values
        ]
    return [None if v is None else text(v) for v in values]


# --------------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParquetReader(Reader):
    """Parquet, without the index columns pandas may have stored."""

    def read(self, file: DataFile) -> datasets.Dataset:
        try:
            table = pq.read_table(file.path)
        except (OSError, pa.ArrowException) as exc:
            raise self._error(file, exc) from None
        keep = [name for name in table.column_names if not name.startswith("__index_level_")]
        return datasets.Dataset(InMemoryTable(table.select(keep)))

    def stream(self, file: DataFile, batch_size: int) -> Iterator[pd.DataFrame]:
        try:
            parquet = pq.ParquetFile(file.path)
            for batch in parquet.iter_batches(batch_size=batch_size):
                frame = batch.to_pandas()
                yield frame[[c for c in frame.columns if not str(c).startswith("__index_level_")]]
        except (OSError, pa.ArrowException) as exc:
            raise self._error(file, exc) from None

    @staticmethod
    def _error(file: DataFile, exc: Exception) -> DataError:
        return DataError(f"could not read {file.path} as Parquet ({first_line(exc)}); check {file.flag}")


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------

_TSV = DelimitedReader("TSV", ".tsv", sep="\t")
_JSONL = JsonReader("JSONL", ".jsonl", lines_only=True)

#: File suffix -> its reader. A row whose suffix differs from its reader's is another name for a format.
READERS: dict[str, Reader] = {
    ".csv": DelimitedReader("CSV", ".csv", sep=","),
    ".tsv": _TSV,
    ".json": JsonReader("JSON", ".json", lines_only=False),
    ".jsonl": _JSONL,
    ".parquet": ParquetReader("Parquet", ".parquet", compressible=False),
    ".ndjson": _JSONL,
    ".tab": _TSV,
}
# Suffixes that mark a string as a file name (so a missing one is reported as a missing file, not
# looked up on the hub).
FILE_SUFFIXES = {*READERS, *COMPRESSIONS, ".txt", ".xlsx", ".xls", ".arrow", ".zip"}


def supported_formats() -> str:
    """The supported suffixes, as unsupported-file messages list them (other names left out)."""
    own = [suffix for suffix, reader in READERS.items() if suffix == reader.suffix]
    packed = "/".join(READERS[suffix].name for suffix in own if READERS[suffix].compressible)
    return f"{', '.join(own)} ({packed} may be compressed: {', '.join(COMPRESSIONS)})"


def reader_for(path: Path) -> tuple[Reader | None, str | None]:
    """(the reader of a file name or None when unsupported, its compression suffix or None)."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in COMPRESSIONS else None
    reader = READERS.get(suffixes[-1]) if suffixes else None
    if reader is None or (compression and not reader.compressible):
        return None, compression
    return reader, compression


def open_data_file(path: Path, encoding: str, flag: str) -> DataFile:
    """An existing file, checked for a supported name and for content.

    Raises:
        DataError: The file type is unsupported, or the file is empty.
    """
    reader, compression = reader_for(path)
    if reader is None:
        raise DataError(
            f"unsupported data file type: {path.name} (given to {flag}); supported: {supported_formats()}"
        )
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path} (check {flag})")
    return DataFile(path, reader, compression, encoding, flag)


def read_file(path: Path, encoding: str, flag: str) -> datasets.Dataset:
    """A whole data file as a Dataset of its raw rows.

    Raises:
        DataError: Unsupported, empty, unreadable or without rows.
    """
    file = open_data_file(path, encoding, flag)
    dataset = file.reader.read(file)
    if len(dataset) == 0:
        raise DataError(f"data file {path} has no rows (check {flag})")
    return dataset
