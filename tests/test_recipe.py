"""The defaults that adapt to the data size, the strategy and the checkpoint (texttune.recipe)."""

from __future__ import annotations

import pytest

from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train
from texttune.config import StrategyConfig
from texttune.errors import ConfigError
from texttune.modeling import checkpoint_pooling, resolve_model_path
from texttune.recipe import MIN_STEPS, batch_and_epochs, choose_strategy, resolve_defaults
from texttune.strategies import get_strategy


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (16, (8, 50.0)),  # 8 examples per class: 2 steps an epoch
        (64, (8, 13.0)),
        (256, (8, 4.0)),
        (600, (16, 3.0)),
        (1_000, (16, 3.0)),
        (10_200, (32, 3.0)),  # large data keeps the BERT recipe
    ],
)
def test_small_data_gets_a_smaller_batch_and_more_epochs(rows, expected):
    batch, epochs = batch_and_epochs(rows)
    assert (batch, epochs) == expected
    steps_per_epoch = -(-rows // batch)
    assert steps_per_epoch * epochs >= MIN_STEPS


def test_given_batch_and_epochs_win():
    assert batch_and_epochs(16, batch_size=4) == (4, 25.0)
    assert batch_and_epochs(16, epochs=1.0) == (8, 1.0)
    assert batch_and_epochs(16, batch_size=2, epochs=0.5) == (2, 0.5)
    assert batch_and_epochs(600, per_step=4) == (8, 6.0)  # accumulation counts toward the step size


def _resolved(strategy="full", model="minilm", rows=600, pooling="auto", **train_options):
    config = RunConfig(
        model=ModelConfig(model=model, pooling=pooling),
        train=TrainConfig(**train_options),
        strategy=StrategyConfig(strategy=strategy, freeze_layers=1 if strategy == "partial" else None),
    )
    path = resolve_model_path(model)
    return resolve_defaults(config, get_strategy(strategy), rows, path)


@pytest.mark.parametrize(
    ("strategy", "model", "rate"),
    [
        ("full", "minilm", 1e-4),  # the built-in model's tuned rate
        ("full", "tiny_bert", 5e-5),
        ("partial", "tiny_bert", 5e-5),
        ("lora", "tiny_bert", 1e-3),
        ("ia3", "tiny_bert", 3e-3),
        ("freeze", "tiny_bert", 1e-3),
        ("prompt", "tiny_bert", 3e-2),
    ],
)
def test_learning_rate_suits_the_strategy(strategy, model, rate, request):
    model = request.getfixturevalue(model) if model.startswith("tiny") else model
    assert _resolved(strategy, model).train.learning_rate == rate
    assert _resolved(strategy, model, learning_rate=3e-5).train.learning_rate == 3e-5


def test_resolved_copy_records_choices_and_leaves_the_callers_config(tiny_bert, caplog):
    config = RunConfig(model=ModelConfig(model=tiny_bert))
    with caplog.at_level("INFO", logger="texttune.recipe"):
        resolved = resolve_defaults(config, get_strategy("full"), 16, tiny_bert)
    assert (resolved.train.batch_size, resolved.train.epochs) == (8, 50.0)
    assert resolved.train.save_steps == 20  # 100 steps, 5 evaluations instead of 50
    assert config.train.epochs is None and config.train.learning_rate is None
    assert (
        "recipe for 16 training rows (16 per epoch): pooling pooler, learning rate 5e-05 (full), batch 8, 50 epochs"
        in caplog.text
    )
    given = resolve_defaults(
        RunConfig(
            model=ModelConfig(model=tiny_bert), train=TrainConfig(epochs=2.0, batch_size=4, save_steps=7)
        ),
        get_strategy("full"),
        16,
        tiny_bert,
    )
    assert (given.train.batch_size, given.train.epochs, given.train.save_steps) == (4, 2.0, 7)


def test_auto_pooling_is_the_checkpoints_own(tiny_bert, tiny_bert_mean, tiny_gpt2):
    assert (
        checkpoint_pooling(resolve_model_path("minilm")) == "mean"
    )  # the built-in sentence-transformers model
    assert checkpoint_pooling(tiny_bert_mean) == "mean"
    assert checkpoint_pooling(tiny_bert) is None
    assert _resolved("full", tiny_bert_mean).model.pooling == "mean"
    assert _resolved("lora", tiny_bert_mean).model.pooling == "mean"
    assert _resolved("prompt", tiny_bert_mean).model.pooling == "pooler"  # needs peft's own head
    assert _resolved("full", tiny_bert).model.pooling == "pooler"  # no pooling config: the usual head
    assert _resolved("freeze", tiny_bert).model.pooling == "cls"
    assert _resolved("freeze", tiny_gpt2).model.pooling == "last"
    assert _resolved("full", tiny_bert_mean, pooling="cls").model.pooling == "cls"


@pytest.mark.parametrize(
    ("strategy", "pooling", "message"),
    [
        ("freeze", "pooler", r"--strategy freeze trains a head on pooled features; use --pooling cls, mean"),
        ("prompt", "mean", r"--strategy prompt classifies with the model's own head; use --pooling pooler"),
        ("prefix", "max", r"--strategy prefix classifies with the model's own head"),
    ],
)
def test_pooling_the_strategy_cannot_use_is_refused(strategy, pooling, message, tiny_bert):
    with pytest.raises(ConfigError, match=message):
        _resolved(strategy, tiny_bert, pooling=pooling)


def test_run_records_the_recipe(tiny_bert_mean, reviews_csv, tmp_path):
    import json

    config = RunConfig(
        data=DataConfig(data=reviews_csv, validation_split=0.25),
        model=ModelConfig(model=tiny_bert_mean, max_length=32),
        train=TrainConfig(output=str(tmp_path / "run"), progress=False, use_cpu=True, learning_rate=1e-3),
        strategy=StrategyConfig(strategy="full"),
    )
    result = train(config)
    recorded = json.loads((result.output / "texttune.json").read_text())["config"]
    assert recorded["train"]["batch_size"] == 8 and recorded["train"]["epochs"] == 17.0  # 45 rows
    assert recorded["model"]["pooling"] == "mean"
    assert max(entry.get("step", 0) for entry in result.log_history) == 102  # 6 steps x 17 epochs


def test_setfit_keeps_its_own_recipe(tiny_bert):
    few = _resolved("setfit", tiny_bert, rows=16)  # 8 per class: 640 pairs, SetFit's batch 16, one epoch
    assert (few.train.batch_size, few.train.epochs, few.train.learning_rate) == (16, 1.0, 2e-5)
    assert few.train.save_steps is None
    many = _resolved("setfit", tiny_bert, rows=10_000)  # pairs capped at --setfit-pairs 2000
    assert (many.train.batch_size, many.train.epochs) == (16, 1.0)


def test_freeze_trains_its_head_longer(tiny_bert):
    few = _resolved("freeze", tiny_bert, rows=16)  # cached features: 1,000 steps cost seconds
    assert (few.train.batch_size, few.train.epochs, few.train.save_steps) == (8, 500.0, 200)


@pytest.mark.parametrize(
    ("task", "rows", "classes", "pooling", "expected"),
    [
        ("single_label", 16, 2, "auto", "setfit"),  # 8 examples per class
        ("single_label", 192, 3, "mean", "setfit"),  # 64 per class, the most setfit takes
        ("single_label", 194, 3, "auto", "full"),
        ("single_label", 16, 2, "pooler", "full"),  # setfit classifies from a pooled head only
        ("multi_label", 16, 2, "auto", "full"),  # setfit trains single-label classifiers
        ("regression", 16, 0, "auto", "full"),
    ],
)
def test_auto_strategy_is_setfit_for_few_examples_per_class(task, rows, classes, pooling, expected):
    config = RunConfig(model=ModelConfig(pooling=pooling))
    assert config.strategy.strategy == "auto"  # the default
    chosen = choose_strategy(config, task, rows, classes)
    assert chosen.strategy.strategy == expected and config.strategy.strategy == "auto"
    named = RunConfig(strategy=StrategyConfig(strategy="lora"))
    assert choose_strategy(named, task, rows, classes) is named  # a named strategy is kept


def test_default_run_records_the_strategy_it_chose(tiny_bert_mean, reviews_csv, tmp_path, caplog):
    import json

    from texttune import Predictor

    config = RunConfig(
        data=DataConfig(data=reviews_csv, validation_split=0.25),
        model=ModelConfig(model=tiny_bert_mean, max_length=32),
        train=TrainConfig(output=str(tmp_path / "run"), progress=False, use_cpu=True),
    )
    with caplog.at_level("INFO", logger="texttune.recipe"):
        result = train(config)
    assert "--strategy auto: setfit (single_label, 22 training rows per class)" in caplog.text
    manifest = json.loads((result.output / "texttune.json").read_text())
    assert manifest["strategy"] == manifest["config"]["strategy"]["strategy"] == "setfit"
    assert manifest["config"]["train"]["learning_rate"] == 2e-5  # setfit's recipe, not full's
    assert Predictor.load(result.output).predict(["a fine film"])[0].label in {"negative", "positive"}
