from __future__ import annotations

import re

import pytest

from texttune import train
from texttune.cli import main


def test_run_writes_self_contained_report_plots_and_model_card(tiny_bert, reviews_csv, tmp_path, run_config):
    pytest.importorskip("tensorboard")
    run = train(
        run_config(
            tiny_bert, reviews_csv, tmp_path / "run", epochs=2.0, logging_steps=1, report_to="tensorboard"
        )
    ).output
    plots = ("learning_curves.png", "confusion_matrix.png", "per_class_f1.png", "label_distribution.png")
    for name in (*plots, "reliability.png", "risk_coverage.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    page = (run / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)""", page)
    assert len(sources) == 6 and all(s.startswith("data:image/png;base64,") for s in sources)  # offline
    assert "<h2>Confidence and abstention</h2>" in page and "calibrated by temperature scaling" in page
    assert "<script" not in page and "http" not in page.split("<h2>Configuration")[0]
    for text in (
        "Learning curves",
        "Confusion matrix",
        "F1 per class",
        "Label distribution",
        "Configuration",
    ):
        assert text in page
    assert "<td>learning_rate</td><td>0.001</td>" in page and "<td>positive</td>" in page

    card = (run / "README.md").read_text(encoding="utf-8")
    for heading in (
        "## Data",
        "## Labels",
        "## Hyperparameters",
        "## Metrics",
        "## Intended use",
        "## Limits",
    ):
        assert heading in card
    assert "| negative | 22 |" in card and "| epochs | 2.0 |" in card  # 45 training rows: 22 / 23

    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_no_report_and_tracker_errors(tiny_bert, reviews_csv, tmp_path, monkeypatch, capsys, run_config):
    run = train(
        run_config(tiny_bert, reviews_csv, tmp_path / "run", epochs=1.0, logging_steps=1, report=False)
    ).output
    assert not (run / "report.html").exists() and not (run / "README.md").exists()

    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "tensorboard":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    argv = ["train", "--data", reviews_csv, "--output", str(tmp_path / "o"), "--report-to", "tensorboard"]
    assert main(argv) == 2
    assert "--report-to tensorboard needs the tensorboard package: pip install" in capsys.readouterr().err


def test_a_run_that_predicts_one_class_says_so_everywhere(tiny_bert, tmp_path, run_config, caplog):
    import json

    import pandas as pd

    data = tmp_path / "same.csv"  # identical texts: any model gives every row the same prediction
    pd.DataFrame({"text": ["the same words"] * 40, "label": ["negative", "positive"] * 20}).to_csv(
        data, index=False
    )
    with caplog.at_level("WARNING", logger="texttune"):
        run = train(run_config(tiny_bert, str(data), tmp_path / "run")).output
    assert json.loads((run / "metrics.json").read_text())["warning"] == "predicts one class"
    assert "the model predicts one class for every text" in caplog.text
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "class='warning'>Warning (validation split): the model predicts one class" in page
