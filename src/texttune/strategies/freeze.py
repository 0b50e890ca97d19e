"""``--strategy freeze``: a frozen pretrained base and a small trained head (linear or MLP).

The base never changes, so its pooled features (``--pooling``: by default the way the checkpoint was
trained) are computed once, before training, and the head trains on the cached feature tensors: every
epoch costs a pass over a few small matrices instead of a forward pass through the transformer. The run
is saved like any pooled classifier (:class:`texttune.heads.PooledClassifier`): the base as a
``transformers`` model folder, the head as ``head.safetensors`` + ``head.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ..options import require_choice, require_fraction, require_positive
from . import Strategy, TrainingInputs, register

logger = logging.getLogger(__name__)

HEADS = ("linear", "mlp")


@dataclass
class FreezeOptions:
    """``--strategy freeze``: the head over the pooled features."""

    head: str = field(default="linear", metadata={"help": "the head, linear or mlp."})
    head_hidden_size: int = field(default=256, metadata={"help": "--head mlp: hidden layer width."})
    head_layers: int = field(default=1, metadata={"help": "--head mlp: number of hidden layers."})
    head_dropout: float = field(default=0.1, metadata={"help": "dropout before each head layer."})
    head_batchnorm: bool = field(
        default=False, metadata={"help": "--head mlp: BatchNorm after each hidden layer."}
    )

    def __post_init__(self) -> None:
        require_choice(self, "head", HEADS)
        require_positive(self, ("head_hidden_size", "head_layers"))
        require_fraction(self, ("head_dropout",))


@register("freeze")
class FreezeStrategy(Strategy):
    """Train only a head on the frozen base's pooled features."""

    summary = "a head on the frozen base's pooled features"
    options = FreezeOptions
    native_head = False
    learning_rate = 1e-3  # a head on fixed features takes large steps
    min_steps = 1000  # on cached features a step costs microseconds; a linear head needs ~1,000 to converge

    def prepare(self, model, options: FreezeOptions):
        from ..heads import ClassifierHead, FrozenBaseClassifier

        base = model.base  # a PooledClassifier: this strategy never classifies with the native head
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
        return FrozenBaseClassifier(base, ClassifierHead(spec), model.pooling)

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
