"""``--strategy setfit``: few-shot classification by the SetFit recipe (Tunstall et al., 2022).

Two steps. First the body learns the labels' geometry: pairs of training texts are sampled (for every
text, one with the same label and one with another, SetFit's 20 rounds, capped by ``--setfit-pairs``)
and the ``Trainer`` fine-tunes the base so that the cosine similarity of their pooled embeddings (the
checkpoint's own pooling, see ``--pooling``) approaches 1 for same-label pairs and 0 for the rest. Then
a logistic regression (scikit-learn, SetFit's default head) is fitted on the tuned embeddings of the
training texts and its coefficients become the linear head of a :class:`texttune.heads.PooledClassifier`.

The ``setfit`` library itself is not used: it saves its head with joblib (a pickle), and texttune runs
hold safetensors and JSON only. The run is an ordinary pooled classifier, so it reloads, exports to ONNX
and serves like a ``full`` run.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..options import require_positive
from ..tasks import SINGLE_LABEL
from . import Strategy, TrainingInputs, register

logger = logging.getLogger(__name__)

#: SetFit's default number of sampling rounds: each round gives every text a positive and a negative pair.
ROUNDS = 20


@dataclass
class SetFitOptions:
    """``--strategy setfit``: how many sentence pairs the body is tuned on."""

    setfit_pairs: int = field(
        default=2000,
        metadata={
            "help": "most sentence pairs for the contrastive step (SetFit's 20 rounds give 40 per training "
            "text; beyond a few dozen texts per class more pairs cost time and add little)."
        },
    )

    def __post_init__(self) -> None:
        require_positive(self, ("setfit_pairs",))


def sample_pairs(labels, pairs: int, rng) -> tuple[list[int], list[int], list[float]]:
    """SetFit's pair sampling: per round, each text with a random same-label text and a random other one.

    Args:
        labels: The class id of every training text.
        pairs: The most pairs to return (a random subset when the rounds give more).
        rng: A ``numpy.random.Generator``.

    Returns:
        ``(first, second, similarity)``: row indices of each pair and 1.0 (same label) or 0.0.
    """
    import numpy as np

    labels = np.asarray(labels)
    by_label = {label: np.flatnonzero(labels == label) for label in np.unique(labels)}
    others = {label: np.flatnonzero(labels != label) for label in by_label}
    first, second, similarity = [], [], []
    for _ in range(ROUNDS):
        for row, label in enumerate(labels):
            first += [row, row]
            second += [int(rng.choice(by_label[label])), int(rng.choice(others[label]))]
            similarity += [1.0, 0.0]
    if len(first) > pairs:
        keep = np.sort(rng.choice(len(first), size=pairs, replace=False))
        first, second, similarity = ([values[i] for i in keep] for values in (first, second, similarity))
    return first, second, similarity


@functools.cache
def _pair_model_class():
    from torch import nn
    from transformers.modeling_outputs import SequenceClassifierOutput

    class SetFitModel(nn.Module):
        """A pooled classifier trained on pairs: ``pair_a``/``pair_b`` batches give the cosine loss.

        Called with an ordinary tokenized batch it classifies, like the classifier it wraps.
        """

        def __init__(self, classifier, pairs: int):
            super().__init__()
            self.classifier = classifier
            self.pairs = pairs  # how many pairs training samples (--setfit-pairs)
            for parameter in classifier.head.parameters():
                parameter.requires_grad = False  # fitted afterwards, by logistic regression

        @property
        def config(self):
            return self.classifier.config

        def forward(self, pair_a=None, pair_b=None, labels=None, **inputs):
            if pair_a is None:
                return self.classifier(labels=labels, **inputs)
            u, v = self.classifier.pooled(**pair_a), self.classifier.pooled(**pair_b)
            cosine = nn.functional.cosine_similarity(u, v)
            loss = None if labels is None else nn.functional.mse_loss(cosine, labels.to(cosine.dtype))
            return SequenceClassifierOutput(loss=loss, logits=cosine.unsqueeze(-1))

    return SetFitModel


def pair_collator(rows: list[dict[str, Any]], collator):
    """Batches of ``pair_a``/``pair_b`` (each padded by ``collator``) and the target ``labels``."""
    import torch

    def collate(features):
        def side(key):
            return collator([rows[f[key]] for f in features])

        return {
            "pair_a": side("pair_a"),
            "pair_b": side("pair_b"),
            "labels": torch.tensor([f["labels"] for f in features], dtype=torch.float32),
        }

    return collate


@register("setfit")
class SetFitStrategy(Strategy):
    """Contrastive tuning of the body on sentence pairs, then a logistic-regression head (few-shot)."""

    summary = "contrastive tuning of the body on text pairs, then a logistic-regression head (few-shot)"
    options = SetFitOptions
    native_head = False
    # SetFit's defaults: body learning rate 2e-5, batch 16, one epoch over the pairs (which already show
    # every text 40 times), however few the steps.
    learning_rate = 2e-5
    default_epochs = 1.0
    default_batch_size = 16
    min_steps = 0
    tasks = (SINGLE_LABEL,)
    # Best or within noise of the best at 8 and 32 examples per class, behind full at 128 (README,
    # "Learning curve"); SetFit's authors aim it at 8-64.
    auto_max_per_class = 64

    def trainer_rows(self, rows: int, options: SetFitOptions) -> int:
        return min(rows * 2 * ROUNDS, options.setfit_pairs)

    def prepare(self, model, options: SetFitOptions):
        if model.config.problem_type != "single_label_classification":
            raise ModelError(
                "--strategy setfit trains single-label classifiers; use --strategy full for "
                f"{model.config.problem_type.replace('_', ' ')}"
            )
        return _pair_model_class()(model, options.setfit_pairs)

    def training_inputs(self, model, datasets, collator, *, batch_size, device="cpu"):
        import numpy as np
        from datasets import Dataset

        train = datasets["train"]
        rng = np.random.default_rng(int(np.random.randint(2**31)))  # seeded by the run's --seed
        first, second, similarity = sample_pairs(train["labels"], model.pairs, rng)
        columns = [c for c in train.column_names if c != "labels"]
        rows = train.select_columns(columns).to_list()
        logger.info("setfit: %d sentence pairs from %d texts", len(first), len(train))
        pairs = Dataset.from_dict({"pair_a": first, "pair_b": second, "labels": similarity})
        return TrainingInputs(
            model=model,
            datasets={"train": pairs},
            collator=pair_collator(rows, collator),
            # The classification head exists only after training: nothing to evaluate or pick until then.
            argument_overrides={
                "eval_strategy": "no",
                "load_best_model_at_end": False,
                "train_sampling_strategy": "random",
            },
        )

    def finish(self, model, datasets, collator, *, batch_size: int) -> None:
        """Fit the logistic-regression head on the tuned embeddings of the training texts."""
        import torch
        from sklearn.linear_model import LogisticRegression

        from ..heads import FEATURES, extract_features

        started = time.perf_counter()
        classifier = model.classifier
        features = extract_features(classifier, datasets["train"], collator, batch_size)
        columns = features.with_format("numpy")[:]
        x, y = columns[FEATURES], columns["labels"]
        regression = LogisticRegression(max_iter=1000).fit(x, y)
        weight = torch.tensor(regression.coef_, dtype=torch.float32)
        bias = torch.tensor(regression.intercept_, dtype=torch.float32)
        if weight.shape[0] == 1:  # binary: logits (-z/2, z/2) give softmax probabilities sigmoid(z)
            weight, bias = torch.cat([-weight, weight]) / 2, torch.cat([-bias, bias]) / 2
        linear = classifier.head.net[-1]
        classes = torch.as_tensor(regression.classes_)
        with torch.no_grad():
            linear.weight.zero_()
            linear.bias.fill_(-1e4)  # a class absent from the training rows is never predicted
            linear.weight[classes] = weight.to(linear.weight.device)
            linear.bias[classes] = bias.to(linear.bias.device)
        seconds = time.perf_counter() - started
        logger.info("setfit: logistic-regression head fitted on %d embeddings in %.1fs", len(y), seconds)

    def save(self, model, folder: Path) -> None:
        model.classifier.save_pretrained(folder)
