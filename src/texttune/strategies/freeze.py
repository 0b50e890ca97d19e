"""``--strategy freeze``: a frozen pretrained base and a small trained head (linear or MLP).

The base never changes, so its pooled features are computed once, before training, and the head
trains on the cached feature tensors: every epoch costs a pass over a few small matrices instead of a
forward pass through the transformer. The run saves the base as a ``transformers`` model folder
(``model.safetensors`` + ``config.json``) and the head as ``head.safetensors`` + ``head.json``;
:class:`FrozenBaseClassifier` joins them back into one model that ``Predictor`` uses like any other.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import StrategyConfig
from ..errors import ModelError
from . import Strategy, TrainingInputs, is_decoder_model, register

logger = logging.getLogger(__name__)

HEAD_WEIGHTS_FILE = "head.safetensors"
HEAD_CONFIG_FILE = "head.json"
FEATURES = "features"


def resolve_pooling(pooling: str, model_config) -> str:
    """``auto`` pools the last real token of decoder models (they have no [CLS]) and the first otherwise."""
    if pooling != "auto":
        return pooling
    return "last" if is_decoder_model(model_config) else "cls"


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

    def save_pretrained(self, folder: str) -> None:
        from safetensors.torch import save_file

        self.base.save_pretrained(folder)
        # Contiguous clones: safetensors refuses views that share storage.
        state = {k: v.detach().contiguous().clone() for k, v in self.head.state_dict().items()}
        save_file(state, str(Path(folder) / HEAD_WEIGHTS_FILE))
        spec = dict(self.head.spec, pooling=self.pooling)
        (Path(folder) / HEAD_CONFIG_FILE).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")


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


@register("freeze")
class FreezeStrategy(Strategy):
    """Train only a head on the frozen base's pooled features."""

    def prepare(self, model, config: StrategyConfig):
        base = model.base_model
        spec = {
            "head": config.head,
            "input_size": base.config.hidden_size,
            "hidden_size": config.head_hidden_size,
            "layers": config.head_layers,
            "dropout": config.head_dropout,
            "batchnorm": config.head_batchnorm,
            "num_labels": base.config.num_labels,
            "problem_type": base.config.problem_type,
        }
        return FrozenBaseClassifier(base, ClassifierHead(spec), resolve_pooling(config.pooling, base.config))

    def training_inputs(self, model, datasets, collator, *, batch_size, device="cpu"):
        started = time.perf_counter()
        model.to(device)
        features = {
            name: extract_features(model, split, collator, batch_size) for name, split in datasets.items()
        }
        seconds = time.perf_counter() - started
        logger.info("freeze: pooled features of %d texts cached in %.1fs", len(datasets["train"]), seconds)
        from transformers import default_data_collator

        return TrainingInputs(
            model=model.head,
            datasets=features,
            collator=default_data_collator,
            # Length grouping needs input_ids; the cached features have none.
            argument_overrides={"train_sampling_strategy": "random"},
            feature_seconds=seconds,
        )

    def save(self, model, folder: Path) -> None:
        model.save_pretrained(str(folder))

    def load(self, folder: Path, manifest) -> Any:
        from safetensors.torch import load_file
        from transformers import AutoModel

        from ..artifacts import MODEL_CONFIG_FILE, require_files

        require_files(folder, [MODEL_CONFIG_FILE, "model.safetensors", HEAD_WEIGHTS_FILE, HEAD_CONFIG_FILE])
        spec = json.loads((folder / HEAD_CONFIG_FILE).read_text(encoding="utf-8"))
        pooling = spec.pop("pooling")
        base = AutoModel.from_pretrained(str(folder), use_safetensors=True)
        head = ClassifierHead(spec)
        try:
            head.load_state_dict(load_file(str(folder / HEAD_WEIGHTS_FILE)))
        except RuntimeError as exc:
            raise ModelError(
                f"{folder / HEAD_WEIGHTS_FILE} does not match {HEAD_CONFIG_FILE}; retrain the run"
            ) from exc
        return FrozenBaseClassifier(base, head, pooling).eval()
