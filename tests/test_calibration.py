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
