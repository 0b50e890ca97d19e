from __future__ import annotations

from datasets import Dataset

from texttune.tokenization import load_tokenizer, make_collator, resolve_max_length, tokenize_dataset


def test_batches_padded_to_longest_member(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    data = Dataset.from_dict(
        {"text": ["good", "the film was really good fun", "bad plot"], "labels": [1, 1, 0]}
    )
    encoded = tokenize_dataset(data, tokenizer, max_length=32)
    assert encoded.column_names == ["labels", "input_ids", "token_type_ids", "attention_mask"]
    lengths = [len(x) for x in encoded["input_ids"]]
    batch = make_collator(tokenizer)([encoded[i] for i in range(3)])
    assert batch["input_ids"].shape == (3, max(lengths))
    assert max(lengths) < 32
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths


def test_pairs_use_pair_encoding(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    data = Dataset.from_dict({"text": ["good fun"], "text_pair": ["awful plot"], "labels": [0]})
    row = tokenize_dataset(data, tokenizer, max_length=32)[0]
    assert row["input_ids"].count(tokenizer.sep_token_id) == 2
    assert 1 in row["token_type_ids"]


def test_truncation_and_default_length(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    assert resolve_max_length(tokenizer, None) == 64  # the tiny tokenizer's limit
    data = Dataset.from_dict({"text": ["good " * 200], "labels": [1]})
    assert len(tokenize_dataset(data, tokenizer, max_length=16)[0]["input_ids"]) == 16
