"""A static-embedding encoder (model2vec-style) as a ``transformers`` model, for distilled students.

:class:`StaticEmbeddingModel` looks a token up in one embedding matrix, averages the vectors of a text's
real tokens (special and ignored tokens do not count, as in model2vec's ``StaticModel.encode``) and
L2-normalises the mean. With ``conv_channels``, a 1-d convolution over the same vectors (Kim 2014) adds
each filter's strongest window of adjacent tokens, which reads word order. Its ``last_hidden_state`` has a
single position holding that text vector, so a :class:`texttune.heads.PooledClassifier` over it uses
``cls`` pooling (the first position). It is
registered with ``AutoConfig``/``AutoModel`` as model type ``texttune_static`` when this module is
imported (``texttune.heads`` imports it), so a run folder holding one loads, exports and predicts like any
pooled run: ``config.json`` + ``model.safetensors`` + ``head.*``.

Example:
    >>> config = StaticEmbeddingConfig(vocab_size=10, hidden_size=4, ignored_token_ids=[0])
    >>> StaticEmbeddingModel(config)(input_ids=torch.tensor([[0, 3, 5]])).last_hidden_state.shape
    torch.Size([1, 1, 4])
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

MODEL_TYPE = "texttune_static"


class StaticEmbeddingConfig(PretrainedConfig):
    """The layout of a :class:`StaticEmbeddingModel`.

    Args:
        vocab_size: Rows of the embedding matrix (the tokenizer's vocabulary size).
        hidden_size: Width of a token vector.
        ignored_token_ids: Token ids left out of a text's mean (special tokens, tokens model2vec dropped).
        normalize: L2-normalise the mean of the token vectors (model2vec's default).
        conv_channels: Filters of a convolution over windows of ``conv_width`` token vectors, max-pooled
            over the text and appended to the mean (0: the mean alone). The mean cannot see word order;
            the windows can ("not good").
        conv_width: Tokens per window.
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        vocab_size: int = 1,
        hidden_size: int = 1,
        ignored_token_ids: list[int] | None = None,
        normalize: bool = True,
        conv_channels: int = 0,
        conv_width: int = 3,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.ignored_token_ids = list(ignored_token_ids or [])
        self.normalize = normalize
        self.conv_channels = conv_channels
        self.conv_width = conv_width
        super().__init__(**kwargs)


class StaticEmbeddingModel(PreTrainedModel):
    """One embedding matrix; a text is the (normalised) mean of its counted tokens' vectors."""

    config_class = StaticEmbeddingConfig
    base_model_prefix = "static"
    main_input_name = "input_ids"

    def __init__(self, config: StaticEmbeddingConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        counted = torch.ones(config.vocab_size)
        if config.ignored_token_ids:
            counted[torch.tensor(config.ignored_token_ids, dtype=torch.long)] = 0.0
        # Saved with the weights: transformers 5 leaves a non-persistent buffer uninitialised on load.
        self.register_buffer("counted", counted)
        self.conv = (
            nn.Conv1d(
                config.hidden_size, config.conv_channels, config.conv_width, padding=config.conv_width // 2
            )
            if config.conv_channels
            else None
        )
        self.post_init()

    @property
    def output_size(self) -> int:
        """Width of a text vector: the mean's, plus the convolution's filters."""
        return self.config.hidden_size + self.config.conv_channels

    def _init_weights(self, module) -> None:
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.Conv1d):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **unused) -> BaseModelOutput:
        weights = self.counted[input_ids]
        if attention_mask is not None:
            weights = weights * attention_mask.to(weights.dtype)
        convolve = self.conv is not None and self.convolves()
        if inputs_embeds is None and convolve:
            inputs_embeds = self.embeddings(input_ids)
        if inputs_embeds is None:  # a weighted sum per row without the (batch, tokens, dim) tensor
            summed = nn.functional.embedding_bag(
                input_ids, self.embeddings.weight, mode="sum", per_sample_weights=weights.to(self.dtype)
            )
        else:
            summed = (inputs_embeds * weights.unsqueeze(-1).to(inputs_embeds.dtype)).sum(1)
        text = summed / weights.sum(1, keepdim=True).clamp(min=1.0).to(summed.dtype)
        if self.config.normalize:
            text = text / text.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        if self.conv is not None:
            if convolve:
                strongest = self.strongest(self.convolved(inputs_embeds, weights), weights)
            else:
                strongest = self.strongest_looked_up(input_ids, weights)
            text = torch.cat([text, strongest], dim=-1)
        return BaseModelOutput(last_hidden_state=text.unsqueeze(1))

    def convolves(self) -> bool:
        """Whether the filters' window scores come from the convolution (training, ONNX export) or from
        per-token tables (:meth:`token_shares`; prediction, several times faster)."""
        return self.training or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()

    def convolved(self, vectors: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, filters): each window's scores, uncounted tokens taken as zero vectors."""
        scores = self.conv((vectors * weights.unsqueeze(-1).to(vectors.dtype)).transpose(1, 2))
        return scores[..., : vectors.shape[1]].transpose(1, 2)

    @staticmethod
    def strongest(scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(batch, filters): each filter's best window over the counted tokens, 0 if it scores none above 0."""
        return (torch.relu(scores) * weights.unsqueeze(-1).to(scores.dtype)).amax(dim=1)

    @torch.no_grad()
    def strongest_looked_up(self, input_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """:meth:`strongest` of :meth:`convolved`'s scores, summed from each token's precomputed share at each
        offset, a few texts at a time: a fresh buffer over 32 MB costs more in page faults than the lookup."""
        shares = self.token_shares()  # (vocabulary + 1, width * filters); the last row is zeros
        ids = torch.where(weights > 0, input_ids, shares.shape[0] - 1)  # uncounted: the zero row
        rows = max(1, (1 << 21) // (ids.shape[1] * shares.shape[1]))  # about 8 MB of float32
        return torch.cat([self._strongest_of(ids[i : i + rows], shares) for i in range(0, len(ids), rows)])

    def _strongest_of(self, ids: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
        width, pad, tokens = self.conv.kernel_size[0], self.conv.padding[0], ids.shape[1]
        parts = nn.functional.embedding(ids, shares).view(len(ids), tokens, width, -1)
        scores = parts[:, :, pad]  # summed in place: window t holds token t + offset - pad
        for offset in range(width):
            shift = offset - pad
            if shift > 0:
                scores[:, : tokens - shift] += parts[:, shift:, offset]
            elif shift < 0:
                scores[:, -shift:] += parts[:, :shift, offset]
        scores += self.conv.bias
        scores.relu_().masked_fill_((ids == shares.shape[0] - 1).unsqueeze(-1), 0.0)
        return scores.amax(dim=1)

    @torch.no_grad()
    def token_shares(self) -> torch.Tensor:
        """Each token's share of every filter's score at each offset of a window, (vocabulary + 1,
        width * filters), plus a row of zeros; recomputed when the vectors or the filters change."""
        weight, vectors = self.conv.weight, self.embeddings.weight
        key = (vectors.data_ptr(), vectors._version, weight.data_ptr(), weight._version, vectors.dtype)
        if getattr(self, "_shares_key", None) != key:
            shares = torch.einsum("vd,cdk->vkc", vectors, weight.to(vectors.dtype)).flatten(1)
            self._shares = torch.cat([shares, shares.new_zeros(1, shares.shape[1])])
            self._shares_key = key
        return self._shares


def _register() -> None:
    AutoConfig.register(MODEL_TYPE, StaticEmbeddingConfig, exist_ok=True)
    AutoModel.register(StaticEmbeddingConfig, StaticEmbeddingModel, exist_ok=True)


_register()
