"""Pooling and classification heads over a transformer's token vectors.

``pool`` turns token vectors into one vector per text; :class:`ClassifierHead` is a linear or MLP head
over pooled features; :class:`PooledClassifier` joins a base model, a pooling rule and a head into one
classifier (used when a run pools the way its checkpoint was trained, see ``--pooling``), and
:class:`FrozenBaseClassifier` is the same with the base frozen (``--strategy freeze``).
:func:`extract_features` computes the pooled features of a tokenized dataset once, so a head can train
on cached tensors.

A pooled classifier is saved as a ``transformers`` base model (``config.json`` + ``model.safetensors``)
plus ``head.safetensors`` and ``head.json`` (the head's layout and the pooling rule); the presence of
``head.json`` is what marks a run folder as a pooled classifier.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import static_model  # noqa: F401  registers texttune_static (distilled students) with AutoModel
from .tasks import POOLINGS, TEXT, TEXT_PAIR

#: Column of the cached-feature datasets that :func:`extract_features` returns.
FEATURES = "features"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """One vector per text from the token vectors ``hidden`` (batch, tokens, width).

    Args:
        hidden: The base model's last hidden states.
        attention_mask: 1 for real tokens, 0 for padding (left or right); None means no padding.
        pooling: ``cls`` (first token), ``mean`` (average of real tokens), ``max`` (per-dimension maximum
            over real tokens) or ``last`` (last real token).

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
    if pooling == "max":
        padding = (attention_mask == 0).unsqueeze(-1)
        return hidden.masked_fill(padding, torch.finfo(hidden.dtype).min).max(1).values
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


class PooledClassifier(nn.Module):
    """A ``transformers`` base model, a pooling rule and a :class:`ClassifierHead`, as one classifier.

    Called like a ``transformers`` classifier (``model(**batch).logits``); ``config`` is the base's config,
    which carries the label names. ``save_pretrained``/``from_pretrained`` write and read the base model
    folder plus ``head.safetensors`` and ``head.json``.

    Example:
        >>> model = PooledClassifier.from_pretrained("runs/full")  # doctest: +SKIP
        >>> model(**tokenizer(["a text"], return_tensors="pt")).logits  # doctest: +SKIP
    """

    def __init__(self, base, head: ClassifierHead, pooling: str):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.base = base
        self.head = head
        self.pooling = pooling

    @property
    def config(self):
        return self.base.config

    def get_input_embeddings(self):
        return self.base.get_input_embeddings()

    def resize_token_embeddings(self, size: int):
        return self.base.resize_token_embeddings(size)

    def pooled(self, input_ids=None, attention_mask=None, **inputs) -> torch.Tensor:
        """The pooled base features of a tokenized batch."""
        inputs = {k: v for k, v in inputs.items() if k in _BASE_INPUTS}
        hidden = self.base(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        return pool(hidden, attention_mask, self.pooling)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **inputs):
        return self.head(self.pooled(input_ids, attention_mask, **inputs), labels)

    def head_spec(self) -> dict[str, Any]:
        """What rebuilds the head: its layout plus the pooling rule."""
        return dict(self.head.spec, pooling=self.pooling)

    def save_pretrained(self, folder: str | Path, state_dict: dict[str, Any] | None = None, **kwargs) -> None:
        """Write the base model folder, ``head.safetensors`` and ``head.json`` into ``folder``.

        Args:
            folder: The folder to write into.
            state_dict: Full weights to write instead of the module's own (gathered from FSDP shards).
            **kwargs: Passed to the base model's ``save_pretrained``.
        """
        from .artifacts import HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, write_json, write_safetensors

        folder = Path(folder)
        state_dict = state_dict if state_dict is not None else self.state_dict()
        parts = {
            part: {k[len(part) + 1 :]: v for k, v in state_dict.items() if k.startswith(part + ".")}
            for part in ("base", "head")
        }
        self.base.save_pretrained(str(folder), state_dict=parts["base"], **kwargs)
        write_safetensors(folder / HEAD_WEIGHTS_FILE, parts["head"])
        write_json(folder / HEAD_CONFIG_FILE, self.head_spec())

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, base: str | Path | None = None, head_weights: bool = True, **kwargs
    ):
        """Load a classifier written by :meth:`save_pretrained`, in eval mode.

        Args:
            folder: The folder holding ``head.json`` (and, unless ``base`` is given, the base model).
            base: Load the base model from this folder or hub id instead (adapter runs keep only the
                adapter and the head).
            head_weights: Load ``head.safetensors``; False leaves the head freshly initialised (an adapter
                run carries the trained head in its adapter file).
            **kwargs: Passed to ``AutoModel.from_pretrained`` (e.g. ``attn_implementation``).

        Raises:
            ModelError: A file is missing or the head weights do not match ``head.json``.
        """
        from safetensors.torch import load_file

        from .artifacts import HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, MODEL_CONFIG_FILE, require_files
        from .errors import ModelError

        folder = Path(folder)
        require_files(
            folder, [HEAD_CONFIG_FILE, MODEL_CONFIG_FILE] + ([HEAD_WEIGHTS_FILE] if head_weights else [])
        )
        from transformers import AutoConfig

        spec = json.loads((folder / HEAD_CONFIG_FILE).read_text(encoding="utf-8"))
        pooling = spec.pop("pooling")
        config = AutoConfig.from_pretrained(str(folder))  # the run's: it carries the label names
        model = cls(load_base_model(str(base or folder), config, **kwargs), ClassifierHead(spec), pooling)
        if head_weights:
            try:
                model.head.load_state_dict(load_file(str(folder / HEAD_WEIGHTS_FILE)))
            except RuntimeError as exc:
                raise ModelError(
                    f"{folder / HEAD_WEIGHTS_FILE} does not match {HEAD_CONFIG_FILE}; retrain the run"
                ) from exc
        return model.eval()


#: Keyword arguments of a tokenized batch that reach the base model (labels and peft's extras do not).
_BASE_INPUTS = ("token_type_ids", "position_ids", "inputs_embeds")


def load_base_model(path: str, config=None, **kwargs):
    """The bare ``transformers`` encoder/decoder of a checkpoint, without the pooler it does not use.

    BERT-style bases are built without their pooling layer (``add_pooling_layer=False``): a pooled
    classifier never calls it, and unused trained parameters break distributed training.
    """
    import inspect

    from transformers import AutoConfig, AutoModel
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    config = config or AutoConfig.from_pretrained(path)
    kwargs.setdefault("use_safetensors", True)
    model_class = MODEL_MAPPING.get(type(config), None)
    if model_class is not None and "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
        kwargs["add_pooling_layer"] = False
    from transformers.utils import logging as transformers_logging

    # Without its pooler, a BERT checkpoint's pooler weights are "unexpected": a load report not worth showing.
    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        return AutoModel.from_pretrained(path, config=config, **kwargs)
    finally:
        transformers_logging.set_verbosity(level)


class FrozenBaseClassifier(PooledClassifier):
    """A :class:`PooledClassifier` whose base never trains (``--strategy freeze``)."""

    def __init__(self, base, head: ClassifierHead, pooling: str):
        super().__init__(base, head, pooling)
        for parameter in self.base.parameters():
            parameter.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()  # the features were cached in eval mode: no dropout in the base, ever
        return self


@torch.no_grad()
def pooled_batches(model: PooledClassifier, dataset, collator, batch_size: int) -> torch.Tensor:
    """Pooled base features of every row of a tokenized dataset, shape (rows, hidden), in input order.

    Rows are batched in length order so that little padding is computed.
    """
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
    return out


def extract_features(model: PooledClassifier, dataset, collator, batch_size: int):
    """Pooled base features of every row of a tokenized dataset, as a dataset of ``features`` + ``labels``."""
    from datasets import Dataset

    columns: dict[str, Any] = {FEATURES: pooled_batches(model, dataset, collator, batch_size).numpy()}
    if "labels" in dataset.column_names:
        columns["labels"] = dataset["labels"]
    return Dataset.from_dict(columns).with_format("torch")


def text_features(
    model: PooledClassifier,
    tokenizer,
    texts: list[str],
    pairs: list[str] | None,
    max_length: int,
    batch_size: int,
) -> torch.Tensor:
    """Pooled base features of raw texts (each with its pair, if any), shape (texts, hidden), in input order."""
    from datasets import Dataset

    from .tokenization import make_collator, tokenize_dataset

    columns = {TEXT: list(texts), **({TEXT_PAIR: list(pairs)} if pairs is not None else {})}
    encoded = tokenize_dataset(Dataset.from_dict(columns), tokenizer, max_length, desc="Encoding")
    return pooled_batches(model, encoded, make_collator(tokenizer), batch_size)
