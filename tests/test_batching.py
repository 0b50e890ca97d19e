from __future__ import annotations

import logging
import random

import pytest
import torch

from texttune import TrainConfig, train
from texttune.batching import TokenBudgetBatchSampler, token_budget_batches
from texttune.errors import ConfigError
from texttune.trainer import micro_batches


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


def test_micro_batches_slice_rows_within_the_budget():
    batch = {
        "input_ids": torch.arange(50).view(5, 10),
        "attention_mask": torch.ones(5, 10),
        "labels": torch.arange(5),
        "scale": torch.tensor(2.0),  # not one value per row: every slice gets it whole
    }
    parts = micro_batches(batch, 20)
    assert [part["labels"].tolist() for part in parts] == [[0, 1], [2, 3], [4]]
    assert torch.equal(torch.cat([part["input_ids"] for part in parts]), batch["input_ids"])
    assert all(part["scale"] is batch["scale"] for part in parts)
    assert micro_batches(batch, 50) == [batch]  # within the budget
    assert micro_batches(batch, 0) == [batch]  # 0: never sliced
    assert [len(p["labels"]) for p in micro_batches(batch, 3)] == [1] * 5  # a row over the budget: alone
    assert micro_batches({"features": torch.zeros(5, 99)}, 20)[0]["features"].shape == (5, 99)


def _gradients(model_path, tmp_path, inputs, *, micro_batch_tokens, accumulation=1, class_weights=None):
    """The gradient of one training step of a dropout-free tiny classifier on ``inputs``, and the loss."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, TrainingArguments

    from texttune.imbalance import make_weighted_loss
    from texttune.trainer import make_trainer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(model_path, num_labels=2, pad_token_id=0)
    for dropout in ("hidden_dropout_prob", "attention_probs_dropout_prob", "attention_dropout"):
        if hasattr(config, dropout):
            setattr(config, dropout, 0.0)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, config=config)
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], gradient_accumulation_steps=accumulation
    )
    trainer = make_trainer(
        model,
        args,
        train_dataset=[],
        compute_loss=make_weighted_loss("single_label", class_weights) if class_weights else None,
        micro_batch_tokens=micro_batch_tokens,
        progress=False,
    )
    # as Trainer's loop does: count the labels of the accumulated batches, then step
    trainer.current_gradient_accumulation_steps = accumulation
    count = trainer._get_num_items_in_batch([inputs] * accumulation, args.device)
    loss = trainer.training_step(model, dict(inputs), count)
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}, loss.item()


@pytest.mark.parametrize("class_weights", [None, [1.0, 3.0]], ids=["model-loss", "weighted-loss"])
def test_a_sliced_batch_gives_the_whole_batch_gradient(tiny_bert, class_weights, tmp_path, caplog):
    generator = torch.Generator().manual_seed(1)
    inputs = {
        "input_ids": torch.randint(5, 60, (7, 12), generator=generator),
        "attention_mask": torch.ones(7, 12, dtype=torch.long),
        "labels": torch.tensor([0, 1, 1, 0, 1, 0, 0]),
    }
    inputs["attention_mask"][:3, 9:] = 0  # some padding
    whole, whole_loss = _gradients(
        tiny_bert, tmp_path, inputs, micro_batch_tokens=0, class_weights=class_weights
    )
    # 24 tokens per slice: slices of 2, 2, 2 and 1 rows
    with caplog.at_level(logging.INFO, logger="texttune.trainer"):
        sliced, sliced_loss = _gradients(
            tiny_bert, tmp_path, inputs, micro_batch_tokens=24, class_weights=class_weights
        )
    assert "a batch of 7 texts x 12 tokens runs in 4 slices of the same update (--micro-batch-tokens 24)" in (
        caplog.text
    )
    assert sliced_loss == pytest.approx(whole_loss, rel=1e-5)
    assert whole.keys() == sliced.keys() and len(whole) > 10
    for name, gradient in whole.items():
        assert torch.allclose(sliced[name], gradient, rtol=1e-4, atol=1e-7), name
    # with two accumulated batches, each one's loss is half its mean, sliced or not
    for tokens in (0, 24):
        halved, halved_loss = _gradients(
            tiny_bert,
            tmp_path,
            inputs,
            micro_batch_tokens=tokens,
            accumulation=2,
            class_weights=class_weights,
        )
        assert halved_loss == pytest.approx(whole_loss / 2, rel=1e-5)
        for name, gradient in whole.items():
            assert torch.allclose(halved[name], gradient / 2, rtol=1e-4, atol=1e-7), name


def test_micro_batch_tokens_must_not_be_negative():
    with pytest.raises(ConfigError, match="--micro-batch-tokens must not be negative, got -1"):
        TrainConfig(micro_batch_tokens=-1)
