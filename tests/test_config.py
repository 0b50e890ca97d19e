from __future__ import annotations

import pytest

from texttune.config import DataConfig, ModelConfig, RunConfig, TrainConfig, load_yaml_config
from texttune.errors import ConfigError


def test_defaults_left_to_the_recipe():
    train = TrainConfig()
    assert (train.learning_rate, train.batch_size, train.epochs, train.warmup_ratio) == (
        None,
        None,
        None,
        0.1,
    )
    assert ModelConfig().pooling == "auto"


def test_every_field_has_help():
    import dataclasses

    from texttune.config import DemoConfig, EvaluateConfig, ExportConfig, PredictConfig, PretrainConfig
    from texttune.strategies import StrategyConfig

    subcommands = (EvaluateConfig, PredictConfig, PretrainConfig, ExportConfig, DemoConfig)
    for klass in (DataConfig, ModelConfig, TrainConfig, StrategyConfig, *subcommands):
        for f in dataclasses.fields(klass):
            assert f.metadata.get("help"), f"{klass.__name__}.{f.name} has no help text"


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: DataConfig(task="ranking"), r"--task 'ranking' is not one of"),
        (lambda: DataConfig(validation_split=1.5), r"--validation-split must be between 0 and 1"),
        (lambda: DataConfig(max_train_samples=0), r"--max-train-samples must be a positive number"),
        (
            lambda: DataConfig(label_delimiter="|", task="regression"),
            r"--label-delimiter .* --task regression",
        ),
        (lambda: ModelConfig(max_length=2), r"--max-length must be at least 8"),
        (
            lambda: ModelConfig(pooling="avg"),
            r"--pooling 'avg' is not one of auto, pooler, cls, mean, max, last",
        ),
        (lambda: TrainConfig(learning_rate=0), r"--learning-rate must be positive"),
        (lambda: TrainConfig(warmup_ratio=1.0), r"--warmup-ratio must be in \[0, 1\)"),
        (lambda: TrainConfig(precision="fp8"), r"--precision 'fp8' is not one of"),
        (lambda: TrainConfig(early_stopping_patience=0), r"--early-stopping-patience must be at least 1"),
    ],
)
def test_validation_names_flag(factory, message):
    with pytest.raises(ConfigError, match=message):
        factory()


def test_yaml_flat_and_sectioned(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 3e-5\nmodel:\n  max_length: 64\ndata: train.csv\nepochs: 2\n")
    flat = load_yaml_config(path)
    assert flat == {"learning_rate": 3e-5, "max_length": 64, "data": "train.csv", "epochs": 2.0}
    config = RunConfig.from_flat(flat)
    assert (
        config.train.learning_rate == 3e-5
        and config.model.max_length == 64
        and config.data.data == "train.csv"
    )


def test_yaml_unknown_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 3e-5\nlearnin_rate: 1\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in .*run.yaml: learnin_rate"):
        load_yaml_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs: three\n", r"key 'epochs' must be a number"),
        ("batch_size: 3.5\n", r"key 'batch_size' must be a whole number"),
        ("overwrite: maybe\n", r"key 'overwrite' must be true or false"),
        ("- a\n- b\n", r"must hold a mapping"),
        ("a: [\n", r"is not valid YAML"),
    ],
)
def test_yaml_wrong_types(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_yaml_config(path)


def test_yaml_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope.yaml \(check --config\)"):
        load_yaml_config(tmp_path / "nope.yaml")


def test_round_trip_dict():
    config = RunConfig(data=DataConfig(data="x.csv"), train=TrainConfig(epochs=1))
    assert RunConfig.from_dict(config.to_dict()) == config


def test_strategy_config_is_built_from_each_strategys_own_options():
    import dataclasses

    from texttune.strategies import StrategyConfig, get_strategy, strategy_names

    fields = {f.name: f for f in dataclasses.fields(StrategyConfig)}
    for name in strategy_names():
        options = get_strategy(name).options
        for f in dataclasses.fields(options) if options else ():
            readers = fields[f.name].metadata["help"].split(":")[0].split(", ")
            assert name in readers, (name, f.name)
    config = StrategyConfig(strategy="lora", lora_rank=4, head="mlp")
    assert config.options_for().lora_rank == 4 and config.options_for("freeze").head == "mlp"
    assert config.options_for("full") is None
