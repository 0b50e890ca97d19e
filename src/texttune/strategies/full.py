"""``--strategy full``: every parameter trains; the run holds a plain ``transformers`` model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import Strategy, register


@register("full")
class FullStrategy(Strategy):
    """Fine-tune the whole model (the default)."""

    def prepare(self, model, config):
        for parameter in model.parameters():
            parameter.requires_grad = True
        return model

    def merged_model(self, folder: Path, manifest) -> Any:
        # The run already is a plain model: "merging" is loading it.
        return self.load(folder, manifest)
