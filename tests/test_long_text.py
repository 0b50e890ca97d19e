from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

from texttune import ModelConfig, Predictor, train
from texttune.errors import ConfigError
from texttune.long_text import aggregate_windows, check_long_text, encode_long


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


def _long_text(filler: list[str], n_words: int) -> str:
    return " ".join(filler[i % len(filler)] for i in range(n_words))


def test_head_tail_keeps_first_and_last_tokens(tokenizer, review_words):
    text = "good " + _long_text(review_words.filler, 40) + " awful"
    full = tokenizer(text)["input_ids"]
    encoded, documents = encode_long([text, "good fun"], tokenizer, 16, "head-tail", 0)
    ids = encoded["input_ids"][0]
    assert documents == [0, 1] and len(ids) == 16
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    content = full[1:-1]
    assert ids[1:4] == content[:3]  # head: a quarter of the 14-token budget
    assert ids[4:-1] == content[-11:]  # tail: the rest
    assert encoded["input_ids"][1] == tokenizer("good fun")["input_ids"]  # short texts are untouched


def test_sliding_windows_overlap_by_stride_and_cover_the_text(tokenizer, review_words):
    text = _long_text(review_words.filler, 50)
    content = tokenizer(text)["input_ids"][1:-1]
    encoded, documents = encode_long([text], tokenizer, 16, "sliding", 4)
    windows = [w[1:-1] for w in encoded["input_ids"]]
    assert all(len(w) <= 14 for w in windows) and len(windows) > 1 and set(documents) == {0}
    assert windows[0] == content[:14]
    for a, b in zip(windows, windows[1:]):
        assert a[-4:] == b[:4]  # neighbours share `stride` tokens
    rebuilt = windows[0] + [t for w in windows[1:] for t in w[4:]]
    assert rebuilt == content


def test_aggregate_windows_averages_per_document():
    logits = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]], dtype=np.float32)
    np.testing.assert_allclose(aggregate_windows(logits, [0, 0, 1], 2), [[2.0, 1.0], [5.0, 5.0]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"long_text": "chunks"}, "--long-text 'chunks' is not one of truncate, head-tail, sliding"),
        ({"stride": 8}, "--stride only applies to --long-text sliding"),
        ({"long_text": "sliding", "stride": -1}, "--stride must not be negative, got -1"),
        ({"long_text": "sliding", "stride": 20, "max_length": 32}, "--stride 20 must be below half"),
    ],
)
def test_long_text_options_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**kwargs)


def test_long_text_refuses_pairs_and_large_default_stride():
    with pytest.raises(ConfigError, match="--long-text sliding works on single texts, not sentence pairs"):
        check_long_text("sliding", 64, None, has_pairs=True)
    with pytest.raises(ConfigError, match="--stride 40 must be below half of --max-length 64"):
        check_long_text("sliding", 64, 40, has_pairs=False)
    assert check_long_text("sliding", 64, None, has_pairs=False) == 16


def _long_reviews(words, path, n: int = 40) -> str:
    rng = random.Random(3)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        # the label word sits at the end of a long text: truncation at 16 tokens cannot see it
        text = rng.choices(words.filler, k=30) + rng.choices(
            words.positive if positive else words.negative, k=2
        )
        rows.append({"text": " ".join(text), "label": "positive" if positive else "negative"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_sliding_trains_and_predictor_averages_windows(tiny_bert, tmp_path, review_words, run_config):
    data = _long_reviews(review_words, tmp_path / "long.csv")
    config = run_config(
        tiny_bert,
        data,
        tmp_path / "run",
        model_options={"max_length": 16, "long_text": "sliding", "stride": 4},
        report=False,
    )
    result = train(config)
    manifest = json.loads((result.output / "texttune.json").read_text())
    assert manifest["long_text"] == "sliding" and manifest["stride"] == 4
    assert result.train_samples > 30  # 30 training texts became more windows
    assert result.metrics["samples"] == 10  # validation is scored per document

    predictor = Predictor.load(result.output)
    texts = pd.read_csv(data)["text"].tolist()[:3]
    logits = predictor.logits(texts)
    assert logits.shape == (3, 2)
    encoded, documents = encode_long(texts, predictor.tokenizer, 16, "sliding", 4)
    model = predictor.model
    with torch.inference_mode():
        window_logits = np.concatenate(
            [
                model(
                    **predictor.tokenizer.pad({k: [v[i]] for k, v in encoded.items()}, return_tensors="pt")
                ).logits.numpy()
                for i in range(len(documents))
            ]
        )
    expected = np.stack([window_logits[np.asarray(documents) == d].mean(axis=0) for d in range(3)])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    assert len(predictor.predict(texts)) == 3
