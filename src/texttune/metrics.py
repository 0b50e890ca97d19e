"""Metrics from logits with scikit-learn, per-class reports and the confusion-matrix picture."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import (
    answered,
    apply_temperature,
    confidence_for_accuracy,
    expected_calibration_error,
    reliability,
    sampled_risk_coverage,
)
from .errors import ConfigError
from .tasks import MULTI_LABEL, REGRESSION

logger = logging.getLogger(__name__)

#: Multi-label decision threshold on each label's sigmoid probability.
DEFAULT_THRESHOLD = 0.5
#: ``metrics.json``'s ``warning`` when every prediction is the same class.
ONE_CLASS = "predicts one class"


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def evaluate_predictions(
    task: str,
    label_names: list[str],
    logits: np.ndarray,
    labels: np.ndarray,
    threshold: float | np.ndarray = DEFAULT_THRESHOLD,
    temperature: float | list[float] | None = None,
    *,
    min_confidence: float | None = None,
    target_accuracy: float | None = None,
) -> dict[str, Any]:
    """Every metric for one split: scalar metrics at the top level, plus ``per_class`` and ``confusion_matrix``.

    Classification reports include the expected calibration error (``ece``) of the probabilities the run
    predicts: with ``temperature`` (see :mod:`texttune.calibration`) those are the calibrated ones, and
    ``ece_uncalibrated`` gives the error before calibration. Single-label reports can add abstention:
    ``min_confidence`` gives the share of rows answered at that threshold (``coverage``) and the accuracy on
    them, and ``target_accuracy`` the threshold that reaches it (see :mod:`texttune.calibration`).

    Example:
        >>> import numpy as np
        >>> r = evaluate_predictions("single_label", ["a", "b"], np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 1]))
        >>> r["accuracy"]
        1.0
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if task == REGRESSION:
        return _regression(logits.reshape(-1), labels.reshape(-1).astype(np.float64))
    calibrated = apply_temperature(logits, temperature)
    if task == MULTI_LABEL:
        report = _multi_label(label_names, calibrated, labels.astype(int), threshold)
    else:
        report = _single_label(label_names, calibrated, labels.astype(int))
    probabilities = (sigmoid if task == MULTI_LABEL else softmax)(calibrated)
    report["ece"] = expected_calibration_error(task, probabilities, labels)
    if temperature is not None:
        uncalibrated = (sigmoid if task == MULTI_LABEL else softmax)(logits)
        report["ece_uncalibrated"] = expected_calibration_error(task, uncalibrated, labels)
    report["reliability"] = reliability(task, probabilities, labels)
    if task == MULTI_LABEL or not len(labels):
        return report
    report["risk_coverage"] = sampled_risk_coverage(probabilities, labels)
    if min_confidence is not None:
        report.update(answered(probabilities, labels, min_confidence))
    if target_accuracy is not None:
        found = confidence_for_accuracy(probabilities, labels, target_accuracy)
        report.update(found or {"target_accuracy": target_accuracy, "coverage_at_target": 0.0})
    return report


def scalar_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The numbers of a report that fit on one log line (what the Trainer logs per epoch)."""
    return {k: float(v) for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def make_compute_metrics(task: str, label_names: list[str], threshold: float = DEFAULT_THRESHOLD):
    """A ``compute_metrics`` callback for ``Trainer`` that logs the scalar metrics of :func:`evaluate_predictions`."""

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        if isinstance(logits, tuple):
            logits = logits[0]
        report = evaluate_predictions(task, label_names, logits, eval_prediction.label_ids, threshold)
        return scalar_metrics(report)

    return compute_metrics


def default_best_metric(task: str) -> tuple[str, bool]:
    """(metric name, greater is better) used to pick the best epoch when ``--metric-for-best-model`` is unset."""
    if task == REGRESSION:
        return "mse", False
    if task == MULTI_LABEL:
        return "f1_micro", True
    return "accuracy", True


def best_metric(task: str, chosen: str | None = None) -> tuple[str, bool]:
    """The metric that picks the best epoch (``--metric-for-best-model``, else the task's default) and
    whether greater is better."""
    if not chosen:
        return default_best_metric(task)
    metric = chosen.removeprefix("eval_")
    return metric, metric_direction(metric)


def metric_direction(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better."""
    return not any(part in name for part in ("loss", "mse", "mae", "error"))


def _single_label(label_names: list[str], logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        matthews_corrcoef,
        precision_recall_fscore_support,
    )

    preds = logits.argmax(axis=-1)
    ids = list(range(len(label_names)))
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=ids, zero_division=0)
    macro = precision_recall_fscore_support(labels, preds, labels=ids, average="macro", zero_division=0)
    weighted_f1 = precision_recall_fscore_support(
        labels, preds, labels=ids, average="weighted", zero_division=0
    )[2]
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "precision_macro": float(macro[0]),
        "recall_macro": float(macro[1]),
        "f1_macro": float(macro[2]),
        "f1_weighted": float(weighted_f1),
        "mcc": float(matthews_corrcoef(labels, preds)) if len(labels) else 0.0,
        "samples": int(len(labels)),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion_matrix(labels, preds, labels=ids).tolist(),
        **({"warning": ONE_CLASS} if len(label_names) > 1 and len(set(preds.tolist())) == 1 else {}),
    }


def one_class_advice(report: dict[str, Any]) -> str | None:
    """What to tell a user whose model predicts one class for every text, or None if it does not."""
    if report.get("warning") != ONE_CLASS:
        return None
    return (
        "the model predicts one class for every text: it learned nothing beyond the majority label. Train "
        "longer or with a larger learning rate (--epochs, --learning-rate), check the labels, or for a few "
        "examples per class use --strategy setfit"
    )


def _multi_label(
    label_names: list[str], logits: np.ndarray, labels: np.ndarray, threshold: float | np.ndarray
) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    preds = (sigmoid(logits) >= threshold).astype(int)
    p, r, f, s = precision_recall_fscore_support(labels, preds, zero_division=0)
    micro = precision_recall_fscore_support(labels, preds, average="micro", zero_division=0)
    macro = precision_recall_fscore_support(labels, preds, average="macro", zero_division=0)
    return {
        "subset_accuracy": float(accuracy_score(labels, preds)),
        "f1_micro": float(micro[2]),
        "f1_macro": float(macro[2]),
        "precision_micro": float(micro[0]),
        "recall_micro": float(micro[1]),
        "samples": int(len(labels)),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(label_names)
        },
    }


def _regression(preds: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    constant = len(labels) < 2 or np.std(preds) == 0 or np.std(labels) == 0
    return {
        "mse": float(mean_squared_error(labels, preds)),
        "mae": float(mean_absolute_error(labels, preds)),
        "pearson": 0.0 if constant else float(pearsonr(preds, labels)[0]),
        "spearman": 0.0 if constant else float(spearmanr(preds, labels)[0]),
        "samples": int(len(labels)),
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of a report: any warning, the scalar metrics, then one row per class."""
    lines = [f"WARNING: {report['warning']}"] if report.get("warning") else []
    scalars = {name: value for name, value in scalar_metrics(report).items() if name != "samples"}
    width = max(18, *(len(name) + 2 for name in scalars)) if scalars else 18
    lines += [f"{name:<{width}}{value:.4f}" for name, value in scalars.items()]
    per_class = report.get("per_class")
    if per_class:
        width = max(12, *(len(n) + 2 for n in per_class))
        lines.append("")
        lines.append(f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
        for name, row in per_class.items():
            lines.append(
                f"{name:<{width}}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10d}"
            )
    return "\n".join(lines)


def plot_confusion_matrix(
    matrix: list[list[int]], label_names: list[str], path: str | Path, title: str = ""
) -> Path:
    """Draw the confusion matrix (rows: true label, columns: predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.asarray(matrix)
    size = max(4.0, 0.6 * len(label_names) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(data, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(label_names)), labels=label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), labels=label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    threshold = data.max() / 2 if data.size else 0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(
                j,
                i,
                str(data[i, j]),
                ha="center",
                va="center",
                color="white" if data[i, j] > threshold else "black",
            )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def check_metric_name(name: str, task: str, label_names: list[str]) -> None:
    """Refuse a ``--metric-for-best-model`` that the task does not report (before any training).

    The known names come from a report computed on two dummy rows, so they are exactly the task's.
    """
    n = max(1, len(label_names))
    if task == REGRESSION:
        report = evaluate_predictions(task, [], np.zeros((2, 1)), np.zeros(2))
    else:
        labels = np.zeros((2, n)) if task == MULTI_LABEL else np.zeros(2)
        report = evaluate_predictions(task, label_names, np.zeros((2, n)), labels)
    known = sorted(scalar_metrics(report)) + ["loss"]
    if name.removeprefix("eval_") not in known:
        raise ConfigError(
            f"--metric-for-best-model {name!r} is not a metric of this task; choose one of {', '.join(known)}"
        )
