"""Why the model said what it said: each word's attribution to the predicted class (captum).

Attributions are captum's Layer Integrated Gradients on the input embeddings: the embedding of every
word piece is moved from a baseline (the pad token; the special tokens kept) to its real value, and the
gradients of the explained class's logit along that path, times the embedding change, give each piece's
share of the logit. They add up to the logit's difference from the baseline (the completeness property;
captum reports the gap as ``delta``). Word pieces are summed into the words of the text using the fast
tokenizer's offsets, so a user reads words, not ``##ing``. Positive values pushed towards the class,
negative ones away from it. Any run whose model PyTorch loads can be explained: full, partial, adapter and
frozen-head runs alike.

Example:
    >>> from texttune import Predictor
    >>> [explanation] = Predictor.load("runs/demo").explain(["a gripping, beautiful film"])  # doctest: +SKIP
    >>> explanation.label, explanation.words[1]  # doctest: +SKIP
    ('fresh', ('gripping', 0.41))
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .tasks import REGRESSION

#: Integration steps of Integrated Gradients (captum's default).
STEPS = 50


@dataclass
class Explanation:
    """One text's explanation.

    Attributes:
        text: The text explained.
        label: The class explained (the prediction unless another was asked for); regression: ``"value"``.
        score: Its probability (regression: the predicted value).
        words: ``(word, attribution)`` in text order; the attributions add up to about ``logit - baseline``.
        logit: The explained class's logit.
        baseline: Its logit for the baseline input (the text's word pieces replaced by padding).
        delta: captum's convergence delta: how far the attributions miss ``logit - baseline``.
    """

    text: str
    label: str
    score: float
    words: list[tuple[str, float]] = field(default_factory=list)
    logit: float = 0.0
    baseline: float = 0.0
    delta: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "label": self.label,
            "score": self.score,
            "words": [{"word": w, "attribution": a} for w, a in self.words],
            "logit": self.logit,
            "baseline": self.baseline,
            "delta": self.delta,
        }


def explain_texts(
    predictor, texts: Sequence[str], label: str | None = None, steps: int = STEPS
) -> list[Explanation]:
    """Explain each text's prediction (or the class ``label``) with the predictor's PyTorch model.

    Args:
        predictor: A :class:`~texttune.inference.Predictor` with the ``torch`` backend.
        texts: Texts to explain (single texts; truncated at the run's max length).
        label: A class name to explain instead of each text's predicted class.
        steps: Integration steps (more: attributions closer to complete, slower).

    Returns:
        One :class:`Explanation` per text.
    """
    import torch
    from captum.attr import LayerIntegratedGradients

    if predictor.backend != "torch":
        raise ConfigError("explanations need the run's PyTorch model; pass --backend torch")
    check_label(label, predictor.label_names)
    model = predictor.model

    def forward(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    integrated = LayerIntegratedGradients(forward, input_embeddings(model))
    explanations = []
    for text in texts:
        encoded = predictor.tokenizer(
            str(text), truncation=True, max_length=predictor.manifest.max_length, return_offsets_mapping=True
        )
        ids = torch.tensor([encoded["input_ids"]], device=predictor.device)
        mask = torch.ones_like(ids)
        special = torch.tensor(
            [
                predictor.tokenizer.get_special_tokens_mask(
                    encoded["input_ids"], already_has_special_tokens=True
                )
            ],
            dtype=torch.bool,
            device=predictor.device,
        )
        baseline = torch.where(special, ids, torch.full_like(ids, _pad_id(predictor.tokenizer)))
        with torch.no_grad():
            logits = forward(ids, mask)[0].float().cpu().numpy()
            baseline_logits = forward(baseline, mask)[0].float().cpu().numpy()
        probabilities = predictor.probabilities(logits[None])[0]
        target = _target(predictor, label, probabilities)
        attributions, delta = integrated.attribute(
            ids,
            baselines=baseline,
            target=target,
            additional_forward_args=(mask,),
            n_steps=steps,
            internal_batch_size=steps,
            return_convergence_delta=True,
        )
        pieces = attributions.sum(dim=-1)[0].detach().float().cpu().numpy()
        explanations.append(
            Explanation(
                text=str(text),
                label="value" if predictor.task == REGRESSION else predictor.label_names[target],
                score=float(probabilities[target]),
                words=merge_word_pieces(str(text), encoded, pieces),
                logit=float(logits[target]),
                baseline=float(baseline_logits[target]),
                delta=float(delta[0]),
            )
        )
    return explanations


def check_label(label: str | None, label_names: Sequence[str]) -> None:
    """Refuse a ``--label`` that is not one of the run's classes."""
    if label is not None and label not in label_names:
        raise ConfigError(
            f"--label {label!r} is not a class of this run; choose one of {', '.join(label_names)}"
        )


def input_embeddings(model):
    """The token-embedding layer of a run's model: a ``transformers`` model, a pooled classifier or peft."""
    for candidate in (model, getattr(model, "base", None)):
        if candidate is not None and hasattr(candidate, "get_input_embeddings"):
            layer = candidate.get_input_embeddings()
            if layer is not None:
                return layer
    raise ConfigError(f"cannot find the input embeddings of a {type(model).__name__} model to explain it")


def merge_word_pieces(text: str, encoded, pieces) -> list[tuple[str, float]]:
    """Sum the attributions of each word's pieces; a word is the span of text its pieces cover.

    Special tokens (no word) are left out. ``encoded`` is the fast tokenizer's encoding of ``text`` with
    offsets.
    """
    words: dict[int, list[Any]] = {}
    for index, word in enumerate(encoded.word_ids()):
        if word is None:
            continue
        start, end = encoded["offset_mapping"][index]
        if word not in words:
            words[word] = [start, end, 0.0]
        words[word][1] = max(words[word][1], end)
        words[word][2] += float(pieces[index])
    return [(text[start:end], total) for start, end, total in words.values()]


def to_html(explanations: Sequence[Explanation]) -> str:
    """A page with each text's words highlighted: green pushed towards the class, red away from it."""
    rows = []
    for e in explanations:
        peak = max((abs(a) for _, a in e.words), default=0.0) or 1.0
        spans = " ".join(
            f"<span title='{a:+.4f}' style='background:rgba({_rgb(a)},{min(1.0, abs(a) / peak):.2f})'>"
            f"{html.escape(w)}</span>"
            for w, a in e.words
        )
        rows.append(
            f"<p><b>{html.escape(e.label)}</b> ({e.score:.3f})<br>{spans}<br><small>logit {e.logit:.3f}, "
            f"baseline {e.baseline:.3f}, attributions sum to {sum(a for _, a in e.words):.3f}</small></p>"
        )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>texttune explanations</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;line-height:2}"
        "span{padding:.1em .2em;border-radius:.2em}</style></head><body><h1>Explanations</h1>"
        "<p>Green words pushed the model towards the class shown, red ones away from it.</p>"
        + "\n".join(rows)
        + "</body></html>\n"
    )


def to_terminal(explanation: Explanation, colour: bool) -> str:
    """The words with their attributions: coloured (green/red, bold when strong) on a terminal."""
    peak = max((abs(a) for _, a in explanation.words), default=0.0) or 1.0
    parts = []
    for word, attribution in explanation.words:
        if not colour:
            parts.append(f"{word}({attribution:+.3f})")
            continue
        code = "32" if attribution >= 0 else "31"
        bold = ";1" if abs(attribution) >= 0.5 * peak else ""
        parts.append(f"\033[{code}{bold}m{word}\033[0m")
    return " ".join(parts)


def _rgb(attribution: float) -> str:
    return "40,160,60" if attribution >= 0 else "220,50,50"


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _target(predictor, label: str | None, probabilities) -> int:
    if predictor.task == REGRESSION:
        return 0
    if label is not None:
        return predictor.label_names.index(label)
    return int(probabilities.argmax())
