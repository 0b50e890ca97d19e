"""Temperature scaling and expected calibration error (texttune.calibration), and calibrated runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from texttune.calibration import apply_temperature, expected_calibration_error, fit_temperature
from texttune.metrics import sigmoid, softmax


def _sample_classes(rng, logits):
    probabilities = softmax(logits)
    return np.array([rng.choice(len(p), p=p) for p in probabilities])


def test_temperature_undoes_overconfidence_without_changing_a_prediction():
    rng = np.random.default_rng(0)
    honest = rng.normal(0, 2, size=(6000, 3))  # labels are drawn from softmax(honest): calibrated by design
    labels = _sample_classes(rng, honest)
    overconfident = honest * 3.0
    temperature = fit_temperature("single_label", overconfident[:3000], labels[:3000])
    assert temperature == pytest.approx(3.0, rel=0.1)
    calibrated = apply_temperature(overconfident, temperature)
    assert (calibrated.argmax(axis=1) == overconfident.argmax(axis=1)).all()
    held_out = slice(3000, None)  # the fit never saw these rows
    before = expected_calibration_error("single_label", softmax(overconfident[held_out]), labels[held_out])
    after = expected_calibration_error("single_label", softmax(calibrated[held_out]), labels[held_out])
    assert before > 0.1 and after < 0.03


def test_multi_label_runs_get_one_temperature_per_label():
    rng = np.random.default_rng(1)
    honest = rng.normal(0, 2, size=(5000, 2))
    labels = (rng.random(honest.shape) < sigmoid(honest)).astype(int)
    temperatures = fit_temperature("multi_label", honest * np.array([2.0, 0.5]), labels)
    assert temperatures == [pytest.approx(2.0, rel=0.15), pytest.approx(0.5, rel=0.15)]
    assert fit_temperature("regression", honest[:, :1], honest[:, 0]) is None


def test_expected_calibration_error_is_the_weighted_gap_per_confidence_bin():
    # 0.9 confident and right, 0.6 confident and wrong: (|0.9 - 1| + |0.6 - 0|) / 2
    assert (
        expected_calibration_error("single_label", np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]))
        == 0.35
    )
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error("single_label", perfect, np.array([0, 1])) == 0.0
    # multi-label: each label's probability against the label's presence
    assert expected_calibration_error("multi_label", np.array([[0.8, 0.2]]), np.array([[1, 0]])) == 0.2


def test_a_run_stores_its_temperature_and_predicts_with_it(tiny_bert, reviews_csv, tmp_path, run_config):
    from texttune import Predictor, train

    result = train(run_config(tiny_bert, reviews_csv, tmp_path / "run"))
    manifest = json.loads((result.output / "texttune.json").read_text())
    temperature = manifest["temperature"]
    assert isinstance(temperature, float) and temperature > 0
    assert {"ece", "ece_uncalibrated"} <= set(result.metrics)
    predictor = Predictor.load(result.output)
    texts = ["good great fine", "bad awful poor"]
    expected = softmax(predictor.logits(texts) / temperature)
    scores = [prediction.score for prediction in predictor.predict(texts)]
    assert scores == pytest.approx(expected.max(axis=1).tolist(), abs=1e-6)

    plain = train(run_config(tiny_bert, reviews_csv, tmp_path / "plain", calibrate=False))
    assert json.loads((plain.output / "texttune.json").read_text())["temperature"] is None
    assert "ece" in plain.metrics and "ece_uncalibrated" not in plain.metrics


def test_min_confidence_abstains_in_predictions_files_and_evaluation(
    untrained_run, reviews_csv, tmp_path, capsys
):
    import pandas as pd

    from texttune import Predictor
    from texttune.cli import main

    texts = pd.read_csv(reviews_csv)["text"].tolist()
    scores = np.array([p.score for p in Predictor.load(untrained_run).predict(texts)])
    # The middle of the widest gap between scores: batches of other sizes pad differently, which moves an
    # untrained model's near-equal scores by ~1e-7, and no score may sit that close to the threshold.
    ranked = np.sort(scores)
    widest = int(np.argmax(np.diff(ranked)))
    floor = float(ranked[widest] + ranked[widest + 1]) / 2
    assert main(["predict", untrained_run, *texts[:6], "--min-confidence", str(floor), "--json"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["abstained"] for a in answers] == (scores[:6] < floor).tolist()
    assert all((a["label"] is None) == a["abstained"] for a in answers)

    out = tmp_path / "predictions.csv"
    assert (
        main(
            [
                "predict",
                untrained_run,
                "--data",
                reviews_csv,
                "--output",
                str(out),
                "--min-confidence",
                str(floor),
            ]
        )
        == 0
    )
    capsys.readouterr()
    rows = pd.read_csv(out)
    assert rows["abstained"].tolist() == (scores < floor).tolist()
    assert rows.loc[rows["abstained"], "predicted_label"].isna().all()

    argv = ["evaluate", untrained_run, "--data", reviews_csv, "--min-confidence", str(floor), "--json"]
    assert main([*argv, "--output", str(tmp_path / "evaluation")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    labels = (pd.read_csv(reviews_csv)["label"] == "positive").to_numpy()
    predicted = np.array([p.label == "positive" for p in Predictor.load(untrained_run).predict(texts)])
    kept = scores >= floor
    assert metrics["coverage"] == pytest.approx(kept.mean(), abs=1e-6)
    assert metrics["answered_accuracy"] == pytest.approx((predicted == labels)[kept].mean(), abs=1e-6)


def test_target_accuracy_suggests_the_threshold_that_reaches_it(untrained_run, reviews_csv, tmp_path, capsys):
    from texttune.cli import main

    argv = ["evaluate", untrained_run, "--data", reviews_csv]
    assert (
        main([*argv, "--output", str(tmp_path / "a"), "--target-accuracy", "0.01"]) == 0
    )  # every row answered
    assert "for accuracy >= 0.01: --min-confidence" in capsys.readouterr().out
    assert main([*argv, "--output", str(tmp_path / "b"), "--target-accuracy", "1", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    if "suggested_min_confidence" in metrics:  # the most confident rows happen to be all right
        assert metrics["accuracy_at_target"] == 1.0 and metrics["coverage_at_target"] < 1.0
    else:
        assert metrics["coverage_at_target"] == 0.0


def test_risk_coverage_and_the_threshold_for_a_target_accuracy():
    from texttune.calibration import answered, confidence_for_accuracy, risk_coverage

    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    labels = np.array([0, 1, 1, 0])  # right at 0.9 and 0.8, wrong at 0.7 and 0.6
    thresholds, coverage, accuracy = risk_coverage(probabilities, labels)
    assert thresholds.tolist() == [0.9, 0.8, 0.7, 0.6]
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0] and accuracy.tolist() == pytest.approx(
        [1, 1, 2 / 3, 0.5]
    )
    assert confidence_for_accuracy(probabilities, labels, 0.9)["suggested_min_confidence"] == 0.8
    assert confidence_for_accuracy(np.array([[0.9, 0.1]]), np.array([1]), 0.5) is None
    assert answered(probabilities, labels, 0.75) == {
        "min_confidence": 0.75,
        "coverage": 0.5,
        "answered_accuracy": 1.0,
    }


def test_min_confidence_is_for_single_label_runs(sentiment_manifest):
    from texttune import Predictor
    from texttune.errors import ConfigError

    manifest = sentiment_manifest("m")
    manifest.task = "multi_label"
    with pytest.raises(
        ConfigError, match="--min-confidence applies to single-label runs; this run is multi-label"
    ):
        Predictor(None, None, manifest, min_confidence=0.9)


def test_the_report_suggests_a_min_confidence_per_target_accuracy():
    from texttune.report import abstention_rows

    validation = {
        "threshold": [0.99, 0.9, 0.7, 0.5],
        "coverage": [0.25, 0.5, 0.75, 1.0],
        "accuracy": [1, 0.96, 0.92, 0.85],
    }
    test = {
        "threshold": [0.98, 0.95, 0.85, 0.6],
        "coverage": [0.3, 0.5, 0.8, 1.0],
        "accuracy": [1, 0.97, 0.9, 0.8],
    }
    rows = abstention_rows({"risk_coverage": validation}, {"risk_coverage": test})
    assert rows == [
        (0.9, 0.7, 0.75, 0.92, 0.8, 0.9),  # the validation threshold, applied to the test curve
        (0.95, 0.9, 0.5, 0.96, 0.5, 0.97),
        (0.99, 0.99, 0.25, 1, 0.0, 0.0),  # no test row is that confident
    ]
    assert (
        abstention_rows({"risk_coverage": {**validation, "accuracy": [0.5] * 4}}, None)[0][1] == "not reached"
    )
