"""Error analysis (texttune.analysis): in the run report, and in `texttune evaluate --report`."""

from __future__ import annotations

import json

import numpy as np

from texttune.analysis import error_analysis


def test_confident_mistakes_confused_pairs_and_accuracy_by_length():
    texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "ggggggg", "hhhhhhhh"]
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    probabilities = np.array(
        [
            [0.9, 0.05, 0.05],  # right
            [0.2, 0.7, 0.1],  # 0 -> 1 at 0.7
            [0.1, 0.8, 0.1],  # right
            [0.6, 0.3, 0.1],  # 1 -> 0 at 0.6
            [0.1, 0.1, 0.8],  # right
            [0.05, 0.9, 0.05],  # 2 -> 1 at 0.9: the most confident mistake
            [0.3, 0.65, 0.05],  # 0 -> 1 at 0.65
            [0.1, 0.8, 0.1],  # right
        ]
    )
    found = error_analysis(texts, labels, probabilities, ["neg", "neu", "pos"])
    mistakes = found["confident_mistakes"]
    assert [m["row"] for m in mistakes] == [5, 1, 6, 3]
    assert mistakes[0] == {"row": 5, "text": "ffffff", "label": "pos", "predicted": "neu", "confidence": 0.9}
    pairs = found["confused_pairs"]
    assert pairs[0] == {"label": "neg", "predicted": "neu", "count": 2, "share_of_label": round(2 / 3, 4)}
    assert [(p["label"], p["predicted"]) for p in pairs[1:]] == [("neu", "neg"), ("pos", "neu")]
    assert found["accuracy_by_length"] == [  # quartiles of the characters per text
        {"characters": "1-2", "rows": 2, "accuracy": 0.5},
        {"characters": "3-3", "rows": 1, "accuracy": 1.0},
        {"characters": "4-5", "rows": 2, "accuracy": 0.5},
        {"characters": "6-8", "rows": 3, "accuracy": 0.3333},
    ]


def test_a_run_with_a_test_split_reports_its_errors(tiny_bert, review_frame, tmp_path, run_config):
    from texttune import train

    review_frame(40, seed=0).to_csv(tmp_path / "train.csv", index=False)
    review_frame(30, seed=1).to_csv(tmp_path / "test.csv", index=False)
    config = run_config(tiny_bert, str(tmp_path / "train.csv"), tmp_path / "run")
    config.data.test = str(tmp_path / "test.csv")
    run = train(config).output
    analysis = json.loads((run / "error_analysis.json").read_text())
    assert analysis["split"] == "test" and sum(b["rows"] for b in analysis["accuracy_by_length"]) == 30
    assert "analysis" not in json.loads((run / "test_metrics.json").read_text())
    assert (run / "test_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "Error analysis (test split)" in page and "Confusion matrix (test;" in page


def test_evaluate_report_writes_a_page_with_the_error_analysis(untrained_run, reviews_csv, tmp_path, capsys):
    from texttune.cli import main

    report = tmp_path / "report"
    argv = ["evaluate", untrained_run, "--data", reviews_csv, "--output", str(tmp_path / "e")]
    assert main([*argv, "--report", str(report)]) == 0
    assert f"report: {report / 'report.html'}" in capsys.readouterr().out
    page = (report / "report.html").read_text(encoding="utf-8")
    assert "Most confident mistakes" in page and "Accuracy by text length" in page
    assert page.count("data:image/png;base64,") == 3  # confusion matrix, reliability, accuracy vs coverage
    mistakes = json.loads((tmp_path / "e" / "error_analysis.json").read_text())["confident_mistakes"]
    assert 0 < len(mistakes) <= 20
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)
