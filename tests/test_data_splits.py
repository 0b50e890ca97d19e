"""texttune.data.splits: one seeded subset function, for prepared data and for `texttune evaluate`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import datasets
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything could reach the hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from texttune.artifacts import read_validation_split  # noqa: E402
from texttune.data.splits import EVAL_SPLITS, pick_split, subset  # noqa: E402
from texttune.errors import DataError  # noqa: E402

RUN = Path(__file__).parent / "fixtures" / "runs" / "format-1-full"


def test_subset_gives_the_same_rows_for_the_same_seed():
    frame = pd.DataFrame({"n": range(50)})
    first = subset(frame, 10, seed=7)["n"].tolist()
    assert first == subset(frame, 10, seed=7)["n"].tolist()
    assert first == sorted(first)  # rows keep their original order
    assert len(set(first)) == 10
    assert first != subset(frame, 10, seed=8)["n"].tolist()
    dataset = datasets.Dataset.from_pandas(frame)
    assert list(subset(dataset, 10, seed=7)["n"]) == first  # a Dataset gets the same rows as a DataFrame


def test_subset_keeps_everything_without_a_limit_or_under_it():
    frame = pd.DataFrame({"n": range(5)})
    assert subset(frame, None, seed=1) is frame
    assert subset(frame, 5, seed=1) is frame


def test_evaluate_max_eval_samples_takes_the_seeded_subset(tmp_path, monkeypatch):
    from texttune.evaluation import evaluate_run
    from texttune.inference import Predictor

    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    evaluated: list[list[str]] = []
    evaluate = Predictor.evaluate

    def spy(self, dataset, **options):
        evaluated.append(list(dataset["text"]))
        return evaluate(self, dataset, **options)

    monkeypatch.setattr(Predictor, "evaluate", spy)
    result = evaluate_run(run, max_eval_samples=6, backend="torch", output=tmp_path / "evaluation")
    expected = list(subset(read_validation_split(run), 6, seed=42)["text"])
    assert evaluated == [expected]
    assert sum(sum(row) for row in result.metrics["confusion_matrix"]) == 6


def test_a_split_is_picked_by_preference_then_as_the_only_split():
    one = datasets.Dataset.from_dict({"text": ["a"]})
    both = datasets.DatasetDict({"train": one, "validation": one, "test": one})
    assert pick_split(both, EVAL_SPLITS, "d", "--data").name == "test"
    assert pick_split(datasets.DatasetDict({"only": one}), EVAL_SPLITS, "d", "--data").name == "only"
    assert pick_split(one, EVAL_SPLITS, "d", "--data").where == "--data d"
    several = datasets.DatasetDict({"first": one, "second": one})
    assert pick_split(several, ("train",), "d", "--data", any_split=True).name == "first"
    with pytest.raises(DataError, match=r"DatasetDict with splits first, second but none named 'test'"):
        pick_split(several, EVAL_SPLITS, "d", "--data")
