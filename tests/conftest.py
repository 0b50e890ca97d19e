"""Shared fixtures: no network, tiny random models built in code and saved to a temp dir, and factories.

The factories (``make_review``, ``review_frame``, ``sentiment_manifest``, ``run_config``) are fixtures that
return a function: test files ask for them by name and never import from this file.
"""

from __future__ import annotations

import os
import random
from typing import NamedTuple

# huggingface_hub reads these when first imported (during collection), before any fixture runs.
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

POSITIVE = ["good", "great", "fun", "lovely", "brilliant", "superb", "moving", "clever"]
NEGATIVE = ["bad", "awful", "boring", "dull", "terrible", "weak", "messy", "tedious"]
PANGRAM = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]
FILLER = ["the", "film", "was", "really", "a", "story", "and", "plot", "acting", "movie", "very", "quite"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


class ReviewWords(NamedTuple):
    """The words of the generated reviews; the tiny tokenizers' vocabularies are made of them."""

    positive: list[str]
    negative: list[str]
    filler: list[str]


def _make_review(rng: random.Random, positive: bool) -> str:
    words = rng.choices(FILLER, k=rng.randint(3, 12)) + rng.choices(POSITIVE if positive else NEGATIVE, k=2)
    rng.shuffle(words)
    return " ".join(words)


def _review_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        rows.append({"text": _make_review(rng, positive), "label": "positive" if positive else "negative"})
    return pd.DataFrame(rows)


def _sentiment_manifest(base_model: str, max_length: int = 32):
    from texttune.artifacts import RunManifest

    return RunManifest(
        task="single_label",
        label_names=["negative", "positive"],
        text_column="text",
        text_pair_column=None,
        label_column="label",
        max_length=max_length,
        base_model=base_model,
    )


#: The training options of a quick run (see the ``run_config`` fixture).
QUICK_TRAIN = {"epochs": 1.0, "batch_size": 16, "learning_rate": 1e-3, "progress": False, "use_cpu": True}


def _run_config(model: str, data: str, output, *, strategy=None, model_options=None, **train_options):
    from texttune import DataConfig, ModelConfig, RunConfig, StrategyConfig, TrainConfig

    return RunConfig(
        data=DataConfig(data=data, validation_split=0.25),
        model=ModelConfig(model=model, **{"max_length": 32, **(model_options or {})}),
        train=TrainConfig(output=str(output), **{**QUICK_TRAIN, **train_options}),
        strategy=strategy if strategy is not None else StrategyConfig(strategy="full"),
    )


@pytest.fixture(scope="session")
def review_words() -> ReviewWords:
    """The positive, negative and filler words that generated reviews are made of."""
    return ReviewWords(POSITIVE, NEGATIVE, FILLER)


@pytest.fixture(scope="session")
def make_review():
    """``make_review(rng, positive)``: one review, 3-12 filler words and 2 positive or negative words."""
    return _make_review


@pytest.fixture(scope="session")
def review_frame():
    """``review_frame(n=60, seed=0)``: a DataFrame of ``text`` and ``label``, alternating positive/negative."""
    return _review_frame


@pytest.fixture(scope="session")
def sentiment_manifest():
    """``sentiment_manifest(base_model, max_length=32)``: a two-class (negative/positive) manifest.

    For run folders and predictors built by hand in tests.
    """
    return _sentiment_manifest


@pytest.fixture(scope="session")
def untrained_run(tiny_bert, tmp_path_factory) -> str:
    """A two-class (negative/positive) run folder of ``tiny_bert`` with a randomly initialised head."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from texttune.artifacts import write_manifest

    run = tmp_path_factory.mktemp("untrained") / "run"
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        tiny_bert, num_labels=2, id2label={0: "negative", 1: "positive"}
    )
    model.save_pretrained(run)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(run)
    write_manifest(run, _sentiment_manifest(tiny_bert))
    return str(run)


@pytest.fixture(scope="session")
def run_config():
    """``run_config(model, data, output, *, strategy=None, model_options=None, **train_options)``.

    A quick run on a tiny model: 25% of ``data`` held out for validation, ``max_length`` 32, and the
    training options of ``QUICK_TRAIN`` (1 epoch, batch 16, lr 1e-3, no progress bars, on the CPU).
    ``train_options`` override or add ``TrainConfig`` fields, ``model_options`` ``ModelConfig`` fields;
    ``strategy`` is a ``StrategyConfig`` (default: full fine-tuning).
    """
    return _run_config


def _corpus_words() -> list[str]:
    """The words the tiny tokenizers know whole or in pieces: the review words and a pangram."""
    return sorted({*POSITIVE, *NEGATIVE, *FILLER, *PANGRAM})


def _write_wordpiece(folder):
    """A WordPiece tokenizer with a vocabulary written out, so that its ids are the same in every process.

    (``WordPieceTrainer`` breaks ties in hash-map order, which Rust seeds afresh in each process.) Words of
    more than six letters are split into a head and a ``##`` tail, so that some words have several pieces.
    """
    import string

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list(string.ascii_lowercase)
    pieces = [p for w in _corpus_words() for p in ([w] if len(w) <= 6 else [w[:4], "##" + w[4:]])]
    vocab = list(dict.fromkeys(special + letters + ["##" + c for c in letters] + pieces))
    tok = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=64)
    fast.save_pretrained(folder)
    return fast


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A 2-layer BERT with hidden size 32 and a WordPiece tokenizer, saved as a model folder."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = _write_wordpiece(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert_mean(tiny_bert, tmp_path_factory) -> str:
    """``tiny_bert`` as a sentence-transformers checkpoint trained with mean pooling (modules.json)."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("tiny-bert-mean") / "model"
    shutil.copytree(tiny_bert, folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    pooling = {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return str(folder)


@pytest.fixture()
def reviews_csv(tmp_path) -> str:
    path = tmp_path / "reviews.csv"
    _review_frame(60).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory) -> str:
    """A 2-layer DistilBERT (dim 32) with the WordPiece tokenizer, saved as a model folder."""
    import torch
    from transformers import DistilBertConfig, DistilBertModel

    folder = tmp_path_factory.mktemp("tiny-distilbert")
    tokenizer = _write_wordpiece(folder)
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    DistilBertModel(config).save_pretrained(folder)
    return str(folder)


def _write_byte_bpe(folder):
    """A byte-level BPE tokenizer with merges written out (the same in every process, as for WordPiece).

    Every corpus word, with and without the leading space (``Ġ``), is in the vocabulary (one piece);
    other words are merged from the left towards the corpus words.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2TokenizerFast

    merges = []
    for word in _corpus_words():
        for form in (word, "Ġ" + word):
            merges += [(form[:i], form[i]) for i in range(1, len(form))]
    merges = list(dict.fromkeys(merges))
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = list(dict.fromkeys(["<|endoftext|>", *alphabet, *(a + b for a, b in merges)]))
    tok = Tokenizer(models.BPE({piece: i for i, piece in enumerate(vocab)}, merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = GPT2TokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=64,
    )
    fast.save_pretrained(folder)  # no pad token, like the real GPT-2
    return fast


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> str:
    """A 2-layer GPT-2 (width 32) with a byte-level BPE tokenizer and no pad token, saved as a model folder."""
    import torch
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = _write_byte_bpe(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2Model(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """A 2-layer Llama-style decoder (width 32, grouped-query attention) with the byte-level BPE tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaModel

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = _write_byte_bpe(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaModel(config).save_pretrained(folder)
    return str(folder)
