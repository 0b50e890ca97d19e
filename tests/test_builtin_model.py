"""Slow tests on the real built-in model (deselected by default; run with ``-m slow``)."""

from __future__ import annotations

import json

import pytest

from texttune import DataConfig, ModelConfig, Predictor, RunConfig, TrainConfig, train
from texttune.cli import main
from texttune.data import load_training_data

pytestmark = pytest.mark.slow


def test_minilm_learns_sms_spam(tmp_path):
    config = RunConfig(
        data=DataConfig(data="sms_spam", max_train_samples=800, max_eval_samples=300),
        model=ModelConfig(model="minilm", max_length=64),
        train=TrainConfig(output=str(tmp_path / "spam"), epochs=1, learning_rate=1e-4, progress=False),
    )
    result = train(config)
    assert result.metrics["accuracy"] > 0.9
    assert result.test_metrics["per_class"]["spam"]["recall"] > 0.5
    # the reloaded run reproduces the stored test metrics
    test = load_training_data(config.data).splits["test"]
    assert Predictor.load(result.output).evaluate(test)["accuracy"] == result.test_metrics["accuracy"]


def test_demo_command_small(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), "--max-train-samples", "300", "--epochs", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "test split (held out)" in printed and "example predictions" in printed
    assert json.loads((out / "test_metrics.json").read_text())["samples"] > 1000


def test_defaults_learn_from_600_rows(tmp_path):
    """With the BERT recipe (batch 32, 3 epochs: 57 steps) every strategy ended at the majority class here."""
    config = RunConfig(
        data=DataConfig(data="rotten_tomatoes", max_train_samples=600, max_eval_samples=300),
        model=ModelConfig(model="minilm", max_length=64),
        train=TrainConfig(output=str(tmp_path / "small"), progress=False),
    )
    result = train(config)
    recorded = json.loads((result.output / "texttune.json").read_text())["config"]
    assert (recorded["train"]["batch_size"], recorded["model"]["pooling"]) == (16, "mean")
    assert "warning" not in result.metrics and result.test_metrics["accuracy"] > 0.7  # majority: 0.587


def test_the_default_learns_sms_spam_from_eight_examples_per_class(tmp_path):
    """``--strategy auto`` picks setfit for 8 examples per class."""
    from texttune.assets import load_builtin_dataset

    splits = load_builtin_dataset("sms_spam")
    train_rows = splits["train"].to_pandas().groupby("label").head(8)
    train_rows.to_csv(tmp_path / "train.csv", index=False)
    splits["test"].to_pandas().to_csv(tmp_path / "test.csv", index=False)
    splits["validation"].to_pandas().groupby("label").head(8).to_csv(tmp_path / "dev.csv", index=False)
    config = RunConfig(
        data=DataConfig(
            data=str(tmp_path / "train.csv"),
            validation=str(tmp_path / "dev.csv"),
            test=str(tmp_path / "test.csv"),
        ),
        model=ModelConfig(model="minilm", max_length=64),
        train=TrainConfig(output=str(tmp_path / "setfit"), progress=False),
    )
    result = train(config)
    assert json.loads((result.output / "texttune.json").read_text())["strategy"] == "setfit"
    test = result.test_metrics  # always predicting ham: macro-F1 0.46, spam recall 0
    assert test["f1_macro"] > 0.7 and test["per_class"]["spam"]["recall"] > 0.7
    reloaded = Predictor.load(result.output).evaluate(load_training_data(config.data).splits["test"])
    assert reloaded["accuracy"] == test["accuracy"]
