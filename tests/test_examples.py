"""The scripts in examples/ run on the tiny model, and what they write is a texttune run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from texttune import Predictor, evaluate_run
from texttune.cli import main as texttune_main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def custom_loop():
    return _load_example("custom_loop")


def test_custom_loop_help_names_its_defaults(custom_loop, capsys):
    with pytest.raises(SystemExit) as exit_info:
        custom_loop.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--model MODEL" in out and "--max-train-samples" in out
    defaults = custom_loop.make_parser().parse_args([])
    assert (defaults.model, defaults.data) == ("minilm", "rotten_tomatoes")


def test_custom_loop_trains_and_saves_a_run_that_loads(
    custom_loop, tiny_bert, review_frame, tmp_path, capsys
):
    data = tmp_path / "reviews.csv"
    review_frame(60).to_csv(data, index=False)
    out = tmp_path / "run"
    argv = ["--model", tiny_bert, "--data", str(data), "--output", str(out), "--epochs", "2"]
    metrics = custom_loop.main([*argv, "--batch-size", "8", "--learning-rate", "1e-3", "--max-length", "32"])
    printed = capsys.readouterr().out
    assert printed.count("eval_accuracy") == 2 and f"run saved to {out}" in printed
    assert not list(tmp_path.glob(".run*"))

    # the trained weights changed
    key = "encoder.layer.0.attention.self.query.weight"
    before, after = load_file(f"{tiny_bert}/model.safetensors"), load_file(str(out / "model.safetensors"))
    assert not torch.equal(before[key], after["bert." + key])

    # a texttune run: it loads and predicts, and `texttune evaluate` scores its validation split again
    predictor = Predictor.load(out, device="cpu")
    assert predictor.label_names == ["negative", "positive"]
    predictions = predictor.predict(["good fun film", "awful boring plot"])
    assert all(p.label in {"negative", "positive"} for p in predictions)
    stored = json.loads((out / "metrics.json").read_text())
    assert stored == json.loads(json.dumps(metrics)) and stored["samples"] == 6
    assert evaluate_run(out, backend="torch").metrics["accuracy"] == stored["accuracy"]
    assert texttune_main(["evaluate", str(out), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 6
    log = json.loads((out / "training_log.json").read_text())
    assert [row["epoch"] for row in log] == [1, 2] and log[-1]["step"] == 2 * 7  # 54 training rows / 8

    # like `texttune train`, it refuses to replace a run without --overwrite
    from texttune.errors import ConfigError

    with pytest.raises(ConfigError, match="is not empty; pass --overwrite"):
        custom_loop.main(argv)
