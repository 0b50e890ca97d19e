"""texttune.data: every source format, column detection, tasks, splits, subsets and every DataError."""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections import Counter
from pathlib import Path

import datasets
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything could reach the hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from texttune import data as data_module  # noqa: E402
from texttune.config import DataConfig  # noqa: E402
from texttune.data import (  # noqa: E402
    LABELS,
    MULTI_LABEL,
    REGRESSION,
    SINGLE_LABEL,
    TEXT,
    TEXT_PAIR,
    PreparedData,
    iter_frames,
    load_labelled,
    load_training_data,
    read_source,
    resolve_text_columns,
    sort_label_names,
)
from texttune.errors import DataError  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "data"
REVIEWS = FIXTURES / "reviews.csv"


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def write_csv(path: Path, rows: list[dict], **kwargs) -> str:
    pd.DataFrame(rows).to_csv(path, index=False, **kwargs)
    return str(path)


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def balanced(n: int, labels=("neg", "pos"), prefix: str = "text") -> list[dict]:
    return [{"text": f"{prefix} {i}", "label": labels[i % len(labels)]} for i in range(n)]


def train(source: str, **kwargs) -> PreparedData:
    return load_training_data(DataConfig(data=source, **kwargs))


def labels_of(prepared: PreparedData, split: str = "train") -> list[str]:
    return [prepared.label_names[i] for i in list(prepared.splits[split][LABELS])]


# --------------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def reviews_parquet(tmp_path) -> str:
    path = tmp_path / "reviews.parquet"
    pd.read_csv(REVIEWS).to_parquet(path)
    return str(path)


@pytest.fixture()
def reviews_gz(tmp_path) -> str:
    path = tmp_path / "reviews.csv.gz"
    path.write_bytes(gzip.compress(REVIEWS.read_bytes()))
    return str(path)


@pytest.mark.parametrize(
    "source", ["reviews.csv", "reviews.tsv", "reviews.json", "reviews.jsonl", "parquet", "gz"]
)
def test_each_file_format_gives_the_same_prepared_data(source, reviews_parquet, reviews_gz):
    path = {"parquet": reviews_parquet, "gz": reviews_gz}.get(source) or fixture(source)
    prepared = train(path)
    assert prepared.task == SINGLE_LABEL
    assert prepared.label_names == ["negative", "positive"]
    assert (prepared.text_column, prepared.text_pair_column, prepared.label_column) == ("text", None, "label")
    assert sorted(prepared.splits) == ["train", "validation"]
    train_split = prepared.splits["train"]
    assert train_split.column_names == [TEXT, LABELS]
    assert train_split.features[LABELS] == datasets.Value("int64")
    texts = list(train_split[TEXT]) + list(prepared.splits["validation"][TEXT])
    assert sorted(texts) == sorted(pd.read_csv(REVIEWS)["text"])
    assert len(prepared.splits["validation"]) == 2


def test_tsv_reads_quote_characters_literally():
    texts = list(read_source(fixture("reviews.tsv"))["text"])
    assert '"Avoid" is all I can say.' in texts
    assert 'She said "wow" and so did I.' in texts


def test_tsv_written_by_pandas_with_quoted_fields(tmp_path):
    path = tmp_path / "quoted.tsv"
    pd.read_csv(REVIEWS).to_csv(path, sep="\t", index=False)
    assert '"Avoid" is all I can say.' in list(read_source(str(path))["text"])


def test_json_object_of_columns_and_json_lines_in_a_json_file(tmp_path):
    columns = tmp_path / "columns.json"
    columns.write_text(json.dumps({"text": ["a", "b", "c"], "label": ["x", "y", "x"]}), encoding="utf-8")
    assert list(read_source(str(columns))["label"]) == ["x", "y", "x"]
    lines = tmp_path / "lines.json"
    lines.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n', encoding="utf-8")
    assert list(read_source(str(lines))["label"]) == [1, 2]


def test_saved_dataset_folder(tmp_path):
    folder = tmp_path / "saved"
    datasets.Dataset.from_pandas(pd.read_csv(REVIEWS)).save_to_disk(str(folder))
    prepared = train(str(folder))
    assert prepared.label_names == ["negative", "positive"]
    assert len(prepared.splits["train"]) + len(prepared.splits["validation"]) == 20


def test_saved_dataset_dict_uses_its_splits_and_class_label_names(tmp_path):
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def split(n: int, prefix: str) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {"sentence": [f"{prefix} {i}" for i in range(n)], "label": [i % 2 for i in range(n)]},
            features=features,
        )

    folder = tmp_path / "dict"
    datasets.DatasetDict(
        {"train": split(10, "tr"), "validation": split(4, "va"), "test": split(6, "te")}
    ).save_to_disk(str(folder))
    prepared = train(str(folder))
    assert prepared.label_names == ["neg", "pos"]
    assert {name: len(s) for name, s in prepared.splits.items()} == {"train": 10, "validation": 4, "test": 6}
    assert prepared.splits["test"][TEXT][0] == "te 0"
    assert labels_of(prepared, "validation") == ["neg", "pos", "neg", "pos"]

    other = write_csv(
        tmp_path / "val.csv", [{"sentence": "x", "label": "pos"}, {"sentence": "y", "label": "neg"}]
    )
    overridden = train(str(folder), validation=other)
    assert list(overridden.splits["validation"][TEXT]) == ["x", "y"]
    assert len(overridden.splits["test"]) == 6


def test_saved_dataset_dict_without_a_train_split_is_an_error(tmp_path):
    folder = tmp_path / "dict"
    one = datasets.Dataset.from_dict({"text": ["a", "b"], "label": ["x", "y"]})
    datasets.DatasetDict({"first": one, "second": one}).save_to_disk(str(folder))
    with pytest.raises(DataError, match=r"DatasetDict with splits first, second but none named 'train'"):
        train(str(folder))


def test_builtin_name_comes_with_train_validation_test():
    prepared = train("sms_spam")
    assert sorted(prepared.splits) == ["test", "train", "validation"]
    assert prepared.label_names == ["ham", "spam"]


def test_hub_name_is_loaded_with_load_dataset(monkeypatch):
    calls = []

    def fake_load_dataset(name):
        calls.append(name)
        return datasets.DatasetDict(
            {"train": datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]})}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    prepared = train("someone/reviews")
    assert calls == ["someone/reviews"]
    assert prepared.label_names == ["0", "1"]


def test_hub_failure_says_neither_file_nor_builtin(monkeypatch):
    def offline(name):
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        DataError,
        match=r"neither an existing file or folder nor a built-in dataset \(.*sms_spam.*\).*hub failed",
    ):
        train("someone/nothing")


# --------------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------------


def test_columns_are_detected_case_insensitively(tmp_path):
    path = write_csv(
        tmp_path / "d.csv", [{"id": i, "Review": f"r {i}", "Sentiment": "ab"[i % 2]} for i in range(10)]
    )
    prepared = train(path)
    assert (prepared.text_column, prepared.label_column) == ("Review", "Sentiment")


def test_explicit_columns(tmp_path):
    rows = [{"body": f"b {i}", "title": f"t {i}", "y": "ab"[i % 2], "target": "zz"} for i in range(10)]
    prepared = train(write_csv(tmp_path / "d.csv", rows), text_column="title", label_column="y")
    assert prepared.splits["train"][TEXT][0].startswith("t ")
    assert prepared.label_names == ["a", "b"]


def test_pairs_are_detected_from_sentence1_sentence2():
    prepared = train(fixture("pairs.csv"))
    assert (prepared.text_column, prepared.text_pair_column) == ("sentence1", "sentence2")
    assert prepared.splits["train"].column_names == [TEXT, TEXT_PAIR, LABELS]
    row = prepared.splits["train"][0]
    pairs = pd.read_csv(fixture("pairs.csv"))
    assert row[TEXT_PAIR] == pairs.loc[pairs["sentence1"] == row[TEXT], "sentence2"].item()


def test_explicit_text_pair_column(tmp_path):
    rows = [{"claim": f"c {i}", "evidence": f"e {i}", "label": "ab"[i % 2]} for i in range(10)]
    prepared = train(write_csv(tmp_path / "d.csv", rows), text_column="claim", text_pair_column="evidence")
    assert prepared.splits["train"][0][TEXT_PAIR] == prepared.splits["train"][0][TEXT].replace("c", "e")


def test_resolve_text_columns():
    assert resolve_text_columns(["id", "Review", "label"], None, None) == ("Review", None)
    assert resolve_text_columns(["premise", "hypothesis", "label"], None, None) == ("premise", "hypothesis")
    assert resolve_text_columns(["premise", "hypothesis"], None, "hypothesis") == ("premise", "hypothesis")
    assert resolve_text_columns(["text", "context"], None, "context") == ("text", "context")
    assert resolve_text_columns(["a", "b"], "a", "b") == ("a", "b")
    with pytest.raises(DataError, match=r"--text-pair-column 'a' must differ from the text column 'a'"):
        resolve_text_columns(["a", "b"], "a", "a")


def test_ambiguous_text_column_is_an_error(tmp_path):
    path = write_csv(tmp_path / "d.csv", [{"text": "a", "review": "b", "label": "x"}])
    with pytest.raises(
        DataError, match=r"several possible text columns in --data .*d.csv: text, review; set --text-column"
    ):
        train(path)


def test_missing_text_column_lists_the_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", [{"words": "a", "label": "x"}])
    with pytest.raises(
        DataError, match=r"no text column found .*its columns are: label, words; set --text-column"
    ):
        train(path)


def test_missing_explicit_text_column_names_it():
    with pytest.raises(
        DataError,
        match=r"--text-column 'body' is not a column of --data .*reviews.csv; its columns are: label, text",
    ):
        train(str(REVIEWS), text_column="body")


def test_missing_label_column_lists_the_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", [{"text": "a", "stars": "x"}])
    with pytest.raises(
        DataError, match=r"no label column found .*its columns are: stars, text; set --label-column"
    ):
        train(path)


def test_missing_explicit_label_column_names_it():
    with pytest.raises(
        DataError, match=r"--label-column 'stars' is not a column of .*its columns are: label, text"
    ):
        train(str(REVIEWS), label_column="stars")


def test_missing_pair_column_is_an_error():
    with pytest.raises(DataError, match=r"--text-pair-column 'second' is not a column"):
        train(fixture("pairs.csv"), text_column="sentence1", text_pair_column="second")


# --------------------------------------------------------------------------------------------------
# Labels and tasks
# --------------------------------------------------------------------------------------------------


def test_integer_labels_stay_integer_class_names():
    prepared = train(fixture("ratings.csv"))  # one row has no label: pandas would read the column as floats
    assert prepared.task == SINGLE_LABEL
    assert prepared.label_names == ["0", "1", "2"]
    for split in prepared.splits.values():
        for row in split:
            assert row[LABELS] == int(row[TEXT].split()[-1]) % 3


def test_label_names_are_sorted_naturally(tmp_path):
    numbers = write_csv(tmp_path / "n.csv", balanced(30, labels=("10", "9", "-1")))
    assert train(numbers).label_names == ["-1", "9", "10"]
    names = write_csv(tmp_path / "s.csv", balanced(40, labels=("b", "item10", "item2", "A")))
    assert train(names).label_names == ["A", "b", "item2", "item10"]
    assert sort_label_names(["1.5", "1", "0.5"]) == ["0.5", "1", "1.5"]


def test_whole_float_and_integer_labels_name_the_same_class(tmp_path):
    rows = [{"text": f"t {i}", "label": [0, 1.0, "1", "0.0"][i % 4]} for i in range(8)]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert train(str(path)).label_names == ["0", "1"]


def test_mixed_json_label_types_are_read_as_text(tmp_path, caplog):
    rows = [{"text": f"t {i}", "label": [1, "pos", 2][i % 3]} for i in range(9)]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="texttune.data"):
        prepared = train(path)
    assert prepared.label_names == ["1", "2", "pos"]
    assert "mixes value types (int, str)" in caplog.text


def test_multi_label_lists_in_jsonl():
    prepared = train(fixture("topics.jsonl"))
    assert prepared.task == MULTI_LABEL
    assert prepared.label_names == ["economy", "politics", "sport"]
    assert prepared.splits["train"].features[LABELS].feature == datasets.Value("float32")
    everything = {row[TEXT]: row[LABELS] for split in prepared.splits.values() for row in split}
    assert everything["Parliament debated the new football stadium tax."] == [1.0, 1.0, 1.0]
    assert everything["The striker scored twice in the final."] == [0.0, 0.0, 1.0]


def test_multi_label_delimiter_strings_in_csv():
    prepared = train(fixture("topics.csv"), label_delimiter="|")
    assert prepared.task == MULTI_LABEL
    assert prepared.label_column == "tags"
    assert prepared.label_names == ["economy", "politics", "sport"]  # " | " parts are stripped
    everything = {row[TEXT]: row[LABELS] for split in prepared.splits.values() for row in split}
    assert everything["Stocks fell as the central bank raised rates."] == [1.0, 1.0, 0.0]


def test_multi_label_rows_without_labels_are_dropped_or_rejected(tmp_path, caplog):
    rows = [{"text": f"t {i}", "labels": [["a"], ["b"], ["a", "b"], []][i % 4]} for i in range(12)]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="texttune.data"):
        prepared = train(path)
    assert sum(len(s) for s in prepared.splits.values()) == 9
    assert "dropped 3 of 12 rows with an empty label set in column 'labels'" in caplog.text
    with pytest.raises(DataError, match=r"3 of 12 rows have no label in column 'labels'"):
        train(path, strict=True)


def test_regression_from_float_labels():
    prepared = train(fixture("scores.csv"))
    assert prepared.task == REGRESSION
    assert prepared.label_names == []
    assert prepared.label_column == "score"
    assert prepared.splits["train"].features[LABELS] == datasets.Value("float32")
    values = sorted(v for s in prepared.splits.values() for v in list(s[LABELS]))
    assert values == pytest.approx(sorted(pd.read_csv(fixture("scores.csv"))["score"]), abs=1e-6)


def test_task_regression_turns_integer_labels_into_floats():
    prepared = train(fixture("ratings.csv"), task="regression")
    assert prepared.task == REGRESSION
    assert set(list(prepared.splits["train"][LABELS])) == {0.0, 1.0, 2.0}


def test_task_regression_needs_numeric_labels():
    with pytest.raises(
        DataError, match=r"--task regression needs numeric labels, but column 'label' .* holds text"
    ):
        train(str(REVIEWS), task="regression")


def test_task_single_label_rejects_list_labels():
    with pytest.raises(DataError, match=r"holds lists of labels; use --task multi_label"):
        train(fixture("topics.jsonl"), task="single_label")


def test_a_single_class_is_an_error(tmp_path):
    path = write_csv(tmp_path / "d.csv", balanced(6, labels=("only",)))
    with pytest.raises(
        DataError,
        match=r"has a single class 'only' in column 'label'; classification needs at least 2 classes",
    ):
        train(path)


def test_unseen_validation_labels_are_named(tmp_path):
    val = write_csv(
        tmp_path / "val.csv", [{"text": f"v {i}", "label": f"new{i}"} for i in range(7)] + balanced(2)
    )
    with pytest.raises(
        DataError,
        match=r"--validation .*val.csv has labels never seen in training: 'new0', 'new1', 'new2', 'new3', 'new4' \(and 2 more\)",
    ):
        train(write_csv(tmp_path / "train.csv", balanced(10)), validation=val)


def test_unseen_test_labels_are_named(tmp_path):
    test = write_csv(tmp_path / "test.csv", [{"text": "x", "label": "maybe"}])
    with pytest.raises(DataError, match=r"--test .*test.csv has labels never seen in training: 'maybe'"):
        train(write_csv(tmp_path / "train.csv", balanced(10)), test=test)


# --------------------------------------------------------------------------------------------------
# Empty texts
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def gappy_csv(tmp_path) -> str:
    rows = balanced(20)
    rows[3]["text"] = ""
    rows[5]["text"] = "   "
    rows[7]["text"] = None
    rows[9]["label"] = None
    return write_csv(tmp_path / "gappy.csv", rows)


def test_empty_texts_and_labels_are_dropped_with_a_warning(gappy_csv, caplog):
    with caplog.at_level(logging.WARNING, logger="texttune.data"):
        prepared = train(gappy_csv)
    assert sum(len(s) for s in prepared.splits.values()) == 16
    assert "dropped 3 of 20 rows with an empty or missing text in column 'text'" in caplog.text
    assert "dropped 1 of 20 rows with a missing label in column 'label'" in caplog.text
    assert all(t.strip() for s in prepared.splits.values() for t in list(s[TEXT]))


def test_strict_rejects_empty_texts(gappy_csv):
    with pytest.raises(
        DataError, match=r"3 of 20 rows have an empty or missing text in column 'text'.*--strict"
    ):
        train(gappy_csv, strict=True)


def test_strict_rejects_missing_labels(tmp_path):
    rows = balanced(6)
    rows[0]["label"] = None
    with pytest.raises(DataError, match=r"1 of 6 rows have a missing label in column 'label'"):
        train(write_csv(tmp_path / "d.csv", rows), strict=True)


def test_no_usable_rows_is_an_error(tmp_path):
    path = write_csv(tmp_path / "d.csv", [{"text": " ", "label": "a"}, {"text": None, "label": "b"}])
    with pytest.raises(
        DataError, match=r"has no usable rows: all 2 rows have an empty text or a missing label"
    ):
        train(path)


# --------------------------------------------------------------------------------------------------
# Splits and subsets
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def imbalanced_csv(tmp_path) -> str:
    rows = [{"text": f"t {i}", "label": "rare" if i % 5 == 0 else "common"} for i in range(200)]
    return write_csv(tmp_path / "imbalanced.csv", rows)


def test_validation_split_is_stratified_and_seeded(imbalanced_csv):
    first = train(imbalanced_csv, validation_split=0.2)
    counts = Counter(labels_of(first, "validation"))
    assert counts == {"common": 32, "rare": 8}  # the 80/20 class balance of the whole file
    assert Counter(labels_of(first)) == {"common": 128, "rare": 32}
    again = train(imbalanced_csv, validation_split=0.2)
    assert list(again.splits["validation"][TEXT]) == list(first.splits["validation"][TEXT])
    other = train(imbalanced_csv, validation_split=0.2, data_seed=7)
    assert list(other.splits["validation"][TEXT]) != list(first.splits["validation"][TEXT])
    assert not set(list(first.splits["train"][TEXT])) & set(list(first.splits["validation"][TEXT]))


def test_split_falls_back_to_random_when_a_class_has_one_row(tmp_path, caplog):
    rows = balanced(20) + [{"text": "lonely", "label": "solo"}]
    with caplog.at_level(logging.WARNING, logger="texttune.data"):
        prepared = train(write_csv(tmp_path / "d.csv", rows))
    assert "fewer than 2 training rows; the validation split is not stratified" in caplog.text
    assert len(prepared.splits["train"]) + len(prepared.splits["validation"]) == 21
    assert prepared.label_names == ["neg", "pos", "solo"]


def test_one_row_cannot_be_split(tmp_path):
    path = write_csv(tmp_path / "d.csv", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    with pytest.raises(DataError, match=r"cannot hold out --validation-split 0.9 of 2 rows"):
        train(path, validation_split=0.9)


def test_max_train_and_eval_samples_take_seeded_subsets(tmp_path):
    source = write_csv(tmp_path / "train.csv", balanced(100))
    test = write_csv(tmp_path / "test.csv", balanced(30, prefix="test"))
    prepared = train(source, test=test, max_train_samples=10, max_eval_samples=4)
    sizes = {name: len(split) for name, split in prepared.splits.items()}
    assert sizes == {"train": 10, "validation": 4, "test": 4}
    again = train(source, test=test, max_train_samples=10, max_eval_samples=4)
    for name in sizes:
        assert list(again.splits[name][TEXT]) == list(prepared.splits[name][TEXT])
    full = train(source, test=test)
    assert set(list(prepared.splits["train"][TEXT])) <= set(list(full.splits["train"][TEXT]))
    assert set(list(prepared.splits["validation"][TEXT])) <= set(list(full.splits["validation"][TEXT]))


# --------------------------------------------------------------------------------------------------
# load_labelled
# --------------------------------------------------------------------------------------------------


def labelled(source: str, cfg: DataConfig | None = None, **kwargs) -> datasets.Dataset:
    options = {
        "task": SINGLE_LABEL,
        "label_names": ["positive", "negative"],
        "text_column": "text",
        "text_pair_column": None,
        "label_column": "label",
    }
    options.update(kwargs)
    return load_labelled(source, cfg or DataConfig(), **options)


def test_load_labelled_maps_labels_with_the_given_names():
    dataset = labelled(str(REVIEWS))  # ids follow the given order, not the sorted one
    frame = pd.read_csv(REVIEWS)
    assert list(dataset[TEXT]) == frame["text"].tolist()
    assert list(dataset[LABELS]) == [0 if label == "positive" else 1 for label in frame["label"]]


def test_load_labelled_rejects_unseen_labels():
    with pytest.raises(
        DataError, match=r"--data .*reviews.csv has labels never seen in training: 'positive'"
    ):
        labelled(str(REVIEWS), label_names=["negative", "neutral"])


def test_load_labelled_applies_max_eval_samples():
    dataset = labelled(str(REVIEWS), DataConfig(max_eval_samples=5))
    assert len(dataset) == 5
    assert list(dataset[TEXT]) == list(labelled(str(REVIEWS), DataConfig(max_eval_samples=5))[TEXT])


def test_load_labelled_detects_columns_the_file_names_differently():
    dataset = labelled(fixture("reviews.json"), text_column="review", label_column="sentiment")
    assert len(dataset) == 20


def test_load_labelled_explicit_column_must_exist():
    with pytest.raises(DataError, match=r"--text-column 'review' is not a column"):
        labelled(str(REVIEWS), DataConfig(text_column="review"))


def test_load_labelled_pairs_and_multi_label_and_regression():
    pairs = labelled(
        fixture("pairs.csv"),
        label_names=["contradiction", "entailment"],
        text_column="sentence1",
        text_pair_column="sentence2",
    )
    assert pairs.column_names == [TEXT, TEXT_PAIR, LABELS]
    multi = labelled(fixture("topics.jsonl"), task=MULTI_LABEL, label_names=["sport", "politics", "economy"])
    assert multi[1][LABELS] == [1.0, 0.0, 0.0]
    scores = labelled(
        fixture("scores.csv"), task=REGRESSION, label_names=[], text_column="review", label_column="score"
    )
    assert scores[0][LABELS] == pytest.approx(4.8)


def test_load_labelled_needs_the_pair_column_of_a_pair_run():
    with pytest.raises(
        DataError, match=r"second column 'hypothesis' is not a column of --data .*reviews.csv"
    ):
        labelled(str(REVIEWS), text_column="premise", text_pair_column="hypothesis")


def test_load_labelled_uses_the_test_split_of_a_builtin():
    dataset = labelled("sms_spam", label_names=["ham", "spam"])
    assert len(dataset) == len(datasets_builtin_test("sms_spam"))


def datasets_builtin_test(name: str) -> datasets.Dataset:
    from texttune.assets import load_builtin_dataset

    return load_builtin_dataset(name)["test"]


# --------------------------------------------------------------------------------------------------
# iter_frames
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["reviews.csv", "reviews.tsv", "reviews.jsonl", "reviews.json", "parquet", "gz"]
)
def test_iter_frames_chunks_concatenate_to_the_file(name, reviews_parquet, reviews_gz):
    path = {"parquet": reviews_parquet, "gz": reviews_gz}.get(name) or fixture(name)
    chunks = list(iter_frames(path, 7))
    assert [len(c) for c in chunks] == [7, 7, 6]
    whole = pd.concat(chunks, ignore_index=True)
    expected = pd.read_csv(REVIEWS, dtype=str)
    assert sorted(whole.columns) == ["label", "text"]
    pd.testing.assert_frame_equal(whole[["text", "label"]].astype(object), expected.astype(object))


def test_iter_frames_keeps_every_column_as_written(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,text,extra\n007,a,\n008,b,x\n009,c,y\n", encoding="utf-8")
    whole = pd.concat(iter_frames(str(path), 2), ignore_index=True)
    assert whole["id"].tolist() == ["007", "008", "009"]
    assert pd.isna(whole["extra"][0])


def test_iter_frames_reads_saved_datasets(tmp_path):
    folder = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": list("abcde")}).save_to_disk(str(folder))
    assert [len(c) for c in iter_frames(str(folder), 2)] == [2, 2, 1]


def test_iter_frames_errors(tmp_path):
    with pytest.raises(DataError, match=r"data file not found: .*nope.csv \(check --data\)"):
        list(iter_frames(str(tmp_path / "nope.csv"), 10))
    header = tmp_path / "header.csv"
    header.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"has no rows"):
        list(iter_frames(str(header), 10))
    with pytest.raises(DataError, match=r"not valid utf-8 text .*--encoding latin-1"):
        list(iter_frames(fixture("latin1.csv"), 2))
    assert sum(len(c) for c in iter_frames(fixture("latin1.csv"), 2, encoding="latin-1")) == 6


# --------------------------------------------------------------------------------------------------
# Source errors
# --------------------------------------------------------------------------------------------------


def test_no_data_given():
    with pytest.raises(DataError, match=r"no training data given; pass --data"):
        load_training_data(DataConfig())


@pytest.mark.parametrize("flag", ["--data", "--validation", "--test"])
def test_missing_file_names_the_flag(flag, tmp_path):
    missing = str(tmp_path / "missing.csv")
    options = {"data": missing} if flag == "--data" else {"data": str(REVIEWS), flag[2:]: missing}
    with pytest.raises(DataError, match=rf"data file not found: .*missing.csv \(check {flag}\)"):
        load_training_data(DataConfig(**options))


def test_folder_that_is_not_a_saved_dataset(tmp_path):
    with pytest.raises(DataError, match=r"is a folder but not a dataset saved with datasets' save_to_disk"):
        train(str(tmp_path))


def test_non_utf8_file_suggests_an_encoding():
    with pytest.raises(
        DataError, match=r"latin1.csv is not valid utf-8 text \(byte 0xe9 .*--encoding latin-1"
    ):
        train(fixture("latin1.csv"))
    assert train(fixture("latin1.csv"), encoding="latin-1").splits["train"][0][TEXT].startswith("café")


def test_unknown_encoding():
    with pytest.raises(DataError, match=r"--encoding 'klingon' is not a known text encoding"):
        train(str(REVIEWS), encoding="klingon")


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.json", "blank.csv"])
def test_empty_file(name, tmp_path):
    path = tmp_path / name
    path.write_text("\n\n" if name.startswith("blank") else "", encoding="utf-8")
    with pytest.raises(DataError, match=r"data file is empty: .*\(check --data\)"):
        train(str(path))


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"header.csv has a header but no rows \(check --data\)"):
        train(str(path))


def test_empty_json_array(tmp_path):
    path = tmp_path / "none.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match=r"none.json has no rows"):
        train(str(path))


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    path = tmp_path / "book.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(
        DataError,
        match=r"unsupported data file type: book.xlsx .*supported: .csv, .tsv, .json, .jsonl, .parquet",
    ):
        train(str(path))


def test_missing_file_with_a_data_extension_is_not_looked_up_on_the_hub(monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", lambda name: pytest.fail("the hub was asked"))
    with pytest.raises(DataError, match=r"data file not found: reviews.parquet \(check --data\)"):
        train("reviews.parquet")


def test_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"text": "a", "label": 1},', encoding="utf-8")
    with pytest.raises(
        DataError, match=r"bad.json is not valid JSON \(line 1: .*\); expected an array of records"
    ):
        train(str(path))
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"text": "a", "label": 1}\n{"text": "b", label: 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl line 2 is not valid JSON"):
        train(str(lines))
    array = tmp_path / "numbers.json"
    array.write_text("[1, 2, 3]", encoding="utf-8")
    with pytest.raises(DataError, match=r"item 0 of the JSON array is a int, not an object"):
        train(str(array))


def test_csv_with_broken_rows(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("text,label\na,b\nc,d,e,f\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"could not parse .*broken.csv as CSV \(.*\); every row needs the same number"
    ):
        train(str(path))


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(DataError, match=r"could not read .*broken.parquet as Parquet"):
        train(str(path))


def test_read_source_returns_raw_rows():
    raw = read_source(str(REVIEWS))
    assert isinstance(raw, datasets.Dataset)
    assert raw.column_names == ["text", "label"]
    copied = read_source("sms_spam")
    assert isinstance(copied, datasets.DatasetDict)


def test_module_constants():
    assert (SINGLE_LABEL, MULTI_LABEL, REGRESSION) == data_module.TASKS
    assert (TEXT, TEXT_PAIR, LABELS) == ("text", "text_pair", "labels")


def test_unlabelled_test_split_of_a_dataset_dict_is_skipped(tmp_path, caplog):
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])}
    )
    labelled_split = datasets.Dataset.from_dict(
        {"text": [f"t {i}" for i in range(10)], "label": [0, 1] * 5}, features=features
    )
    unlabelled = datasets.Dataset.from_dict({"text": ["u 0", "u 1"], "label": [-1, -1]}, features=features)
    folder = tmp_path / "glue-like"
    datasets.DatasetDict({"train": labelled_split, "test": unlabelled}).save_to_disk(str(folder))
    with caplog.at_level(logging.WARNING, logger="texttune.data"):
        prepared = train(str(folder))
    assert sorted(prepared.splits) == ["train", "validation"]
    assert "(split 'test') has no labels in column 'label'; it is not used" in caplog.text


@pytest.mark.parametrize("name", ["bom.csv", "bom.tsv", "bom.json", "bom.jsonl"])
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(name, tmp_path):
    rows = balanced(10)
    if name.endswith(".csv"):
        body = "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows)
    elif name.endswith(".tsv"):
        body = "text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows)
    elif name.endswith(".json"):
        body = json.dumps(rows)
    else:
        body = "".join(json.dumps(r) + "\n" for r in rows)
    path = tmp_path / name
    path.write_text("\ufeff" + body, encoding="utf-8")
    prepared = train(str(path))
    assert prepared.text_column == "text" and prepared.label_names == ["neg", "pos"]
    assert sum(len(s) for s in prepared.splits.values()) == 10
    assert len(list(iter_frames(str(path), 4))[0].columns) == 2


@pytest.mark.parametrize("sep", [",", "\t"])
def test_quoted_newlines_inside_fields_stay_in_the_text(sep, tmp_path):
    rows = "".join(f'"first line {i}\nsecond line"{sep}{("neg", "pos")[i % 2]}\n' for i in range(10))
    path = tmp_path / ("multi.tsv" if sep == "\t" else "multi.csv")
    path.write_text(f"text{sep}label\n" + rows, encoding="utf-8")
    prepared = train(str(path))
    texts = sorted(t for s in prepared.splits.values() for t in list(s[TEXT]))
    assert texts == sorted(f"first line {i}\nsecond line" for i in range(10))
    assert sum(len(c) for c in iter_frames(str(path), 3)) == 10


def test_wrong_delimiter_is_named_when_predicting_a_file_too(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("text;label\na;b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"semi.csv looks semicolon-separated"):
        list(iter_frames(str(path), 10))
