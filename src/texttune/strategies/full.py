"""``--strategy full``: every parameter trains; the run holds a plain ``transformers`` model."""

from __future__ import annotations

from . import Strategy, register


@register("full")
class FullStrategy(Strategy):
    """Fine-tune the whole model (the default)."""

    summary = "every parameter"

    def prepare(self, model, options):
        for parameter in model.parameters():
            parameter.requires_grad = True
        return model
