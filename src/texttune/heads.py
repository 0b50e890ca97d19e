"""Pooling and classification heads over a transformer's token vectors.

``pool`` turns token vectors into one vector per text; :class:`ClassifierHead` is a linear or MLP head
over pooled features; :class:`FrozenBaseClassifier` joins a frozen base model, a pooling rule and a head
into one classifier (``--strategy freeze``), and :func:`extract_features` computes the pooled features
of a tokenized dataset once, so the head can train on cached tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Column of the cached-feature datasets that :func:`extract_features` returns.
FEATURES = "features"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """One vector per text from the token vectors ``hidden`` (batch, tokens, width).

    Args:
        hidden: The base model's last hidden states.
        attention_mask: 1 for real tokens, 0 for padding (left or right); None means no padding.
        pooling: ``cls`` (first token), ``mean`` (average of real tokens) or ``last`` (last real token).

    Returns:
        A (batch, width) tensor.
    """
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    if pooling == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (positions * attention_mask.to(positions.dtype)).argmax(-1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {pooling!r}")


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: str) -> torch.Tensor:
    """The loss ``transformers`` classifiers use for each problem type."""
    if problem_type == "regression":
        return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
    if problem_type == "multi_label_classification":
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return nn.functional.cross_entropy(logits, labels.long().view(-1))


class ClassifierHead(nn.Module):
    """A linear or MLP head over pooled features.

    ``layers`` hidden layers of ``hidden_size`` units, each ``Dropout -> Linear -> [BatchNorm] -> ReLU``,
    then ``Dropout -> Linear`` to the outputs. ``forward(features, labels)`` returns an output with
    ``logits`` (and ``loss`` when labels are given), so a ``Trainer`` trains it on cached features.
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        self.spec = dict(spec)
        width = spec["input_size"]
        blocks: list[nn.Module] = []
        if spec["head"] == "mlp":
            for _ in range(spec["layers"]):
                blocks += [nn.Dropout(spec["dropout"]), nn.Linear(width, spec["hidden_size"])]
                if spec["batchnorm"]:
                    blocks.append(nn.BatchNorm1d(spec["hidden_size"]))
                blocks.append(nn.ReLU())
                width = spec["hidden_size"]
        blocks += [nn.Dropout(spec["dropout"]), nn.Linear(width, spec["num_labels"])]
        self.net = nn.Sequential(*blocks)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        logits = self.net(features)
        loss = None if labels is None else classification_loss(logits, labels, self.spec["problem_type"])
        return SequenceClassifierOutput(loss=loss, logits=logits)


class FrozenBaseClassifier(nn.Module):
    """A frozen ``transformers`` base model, a pooling rule and a :class:`ClassifierHead`, as one classifier.

    Called like a ``transformers`` classifier (``model(**batch).logits``); ``config`` is the base's config,
    which carries the label names.
    """

    def __init__(self, base, head: ClassifierHead, pooling: str):
        super().__init__()
        self.base = base
        self.head = head
        self.pooling = pooling
        for parameter in self.base.parameters():
            parameter.requires_grad = False

    @property
    def config(self):
        return self.base.config

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()  # the features were cached in eval mode: no dropout in the base, ever
        return self

    def pooled(self, input_ids=None, attention_mask=None, **inputs) -> torch.Tensor:
        """The pooled base features of a tokenized batch."""
        inputs = {k: v for k, v in inputs.items() if k != "labels"}
        hidden = self.base(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        return pool(hidden, attention_mask, self.pooling)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **inputs):
        return self.head(self.pooled(input_ids, attention_mask, **inputs), labels)

    def head_spec(self) -> dict[str, Any]:
        """What rebuilds the head: its layout plus the pooling rule."""
        return dict(self.head.spec, pooling=self.pooling)


@torch.no_grad()
def extract_features(model: FrozenBaseClassifier, dataset, collator, batch_size: int):
    """Pooled base features of every row of a tokenized dataset, as a dataset of ``features`` + ``labels``.

    Rows are batched in length order so that little padding is computed; the result keeps the input order.
    """
    from datasets import Dataset

    lengths = [len(ids) for ids in dataset["input_ids"]]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    device = next(model.base.parameters()).device
    model.base.eval()
    out = torch.zeros(len(lengths), model.head.spec["input_size"])
    inputs = [c for c in dataset.column_names if c != "labels"]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        rows = dataset.select(idx).to_dict()
        batch = collator([{k: rows[k][j] for k in inputs} for j in range(len(idx))])
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        out[idx] = model.pooled(**batch).float().cpu()
    columns: dict[str, Any] = {FEATURES: out.numpy()}
    if "labels" in dataset.column_names:
        columns["labels"] = dataset["labels"]
    return Dataset.from_dict(columns).with_format("torch")
