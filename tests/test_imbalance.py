from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

from texttune import Predictor, TrainConfig, train
from texttune.errors import ConfigError
from texttune.imbalance import make_weighted_loss, resolve_class_weights, tune_thresholds


def test_auto_weights_single_and_multi_label():
    assert resolve_class_weights("none", "single_label", ["a", "b"], [0, 1]) is None
    assert resolve_class_weights("auto", "single_label", ["ham", "spam"], [0] * 6 + [1] * 2) == [
        pytest.approx(8 / 12, abs=1e-4),
        2.0,
    ]
    multi = np.array([[1, 0], [1, 0], [1, 1], [0, 0]])
    assert resolve_class_weights("auto", "multi_label", ["x", "y"], multi) == [0.3333, 3.0]
    assert resolve_class_weights("1,6.5", "single_label", ["ham", "spam"], [0, 1]) == [1.0, 6.5]


@pytest.mark.parametrize(
    ("spec", "task", "message"),
    [
        ("1,2,3", "single_label", r"--class-weights gives 3 weights but there are 2 labels \(ham, spam\)"),
        ("auto", "regression", "--class-weights needs classes; regression has none"),
    ],
)
def test_class_weight_errors(spec, task, message):
    with pytest.raises(ConfigError, match=message):
        resolve_class_weights(spec, task, ["ham", "spam"], [0, 1])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("heavy", "--class-weights 'heavy' must be none, auto or comma-separated"),
        ("1,-2", "must be positive"),
    ],
)
def test_class_weight_syntax(spec, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(class_weights=spec)


def test_weighted_loss_matches_torch():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    loss = make_weighted_loss("single_label", [1.0, 4.0])({"logits": logits}, labels)
    per_row = torch.nn.functional.cross_entropy(logits, labels, reduction="none") * torch.tensor([1.0, 4, 4])
    assert loss.item() == pytest.approx(per_row.mean().item(), rel=1e-6)
    multi = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, multi, pos_weight=torch.tensor([2.0, 0.5])
    )
    assert make_weighted_loss("multi_label", [2.0, 0.5])({"logits": logits}, multi).item() == pytest.approx(
        expected.item(), rel=1e-6
    )


def test_tune_thresholds_picks_best_f1_per_label():
    probs = np.array([[0.9, 0.30], [0.8, 0.25], [0.7, 0.10], [0.2, 0.05]])
    labels = np.array([[1, 1], [1, 1], [1, 0], [0, 0]])
    assert tune_thresholds(probs, labels) == [0.5, 0.25]  # perfect F1 in (0.2, 0.7] and (0.1, 0.25]


def _imbalanced_csv(make_review, path, n: int = 64) -> str:
    rng = random.Random(5)
    rows = [
        {"text": make_review(rng, i % 8 == 0), "label": "spam" if i % 8 == 0 else "ham"} for i in range(n)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_class_weights_change_the_training_loss(tiny_bert, tmp_path, run_config, make_review):
    data = _imbalanced_csv(make_review, tmp_path / "spam.csv")
    plain = train(run_config(tiny_bert, data, tmp_path / "plain", report=False))
    weighted = train(run_config(tiny_bert, data, tmp_path / "weighted", report=False, class_weights="auto"))
    first = [r["loss"] for r in plain.log_history if "loss" in r][0]
    first_weighted = [r["loss"] for r in weighted.log_history if "loss" in r][0]
    assert first != pytest.approx(first_weighted)  # same seed and data: only the loss weights differ
    manifest = json.loads((weighted.output / "texttune.json").read_text())
    assert manifest["config"]["train"]["class_weights"] == "auto"


def test_multi_label_thresholds_are_tuned_stored_and_used(tiny_bert, tmp_path, run_config, make_review):
    rng = random.Random(2)
    rows = [
        {"text": make_review(rng, i % 2 == 0), "tags": ["pos"] if i % 2 == 0 else ["neg", "long"]}
        for i in range(48)
    ]
    data = tmp_path / "multi.jsonl"
    pd.DataFrame(rows).to_json(data, orient="records", lines=True)
    result = train(run_config(tiny_bert, str(data), tmp_path / "multi", report=False, class_weights="auto"))
    manifest = json.loads((result.output / "texttune.json").read_text())
    thresholds = manifest["thresholds"]
    assert len(thresholds) == 3 and all(0.05 <= t <= 0.95 for t in thresholds)

    predictor = Predictor.load(result.output)
    texts = ["good fun film", "awful boring plot", "the story"]
    probs = predictor.probabilities(predictor.logits(texts))
    for prediction, row in zip(predictor.predict(texts), probs):
        expected = [n for n, p, t in zip(predictor.label_names, row, thresholds) if p >= t]
        assert prediction.label == expected
