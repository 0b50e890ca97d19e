from __future__ import annotations

import numpy as np
import pytest

from texttune.metrics import evaluate_predictions, format_report, make_compute_metrics, plot_confusion_matrix


def test_single_label_metrics():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    labels = np.array([0, 1, 2, 2])
    report = evaluate_predictions("single_label", ["a", "b", "c"], logits, labels)
    assert report["accuracy"] == pytest.approx(0.75)
    assert report["per_class"]["c"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert report["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert report["f1_macro"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert -1 <= report["mcc"] <= 1


def test_multi_label_metrics():
    logits = np.array([[3.0, -3.0], [3.0, 3.0], [-3.0, -3.0]])
    labels = np.array([[1, 0], [1, 1], [0, 1]])
    report = evaluate_predictions("multi_label", ["x", "y"], logits, labels)
    assert report["subset_accuracy"] == pytest.approx(2 / 3)
    assert report["f1_micro"] == pytest.approx(2 * 3 / (2 * 3 + 1))


def test_regression_metrics():
    preds = np.array([[1.0], [2.0], [3.0]])
    report = evaluate_predictions("regression", [], preds, np.array([1.0, 2.0, 4.0]))
    assert report["mse"] == pytest.approx(1 / 3)
    assert report["spearman"] == pytest.approx(1.0)


def test_compute_metrics_returns_scalars():
    from transformers import EvalPrediction

    fn = make_compute_metrics("single_label", ["a", "b"])
    out = fn(EvalPrediction(predictions=np.array([[1.0, 0.0], [0.0, 1.0]]), label_ids=np.array([0, 0])))
    assert out["accuracy"] == 0.5 and all(isinstance(v, float) for v in out.values())


def test_report_and_picture(tmp_path):
    report = evaluate_predictions(
        "single_label", ["neg", "pos"], np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])
    )
    text = format_report(report)
    assert "accuracy" in text and "neg" in text
    path = plot_confusion_matrix(report["confusion_matrix"], ["neg", "pos"], tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_model_that_predicts_one_class_is_flagged():
    from texttune.metrics import ONE_CLASS, evaluate_predictions, format_report, one_class_advice

    constant = evaluate_predictions(
        "single_label", ["a", "b"], np.array([[2.0, 0.0]] * 4), np.array([0, 1, 0, 1])
    )
    assert constant["warning"] == ONE_CLASS == "predicts one class"
    assert format_report(constant).startswith("WARNING: predicts one class")
    assert "--strategy setfit" in one_class_advice(constant)
    mixed = evaluate_predictions(
        "single_label", ["a", "b"], np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 1])
    )
    assert "warning" not in mixed and one_class_advice(mixed) is None
