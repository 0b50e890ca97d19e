"""Error analysis of a single-label split: where the model goes wrong, beyond one accuracy number.

Three views, computed from the split's texts, labels and predicted probabilities: the most confident
mistakes (the rows to read first: often a wrong label, sometimes a blind spot of the model), the class
pairs confused most often, and accuracy by text length (quartiles of the length in characters, which
works the same for languages written without spaces).

Example:
    >>> import numpy as np
    >>> found = error_analysis(["good", "bad film", "fine"], np.array([0, 1, 1]),
    ...                        np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]), ["pos", "neg"])
    >>> found["confident_mistakes"][0]["text"], found["confused_pairs"][0]["count"]
    ('bad film', 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Mistakes listed, most confident first.
MISTAKES = 20
#: Confused class pairs listed, most frequent first.
PAIRS = 10
#: Length buckets (quantiles of the characters per text).
LENGTH_BUCKETS = 4


def error_analysis(
    texts: Sequence[str], labels: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The most confident mistakes, the most confused class pairs and accuracy by text length.

    Args:
        texts: The split's texts, in row order.
        labels: Their class ids.
        probabilities: Predicted class probabilities, shape (rows, classes).
        label_names: Class names in id order.

    Returns:
        ``confident_mistakes`` (``row``, ``text``, ``label``, ``predicted``, ``confidence``),
        ``confused_pairs`` (``label``, ``predicted``, ``count``, ``share_of_label``) and
        ``accuracy_by_length`` (``characters``, ``rows``, ``accuracy``).
    """
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=int)
    confidence = probabilities.max(axis=1) if len(probabilities) else np.zeros(0)
    return {
        "confident_mistakes": _confident_mistakes(texts, labels, predicted, confidence, label_names),
        "confused_pairs": _confused_pairs(labels, predicted, label_names),
        "accuracy_by_length": _accuracy_by_length(texts, labels == predicted),
    }


def _confident_mistakes(texts, labels, predicted, confidence, names) -> list[dict[str, Any]]:
    wrong = np.flatnonzero(labels != predicted)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:MISTAKES]
    return [
        {
            "row": int(i),
            "text": str(texts[i]),
            "label": names[labels[i]],
            "predicted": names[predicted[i]],
            "confidence": round(float(confidence[i]), 4),
        }
        for i in worst
    ]


def _confused_pairs(labels, predicted, names) -> list[dict[str, Any]]:
    from sklearn.metrics import confusion_matrix

    ids = list(range(len(names)))
    matrix = confusion_matrix(labels, predicted, labels=ids) if len(labels) else np.zeros((len(ids),) * 2)
    support = matrix.sum(axis=1)
    pairs = [(matrix[t, p], t, p) for t in ids for p in ids if t != p and matrix[t, p] > 0]
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    return [
        {
            "label": names[t],
            "predicted": names[p],
            "count": int(count),
            "share_of_label": round(float(count / support[t]), 4),
        }
        for count, t, p in pairs[:PAIRS]
    ]


def _accuracy_by_length(texts, correct) -> list[dict[str, Any]]:
    if not len(correct):
        return []
    lengths = np.array([len(str(t)) for t in texts])
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, LENGTH_BUCKETS + 1)).round().astype(int))
    buckets = []
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        last = k == len(edges) - 2
        inside = (lengths >= low) & ((lengths <= high) if last else (lengths < high))
        if inside.any():
            label = f"{low}-{high}" if last else f"{low}-{high - 1}"
            buckets.append(
                {
                    "characters": label,
                    "rows": int(inside.sum()),
                    "accuracy": round(float(correct[inside].mean()), 4),
                }
            )
    if len(edges) == 1:  # every text has the same length
        buckets.append(
            {"characters": str(edges[0]), "rows": len(lengths), "accuracy": round(float(correct.mean()), 4)}
        )
    return buckets
