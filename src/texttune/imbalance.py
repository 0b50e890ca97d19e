"""Class imbalance: weighted losses (``--class-weights``) and per-label multi-label thresholds.

Single-label weights scale each example's cross-entropy by its true class's weight; ``auto`` uses the
"balanced" heuristic ``n / (k * count[c])`` (King & Zeng, 2001; scikit-learn's ``class_weight="balanced"``).
Multi-label weights are BCE ``pos_weight`` values, one per label; ``auto`` uses ``negatives / positives``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from .config import parse_class_weights
from .errors import ConfigError
from .tasks import MULTI_LABEL, REGRESSION

logger = logging.getLogger(__name__)

#: Candidate multi-label thresholds searched on the validation split.
THRESHOLD_GRID = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))


def resolve_class_weights(spec: str, task: str, label_names: Sequence[str], labels) -> list[float] | None:
    """The loss weights for ``--class-weights spec`` on training ``labels``; None for an unweighted loss.

    Args:
        spec: ``none``, ``auto`` or comma-separated weights in label order.
        task: ``single_label`` or ``multi_label`` (regression has no classes).
        label_names: Class names in id order.
        labels: Training labels: class ids (single-label) or multi-hot rows (multi-label).

    Returns:
        One weight per label, or None.

    Example:
        >>> resolve_class_weights("auto", "single_label", ["ham", "spam"], [0, 0, 0, 1])
        [0.6667, 2.0]
    """
    parsed = parse_class_weights(spec)
    if parsed == "none":
        return None
    if task == REGRESSION:
        raise ConfigError("--class-weights needs classes; regression has none (drop --class-weights)")
    k = len(label_names)
    if isinstance(parsed, list):
        if len(parsed) != k:
            raise ConfigError(
                f"--class-weights gives {len(parsed)} weights but there are {k} labels "
                f"({', '.join(label_names)}); give one weight per label in that order"
            )
        return parsed
    labels = np.asarray(labels)
    if task == MULTI_LABEL:
        positives = labels.sum(axis=0)
        negatives = len(labels) - positives
        weights = negatives / np.maximum(positives, 1)
    else:
        counts = np.bincount(labels.astype(int), minlength=k)
        weights = len(labels) / (k * np.maximum(counts, 1))
    weights = [round(float(w), 4) for w in weights]
    logger.info("class weights: %s", ", ".join(f"{n}={w:g}" for n, w in zip(label_names, weights)))
    return weights


def make_weighted_loss(task: str, weights: Sequence[float]):
    """A ``compute_loss_func`` for ``Trainer`` that applies ``weights`` (see the module docstring).

    The loss is the batch's mean, as every texttune loss (``TexttuneTrainer`` scales it for gradient
    accumulation and passes no ``num_items_in_batch``).
    """
    import torch
    import torch.nn.functional as F

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        w = torch.tensor(weights, dtype=logits.dtype, device=logits.device)
        if task == MULTI_LABEL:
            losses = F.binary_cross_entropy_with_logits(
                logits, labels.to(logits.dtype), pos_weight=w, reduction="none"
            )
        else:
            losses = F.cross_entropy(logits, labels.view(-1), weight=w, reduction="none")
        return losses.mean()

    return loss


def tune_thresholds(probabilities: np.ndarray, labels: np.ndarray, grid: Sequence[float] = THRESHOLD_GRID):
    """Per label, the threshold from ``grid`` with the best F1 on these rows (ties: closest to 0.5).

    Args:
        probabilities: Sigmoid outputs, shape (n, labels).
        labels: Multi-hot truth, shape (n, labels).

    Returns:
        One threshold per label.

    Example:
        >>> tune_thresholds(np.array([[0.3], [0.2], [0.1]]), np.array([[1], [1], [0]]))
        [0.2]
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels).astype(bool)
    grid_array = np.asarray(grid)
    preds = probabilities[:, :, None] >= grid_array[None, None, :]  # (n, labels, thresholds)
    truth = labels[:, :, None]
    tp = (preds & truth).sum(axis=0)
    fp = (preds & ~truth).sum(axis=0)
    fn = (~preds & truth).sum(axis=0)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    distance = np.abs(grid_array - 0.5)
    thresholds = []
    for j in range(labels.shape[1]):
        best = np.flatnonzero(f1[j] == f1[j].max())
        thresholds.append(float(grid_array[best[np.argmin(distance[best])]]))
    return thresholds
