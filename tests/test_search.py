from __future__ import annotations

import csv
import json

import pytest
import yaml

from texttune import DataConfig, ModelConfig, RunConfig, StrategyConfig, TrainConfig
from texttune.cli import main
from texttune.errors import ConfigError

optuna = pytest.importorskip("optuna")

from texttune.search import GRIDS, SearchConfig, load_space, search  # noqa: E402

SPACE = "learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}\nbatch_size: [8, 16]\nepochs: [1]\n"


def _base(tiny_bert, data, out, **train_kwargs) -> RunConfig:
    return RunConfig(
        data=DataConfig(data=data, validation_split=0.25),
        model=ModelConfig(model=tiny_bert, max_length=32),
        train=TrainConfig(output=str(out), use_cpu=True, progress=False, **train_kwargs),
        strategy=StrategyConfig(strategy="full"),
    )


def test_search_cli_writes_results_and_best_config_that_train_reproduces(
    tiny_bert, reviews_csv, tmp_path, capsys
):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "search"
    argv = [
        "search", "--data", reviews_csv, "--model", tiny_bert, "--output", str(out), "--n-trials", "3",
        "--space", str(space), "--max-length", "32", "--validation-split", "0.25", "--use-cpu", "--quiet", "--strategy", "full",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ["trial", "state", "accuracy"]
    assert "best validation accuracy" in printed and "reproduce: texttune train --config" in printed

    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and {"learning_rate", "batch_size", "epochs", "epochs_run", "seconds"} <= set(
        rows[0]
    )
    assert all(r["state"] in {"complete", "pruned"} for r in rows)
    assert sorted(p.name for p in out.iterdir()) == ["best.yaml", "results.csv"]  # trial runs are removed

    best = yaml.safe_load((out / "best.yaml").read_text())
    assert set(best) == {"data", "model", "train", "strategy"} and "output" not in best["train"]
    complete = [r for r in rows if r["state"] == "complete"]
    best_row = max(complete, key=lambda r: float(r["accuracy"]))
    assert best["train"]["learning_rate"] == pytest.approx(float(best_row["learning_rate"]))

    run = tmp_path / "best-run"
    assert main(["train", "--config", str(out / "best.yaml"), "--output", str(run), "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(float(best_row["accuracy"]))  # same config, same result


def test_bert_grid_and_pruning(tiny_bert, reviews_csv, tmp_path):
    result = search(
        _base(tiny_bert, reviews_csv, tmp_path / "grid", learning_rate=1e-3),
        SearchConfig(grid="bert", n_trials=2),
    )
    grid = GRIDS["bert"]
    assert len(result.rows) == 2
    for row in result.rows:
        assert row["learning_rate"] in grid["learning_rate"] and row["batch_size"] in grid["batch_size"]
        assert row["epochs"] in grid["epochs"]

    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: [1.0e-3]\nepochs: [2]\n")
    always = optuna.pruners.ThresholdPruner(lower=2.0)  # no accuracy reaches 2: every trial is pruned
    with pytest.raises(ConfigError, match="all 2 trials were pruned; run more trials or pass --pruner none"):
        search(
            _base(tiny_bert, reviews_csv, tmp_path / "pruned"),
            SearchConfig(space=str(space), n_trials=2),
            pruner=always,
        )
    with (tmp_path / "pruned" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["state"] for r in rows] == ["pruned", "pruned"]
    assert [r["epochs_run"] for r in rows] == ["1", "1"]  # stopped after the first of 2 epochs
    assert not (tmp_path / "pruned" / "trials").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lora_rnk: [4, 8]\n", "unknown option(s) lora_rnk; searchable options are"),
        ("learning_rate: 0.1\n", "learning_rate must be a list of choices or {low: ..., high: ..."),
        ("output: [a, b]\n", "output cannot be searched"),
        ("learning_rate: {low: 1, high: 0.1}\n", "learning_rate has low above high"),
    ],
)
def test_space_errors(text, message, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_space(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": "roberta"}, "--grid 'roberta' is not one of bert"),
        ({"n_trials": 0}, "--n-trials must be at least 1"),
        ({"grid": "bert", "space": "s.yaml"}, "give --grid or --space, not both"),
        ({"pruner": "hyperband"}, "--pruner 'hyperband' is not one of median, none"),
    ],
)
def test_search_options_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SearchConfig(**kwargs)


def test_missing_optuna_has_install_hint(reviews_csv, tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name == "optuna":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    assert main(["search", "--data", reviews_csv, "--output", str(tmp_path / "s")]) == 2
    assert "texttune search needs optuna: pip install 'texttune[search]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "--space file not found"),
        ("a: [1\n", "is not valid YAML"),
        ("- 1\n", "must map option names to ranges or lists of choices"),
    ],
)
def test_space_file_errors(text, message, tmp_path):
    path = tmp_path / "space.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_space(path)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--data", "x.csv"], {}, "no output folder given; pass --output DIR for the search results"),
        (["--output", "s"], {}, "no training data given; pass --data FILE"),
        (["--data", "x.csv", "--output", "s"], {"WORLD_SIZE": "2"}, "runs its trials in one process"),
    ],
)
def test_search_run_errors(argv, env, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["search", *argv]) == 2
    assert message in capsys.readouterr().err
