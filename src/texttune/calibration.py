"""Calibrated confidence: temperature scaling fitted on the validation split, and expected calibration error.

A fine-tuned classifier's probabilities are usually over-confident: of the texts it labels with 0.95, far
fewer than 95% are right. Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural
Networks") divides the logits by one number, the temperature, chosen to minimise the negative
log-likelihood of the validation labels (SciPy's bounded scalar minimiser does the fitting). The predicted
class never changes, only how sure the model says it is. A multi-label run gets one temperature per label
(each label's sigmoid is a binary classifier of its own). Regression has no probabilities to calibrate.

Expected calibration error (ECE) measures what is left: the confidences are put in 15 equal-width bins
and ECE is the share-weighted mean gap between each bin's mean confidence and how often its predictions
are right (single-label: the top class; multi-label: every label's probability against the label's
presence).

Calibrated confidence makes abstention meaningful (single-label runs): with ``--min-confidence P`` a text
whose top probability is below P gets no label. :func:`answered` gives the share of texts answered
(coverage) and the accuracy on them; :func:`risk_coverage` the whole trade-off, from which
:func:`confidence_for_accuracy` picks the lowest threshold that reaches a target accuracy.

Example:
    >>> import numpy as np
    >>> logits = np.array([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 4.0]])
    >>> labels = np.array([0, 1, 1, 1])  # right 3 times out of 4, with confidence 0.98
    >>> round(fit_temperature("single_label", logits, labels), 2)
    3.64
"""

from __future__ import annotations

import numpy as np

from .tasks import MULTI_LABEL, REGRESSION

#: Confidence bins of the expected calibration error.
ECE_BINS = 15
#: The temperatures searched (a temperature outside them means the logits carry no usable signal).
TEMPERATURE_RANGE = (0.05, 20.0)


def fit_temperature(task: str, logits: np.ndarray, labels: np.ndarray) -> float | list[float] | None:
    """The temperature (multi-label: one per label) that makes ``logits`` best predict ``labels``.

    Args:
        task: ``single_label`` or ``multi_label`` (regression: None).
        logits: Validation logits, shape (n, classes).
        labels: Class ids (single-label) or the multi-hot matrix (multi-label).

    Returns:
        The temperature, a list of them, or None when there is nothing to calibrate (regression, no rows).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if task == REGRESSION or len(logits) == 0:
        return None
    if task == MULTI_LABEL:
        labels = np.asarray(labels, dtype=np.float64)
        return [
            _fit(lambda t, j=j: _binary_nll(logits[:, j] / t, labels[:, j])) for j in range(logits.shape[1])
        ]
    labels = np.asarray(labels, dtype=int)
    return _fit(lambda t: _softmax_nll(logits / t, labels))


def apply_temperature(logits: np.ndarray, temperature: float | list[float] | None) -> np.ndarray:
    """``logits`` divided by the temperature (per label for a list); unchanged for None."""
    if temperature is None:
        return logits
    return logits / np.asarray(temperature, dtype=logits.dtype if logits.dtype.kind == "f" else np.float64)


def expected_calibration_error(
    task: str, probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """The expected calibration error of ``probabilities`` (see the module docstring).

    Example:
        >>> expected_calibration_error("single_label", np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]))
        0.35
    """
    counts, confidence, outcome = _bins(task, probabilities, labels, bins)
    if counts.sum() == 0:
        return 0.0
    return float(round(np.abs(confidence - outcome).sum() / counts.sum(), 6))


def reliability(
    task: str, probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> dict[str, list]:
    """The reliability diagram: per non-empty confidence bin, the mean confidence, how often it was right
    (multi-label: how often the label was present) and the number of predictions."""
    counts, confidence, outcome = _bins(task, probabilities, labels, bins)
    kept = counts > 0
    return {
        "confidence": np.round(confidence[kept] / counts[kept], 6).tolist(),
        "accuracy": np.round(outcome[kept] / counts[kept], 6).tolist(),
        "rows": counts[kept].tolist(),
    }


def _bins(task: str, probabilities: np.ndarray, labels: np.ndarray, bins: int):
    """Per equal-width confidence bin: the predictions, their summed confidence and summed outcome."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if task == MULTI_LABEL:
        confidence, outcome = probabilities.reshape(-1), np.asarray(labels, dtype=np.float64).reshape(-1)
    else:
        confidence, outcome = _confidence_and_correct(probabilities, labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return (
        np.bincount(which, minlength=bins),
        np.bincount(which, confidence, bins),
        np.bincount(which, outcome, bins),
    )


def answered(probabilities: np.ndarray, labels: np.ndarray, min_confidence: float) -> dict[str, float]:
    """Single-label abstention at ``min_confidence``: the share of rows answered and the accuracy on them.

    Example:
        >>> answered(np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), np.array([0, 1, 0]), 0.7)
        {'min_confidence': 0.7, 'coverage': 0.666667, 'answered_accuracy': 0.5}
    """
    confidence, correct = _confidence_and_correct(probabilities, labels)
    kept = confidence >= min_confidence
    accuracy = float(correct[kept].mean()) if kept.any() else 0.0
    return {
        "min_confidence": min_confidence,
        "coverage": round(float(kept.mean()), 6) if len(kept) else 0.0,
        "answered_accuracy": round(accuracy, 6),
    }


def risk_coverage(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every abstention threshold's trade-off, most confident rows first.

    Returns:
        ``(threshold, coverage, accuracy)``: answering the rows whose confidence is at least
        ``threshold[i]`` answers the share ``coverage[i]`` of them with accuracy ``accuracy[i]``.
    """
    confidence, correct = _confidence_and_correct(probabilities, labels)
    order = np.argsort(-confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    counts = np.arange(1, len(order) + 1)
    accuracy = np.cumsum(correct) / counts
    # A threshold keeps every row of equal confidence: one point per distinct confidence, at its last row.
    last_of_ties = np.r_[confidence[1:] != confidence[:-1], True]
    return confidence[last_of_ties], (counts / len(order))[last_of_ties], accuracy[last_of_ties]


def sampled_risk_coverage(
    probabilities: np.ndarray, labels: np.ndarray, points: int = 100
) -> dict[str, list]:
    """:func:`risk_coverage` at about ``points`` evenly spaced thresholds (for the run report)."""
    thresholds, coverage, accuracy = risk_coverage(probabilities, labels)
    keep = np.unique(np.round(np.linspace(0, len(thresholds) - 1, min(points, len(thresholds)))).astype(int))
    return {
        "threshold": np.round(thresholds[keep], 6).tolist(),
        "coverage": np.round(coverage[keep], 6).tolist(),
        "accuracy": np.round(accuracy[keep], 6).tolist(),
    }


def confidence_for_accuracy(
    probabilities: np.ndarray, labels: np.ndarray, target: float
) -> dict[str, float] | None:
    """The lowest ``--min-confidence`` whose answered rows reach accuracy ``target`` (the most coverage), or
    None when no threshold does.

    Example:
        >>> confidence_for_accuracy(np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), np.array([0, 1, 1]), 0.9)
        {'target_accuracy': 0.9, 'suggested_min_confidence': 0.8, 'coverage_at_target': 0.666667, 'accuracy_at_target': 1.0}
    """
    thresholds, coverage, accuracy = risk_coverage(probabilities, labels)
    reached = np.flatnonzero(accuracy >= target)
    if len(reached) == 0:
        return None
    best = reached[-1]
    return {
        "target_accuracy": target,
        "suggested_min_confidence": round(float(thresholds[best]), 6),
        "coverage_at_target": round(float(coverage[best]), 6),
        "accuracy_at_target": round(float(accuracy[best]), 6),
    }


def _confidence_and_correct(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's top probability, and 1.0 where the top class is the label."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    correct = (probabilities.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    return probabilities.max(axis=1), correct


def _fit(nll) -> float:
    from scipy.optimize import minimize_scalar

    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(lambda log_t: nll(np.exp(log_t)), bounds=(low, high), method="bounded")
    return float(round(np.exp(result.x), 6))


def _softmax_nll(logits: np.ndarray, labels: np.ndarray) -> float:
    from scipy.special import log_softmax

    return float(-log_softmax(logits, axis=1)[np.arange(len(labels)), labels].mean())


def _binary_nll(logits: np.ndarray, labels: np.ndarray) -> float:
    from scipy.special import log_expit

    return float(-(labels * log_expit(logits) + (1 - labels) * log_expit(-logits)).mean())
