"""``--strategy partial``: freeze the embeddings and the bottom transformer layers, train the rest.

The layer stack is found generically: the ``ModuleList`` inside the model's base whose length is the
configured number of layers (``bert.encoder.layer``, ``distilbert.transformer.layer``,
``transformer.h`` of GPT-2, ``model.layers`` of Llama, ...). Everything the base registers before that
stack (the embeddings) is frozen with the bottom layers; what comes after it (BERT's pooler, GPT-2's
final layer norm) and the classification head train.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, ModelError
from . import Strategy, register

logger = logging.getLogger(__name__)


def find_layers(model) -> tuple[str, Any]:
    """The transformer layer stack of ``model``: (its qualified name, the ``ModuleList``).

    Args:
        model: A ``transformers`` model (with or without a task head).

    Returns:
        The dotted name of the layer list inside ``model`` and the list itself.

    Raises:
        ModelError: No layer list of the configured depth was found.
    """
    import torch

    config = getattr(model, "config", None)
    depth = getattr(config, "num_hidden_layers", None)
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and depth is not None and len(module) == depth
    ]
    if not candidates:
        kind = getattr(config, "model_type", type(model).__name__)
        raise ModelError(
            f"--strategy partial cannot find the transformer layers of a {kind!r} model "
            f"(no list of {depth} layers); use --strategy full, freeze or lora"
        )
    return candidates[0]


def layers_to_freeze(requested: int, depth: int) -> int:
    """How many bottom layers ``--freeze-layers requested`` freezes in a model of ``depth`` layers."""
    if abs(requested) > depth:
        raise ConfigError(f"--freeze-layers {requested} exceeds the model's {depth} layers")
    return requested if requested >= 0 else depth + requested


@dataclass
class PartialOptions:
    """``--strategy partial``: how many bottom layers stay frozen."""

    freeze_layers: int | None = field(
        default=None,
        metadata={
            "help": "freeze the embeddings and the bottom N transformer layers; a negative N keeps the top "
            "-N layers trainable and freezes the rest."
        },
    )


@register("partial")
class PartialStrategy(Strategy):
    """Freeze the embeddings and the bottom ``--freeze-layers`` layers."""

    summary = "all but the embeddings and the bottom --freeze-layers layers"
    options = PartialOptions

    def check_options(self, options: PartialOptions) -> None:
        if options.freeze_layers is None:
            raise ConfigError("--strategy partial needs --freeze-layers N (bottom layers to freeze)")

    def prepare(self, model, options):
        layer_name, layers = find_layers(model)
        frozen_layers = layers_to_freeze(options.freeze_layers, len(layers))
        frozen_prefixes = tuple(f"{layer_name}.{i}." for i in range(frozen_layers))
        base_prefix = getattr(model, "base_model_prefix", "")
        in_base = base_prefix + "." if base_prefix and hasattr(model, base_prefix) else ""
        seen_layers = False
        for name, parameter in model.named_parameters():
            if name.startswith(layer_name + "."):
                seen_layers = True
                parameter.requires_grad = not name.startswith(frozen_prefixes)
            elif name.startswith(in_base) and not seen_layers:
                parameter.requires_grad = False  # embeddings: registered before the layer stack
            else:
                parameter.requires_grad = True
        logger.info("partial: froze the embeddings and %d of %d layers", frozen_layers, len(layers))
        return model
