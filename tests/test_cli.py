from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest

from texttune.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_for_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: texttune " + command in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def _train_args(tiny_bert, data, out, *extra):
    return [
        "train", "--data", data, "--model", tiny_bert, "--output", str(out), "--epochs", "1",
        "--batch-size", "16", "--max-length", "32", "--validation-split", "0.25", "--no-progress",
        "--use-cpu", "--quiet", "--strategy", "full", *extra,
    ]  # fmt: skip


def test_end_to_end_train_evaluate_predict(tiny_bert, reviews_csv, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(_train_args(tiny_bert, reviews_csv, out)) == 0
    assert "run saved to" in capsys.readouterr().out

    assert main(["evaluate", str(out), "--json", "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    stored = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == stored["accuracy"]

    assert main(["evaluate", str(out), "--data", reviews_csv, "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 60
    assert (out / "evaluations" / "reviews" / "confusion_matrix.png").is_file()

    assert main(["predict", str(out), "good fun film", "awful plot", "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split(" ")[0] in {"negative", "positive"}

    assert main(["predict", str(out), "good fun film", "--json", "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["label"] in row["probabilities"]

    preds = tmp_path / "preds.jsonl"
    assert main(["predict", str(out), "--data", reviews_csv, "--output", str(preds), "--quiet"]) == 0
    assert len(pd.read_json(preds, lines=True)) == 60
    assert main(["predict", str(out), "--data", reviews_csv, "--output", str(preds), "--quiet"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO("good fun\n\nawful boring\nq\nnever read\n"))
    assert main(["predict", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len([line for line in printed if not line.startswith("  ")]) == 2


def test_config_file_with_flag_override(tiny_bert, reviews_csv, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"data: {reviews_csv}\nlearning_rate: 0.5\nepochs: 3\n")
    out = tmp_path / "run"
    assert (
        main(_train_args(tiny_bert, reviews_csv, out, "--config", str(config), "--learning-rate", "1e-3"))
        == 0
    )
    manifest = json.loads((out / "texttune.json").read_text())
    assert manifest["config"]["train"]["learning_rate"] == 1e-3  # flag wins over the file
    assert manifest["config"]["train"]["epochs"] == 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "nope.csv", "--output", "x"], "not found"),
        (["train", "--output", "x"], "no training data given; pass --data"),
        (["train", "--data", "x.csv"], "no output folder given; pass --output DIR"),
        (["train", "--data", "x.csv", "--output", "x", "--warmup-ratio", "2"], "--warmup-ratio must be in"),
        (["evaluate", "no-such-run"], "run folder not found: no-such-run"),
        (["predict", "no-such-run", "text"], "run folder not found: no-such-run"),
    ],
)
def test_errors_are_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_debug_shows_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from texttune.errors import ModelError

    with pytest.raises(ModelError):
        main(["evaluate", "no-such-run", "--debug"])


def test_predict_argument_conflicts(tiny_bert, reviews_csv, tmp_path, capsys):
    assert main(["predict", "run", "--data", reviews_csv]) == 2
    assert "--data needs --output" in capsys.readouterr().err
    assert main(["predict", "run", "--output", "x.csv"]) == 2
    assert "--output is for predicting a file" in capsys.readouterr().err


def test_model_folder_errors(tmp_path, reviews_csv, capsys):
    not_model = tmp_path / "folder"
    not_model.mkdir()
    assert (
        main(["train", "--data", reviews_csv, "--model", str(not_model), "--output", str(tmp_path / "o")])
        == 2
    )
    assert "is not a model folder (no config.json" in capsys.readouterr().err
    (not_model / "config.json").write_text("{}")
    assert main(["evaluate", str(not_model)]) == 2
    assert "texttune.json is missing (it looks like a plain transformers model" in capsys.readouterr().err


def test_pickle_only_model_refused(tiny_bert, tmp_path, reviews_csv, capsys):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_bert, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    assert (
        main(["train", "--data", reviews_csv, "--model", str(folder), "--output", str(tmp_path / "o")]) == 2
    )
    assert "only has pickled weights (pytorch_model.bin)" in capsys.readouterr().err


FORMAT_1_RUN = __import__("pathlib").Path(__file__).parent / "fixtures" / "runs" / "format-1-full"


def test_a_flag_of_the_wrong_type_is_one_line_naming_the_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "x.csv", "--learning-rate", "abc"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err
    assert "--learning-rate: invalid float value: 'abc' (see `texttune train --help`)" in err


def test_evaluate_refuses_a_bad_batch_size_and_keeps_the_stored_evaluation(tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(FORMAT_1_RUN, run)
    stored = (run / "metrics.json").read_text()
    assert main(["evaluate", str(run), "--batch-size", "-1"]) == 2
    assert "--batch-size must be positive, got -1" in capsys.readouterr().err
    assert not (run / "evaluations").exists() and (run / "metrics.json").read_text() == stored


def test_strategies_lists_each_strategy_with_what_it_exports_and_its_options(capsys):
    from texttune.strategies import strategy_names

    assert main(["strategies"]) == 0
    table, auto = capsys.readouterr().out.split("\n\n")
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert set(rows) == set(strategy_names())
    assert auto.strip() == (
        "--strategy auto (the default): setfit for single-label data with at most 64 training rows per class, "
        "else full"
    )
    assert "--lora-rank" in rows["lora"] and "--merge" in rows["lora"]
    assert "onnx" in rows["full"] and "--freeze-layers" in rows["partial"]
    # the default learning rate and the heads each strategy can classify with
    assert re.search(r"--merge +0\.001 +pooler/pooled ", rows["lora"])
    assert re.search(r"plain +2e-05 +pooled ", rows["setfit"]) and re.search(r"plain +model's ", rows["full"])


def test_the_command_line_imports_no_heavy_library_before_a_command_runs():
    import subprocess
    import sys

    probe = (
        "import sys, texttune, texttune.cli; texttune.cli.make_parser(); "
        "print([m for m in ('torch', 'transformers', 'datasets', 'pandas', 'pyarrow', 'peft', 'sklearn') "
        "if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
