from __future__ import annotations

import random

import pytest

from texttune import TrainConfig, train
from texttune.batching import TokenBudgetBatchSampler, token_budget_batches
from texttune.errors import ConfigError


def test_token_budget_batches_cover_every_text_once_within_budget():
    rng = random.Random(0)
    lengths = [rng.randint(4, 60) for _ in range(500)] + [200]  # one text longer than the budget
    batches = token_budget_batches(lengths, max_tokens=128, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 128
    assert [lengths[i] for b in batches if len(b) == 1 for i in b if lengths[i] > 128] == [200]
    short = [b for b in batches if max(lengths[i] for i in b) <= 8]
    assert short and all(len(b) >= 128 // 8 - 1 for b in short[:-1])  # short texts make big batches


def test_epochs_keep_the_batch_count_but_change_the_batches():
    rng = random.Random(0)
    lengths = [rng.randint(4, 30) for _ in range(300)]
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=64, seed=3)
    first, second = list(sampler), list(sampler)
    assert len(first) == len(second) == len(sampler)
    assert first != second
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_max_tokens_per_batch_must_be_sensible():
    with pytest.raises(ConfigError, match="--max-tokens-per-batch must be at least 8, got 0"):
        TrainConfig(max_tokens_per_batch=0)


def test_training_with_a_token_budget(tiny_bert, reviews_csv, tmp_path, run_config):
    config = run_config(
        tiny_bert,
        reviews_csv,
        tmp_path / "run",
        epochs=2,
        batch_size=32,
        max_tokens_per_batch=160,
        logging_steps=1,
    )
    result = train(config)
    steps = [e["step"] for e in result.log_history if "loss" in e]
    # 45 training texts of 7-16 tokens, 10-22 per batch: 3-5 steps per epoch (batch 32 would give 2)
    assert 2 * 3 <= steps[-1] <= 2 * 5
    assert result.metrics["samples"] == 15
