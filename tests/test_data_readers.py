"""texttune.data.readers: every row of the readers table reads a labelled file whole and streamed.

A new format needs a writer in ``WRITERS`` below: the table test fails, naming the format, until it has one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything could reach the hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from texttune.config import DataConfig  # noqa: E402
from texttune.data import LABELS, TEXT, iter_frames, load_training_data, read_source  # noqa: E402
from texttune.data.readers import COMPRESSIONS, READERS, reader_for, supported_formats  # noqa: E402

ROWS = pd.DataFrame(
    {
        "text": [f"text number {i}, with a comma" for i in range(8)],
        "label": ["neg", "pos", "pos", "neg", "pos", "neg", "neg", "pos"],
    }
)


def _write_json(frame: pd.DataFrame) -> bytes:
    return json.dumps(frame.to_dict(orient="records")).encode("utf-8")


def _write_json_lines(frame: pd.DataFrame) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in frame.to_dict(orient="records")).encode("utf-8")


#: A reader's own suffix -> the bytes of a file of that format holding a frame.
WRITERS: dict[str, Callable[[pd.DataFrame], bytes]] = {
    ".csv": lambda frame: frame.to_csv(index=False).encode("utf-8"),
    ".tsv": lambda frame: frame.to_csv(index=False, sep="\t").encode("utf-8"),
    ".json": _write_json,
    ".jsonl": _write_json_lines,
    ".parquet": lambda frame: frame.to_parquet(index=False),
}

CASES = [
    pytest.param(suffix, compression, id=suffix + (compression or ""))
    for suffix, reader in READERS.items()
    for compression in (None, *(COMPRESSIONS if reader.compressible else ()))
]


def write(tmp_path: Path, suffix: str, compression: str | None) -> str:
    writer = WRITERS.get(READERS[suffix].suffix)
    assert writer is not None, (
        f"no test writer for the {READERS[suffix].name} format ({suffix}); add one to WRITERS"
    )
    body = writer(ROWS)
    if compression:
        body = COMPRESSIONS[compression].compress(body)
    path = tmp_path / f"rows{suffix}{compression or ''}"
    path.write_bytes(body)
    return str(path)


@pytest.mark.parametrize(("suffix", "compression"), CASES)
def test_every_reader_reads_a_labelled_file_whole_and_streamed(suffix, compression, tmp_path):
    path = write(tmp_path, suffix, compression)

    whole = read_source(path).to_pandas()
    pd.testing.assert_frame_equal(whole[["text", "label"]].astype(object), ROWS.astype(object))

    prepared = load_training_data(DataConfig(data=path, validation_split=0.25))
    assert prepared.label_names == ["neg", "pos"]
    assert (prepared.text_column, prepared.label_column) == ("text", "label")
    read = {
        text: prepared.label_names[label]
        for split in prepared.splits.values()
        for text, label in zip(split[TEXT], split[LABELS])
    }
    assert read == dict(zip(ROWS["text"], ROWS["label"]))

    chunks = list(iter_frames(path, 3))
    assert [len(chunk) for chunk in chunks] == [3, 3, 2]
    streamed = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(streamed[["text", "label"]].astype(object), ROWS.astype(object))


def test_other_names_of_a_format_share_its_reader():
    assert READERS[".tab"] is READERS[".tsv"]
    assert READERS[".ndjson"] is READERS[".jsonl"]


def test_file_names_are_matched_to_readers_and_compressions():
    assert reader_for(Path("Reviews.CSV")) == (READERS[".csv"], None)
    assert reader_for(Path("reviews.v2.tab.gz")) == (READERS[".tsv"], ".gz")
    assert reader_for(Path("reviews.parquet.gz")) == (None, ".gz")  # Parquet compresses itself
    assert reader_for(Path("reviews.xlsx")) == (None, None)
    assert reader_for(Path("reviews")) == (None, None)


def test_the_supported_formats_message_lists_each_format_once():
    assert supported_formats() == (
        ".csv, .tsv, .json, .jsonl, .parquet (CSV/TSV/JSON/JSONL may be compressed: .gz, .bz2, .xz)"
    )
