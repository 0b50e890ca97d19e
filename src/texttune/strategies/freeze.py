"""``--strategy freeze``: a frozen pretrained base and a small trained head (linear or MLP).

The base never changes, so its pooled features are computed once, before training, and the head
trains on the cached feature tensors: every epoch costs a pass over a few small matrices instead of a
forward pass through the transformer. The run saves the base as a ``transformers`` model folder
(``model.safetensors`` + ``config.json``) and the head as ``head.safetensors`` + ``head.json``;
:class:`texttune.heads.FrozenBaseClassifier` joins them back into one model that ``Predictor`` uses like any other.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..options import require_choice, require_fraction, require_positive
from . import Strategy, TrainingInputs, register

logger = logging.getLogger(__name__)

HEADS = ("linear", "mlp")
POOLINGS = ("auto", "cls", "mean", "last")


@dataclass
class FreezeOptions:
    """``--strategy freeze``: the head and how token vectors become its input."""

    head: str = field(default="linear", metadata={"help": "the head, linear or mlp."})
    pooling: str = field(
        default="auto",
        metadata={
            "help": "how token vectors become one feature vector: cls (first token), mean, last "
            "(last non-pad token). auto: last for decoder models, else cls."
        },
    )
    head_hidden_size: int = field(default=256, metadata={"help": "--head mlp: hidden layer width."})
    head_layers: int = field(default=1, metadata={"help": "--head mlp: number of hidden layers."})
    head_dropout: float = field(default=0.1, metadata={"help": "dropout before each head layer."})
    head_batchnorm: bool = field(
        default=False, metadata={"help": "--head mlp: BatchNorm after each hidden layer."}
    )

    def __post_init__(self) -> None:
        require_choice(self, "head", HEADS)
        require_choice(self, "pooling", POOLINGS)
        require_positive(self, ("head_hidden_size", "head_layers"))
        require_fraction(self, ("head_dropout",))


def resolve_pooling(pooling: str, model_config) -> str:
    """``auto`` pools the last real token of decoder models (they have no [CLS]) and the first otherwise."""
    from ..modeling import is_decoder_model

    if pooling != "auto":
        return pooling
    return "last" if is_decoder_model(model_config) else "cls"


@register("freeze")
class FreezeStrategy(Strategy):
    """Train only a head on the frozen base's pooled features."""

    summary = "a head on the frozen base's pooled features"
    options = FreezeOptions
    plain_weights = False

    def prepare(self, model, options: FreezeOptions):
        from ..heads import ClassifierHead, FrozenBaseClassifier

        base = model.base_model
        spec = {
            "head": options.head,
            "input_size": base.config.hidden_size,
            "hidden_size": options.head_hidden_size,
            "layers": options.head_layers,
            "dropout": options.head_dropout,
            "batchnorm": options.head_batchnorm,
            "num_labels": base.config.num_labels,
            "problem_type": base.config.problem_type,
        }
        return FrozenBaseClassifier(base, ClassifierHead(spec), resolve_pooling(options.pooling, base.config))

    def training_inputs(self, model, datasets, collator, *, batch_size, device="cpu"):
        from transformers import default_data_collator

        from ..heads import extract_features

        started = time.perf_counter()
        model.to(device)
        features = {
            name: extract_features(model, split, collator, batch_size) for name, split in datasets.items()
        }
        seconds = time.perf_counter() - started
        logger.info("freeze: pooled features of %d texts cached in %.1fs", len(datasets["train"]), seconds)
        return TrainingInputs(
            model=model.head,
            datasets=features,
            collator=default_data_collator,
            # Length grouping needs input_ids; the cached features have none.
            argument_overrides={"train_sampling_strategy": "random"},
            feature_seconds=seconds,
        )

    def save(self, model, folder: Path) -> None:
        from ..artifacts import HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, write_json, write_safetensors

        model.base.save_pretrained(str(folder))
        write_safetensors(folder / HEAD_WEIGHTS_FILE, model.head.state_dict())
        write_json(folder / HEAD_CONFIG_FILE, model.head_spec())

    def load(self, folder: Path, manifest) -> Any:
        from safetensors.torch import load_file
        from transformers import AutoModel

        from ..artifacts import (
            HEAD_CONFIG_FILE,
            HEAD_WEIGHTS_FILE,
            MODEL_CONFIG_FILE,
            MODEL_WEIGHTS_FILE,
            require_files,
        )
        from ..heads import ClassifierHead, FrozenBaseClassifier

        require_files(folder, [MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, HEAD_WEIGHTS_FILE, HEAD_CONFIG_FILE])
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
