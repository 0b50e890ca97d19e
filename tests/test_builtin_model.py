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
