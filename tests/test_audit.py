"""`texttune audit`: label errors, duplicates, conflicts, leaks and outliers on a tiny model; --fix copies."""

from __future__ import annotations

import hashlib
import json
import random
import re

import numpy as np
import pandas as pd
import pytest

from texttune.cli import main

FLIPPED = [3, 14, 27, 40, 61]


def _sentiment_rows(n: int, seed: int, review_words) -> list[dict[str, str]]:
    """Reviews of sentiment words only: the tiny random model's mean-pooled embeddings separate them."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.choices(review_words.positive if positive else review_words.negative, k=rng.randint(3, 6))
        rows.append({"text": " ".join(words), "label": "pos" if positive else "neg", "id": f"r{i}"})
    return rows


@pytest.fixture()
def noisy(tmp_path, review_words):
    """A training file with known problems, and a validation file that shares one of its texts."""
    rows = _sentiment_rows(100, 0, review_words)
    for i in FLIPPED:
        rows[i]["label"] = "neg" if rows[i]["label"] == "pos" else "pos"
    rows[80]["text"] = "  " + rows[2]["text"].upper() + " "  # row 80 repeats row 2 (case, spaces)
    rows[81]["text"], rows[81]["label"] = rows[4]["text"], "neg"  # repeats row 4 (pos) labelled neg
    rows[82]["text"] = ""  # empty: training skips it
    rows[83]["text"] = " ".join(["good"] * 200)  # longer than the model reads
    rows[84]["text"] = "good"  # very short
    train = tmp_path / "train.csv"
    pd.DataFrame(rows).to_csv(train, index=False)
    validation = _sentiment_rows(20, 1, review_words)
    validation[7] = {"text": rows[10]["text"], "label": rows[10]["label"], "id": "v7"}  # a leak
    validation_file = tmp_path / "validation.csv"
    pd.DataFrame(validation).to_csv(validation_file, index=False)
    return train, validation_file


def _audit(tiny_bert_mean, train, out, *extra) -> int:
    return main(
        ["audit", "--data", str(train), "--model", tiny_bert_mean, "--output", str(out), *extra, "--quiet"]
    )


def test_audit_finds_each_kind_of_problem(tiny_bert_mean, noisy, tmp_path, capsys):
    train, validation = noisy
    out = tmp_path / "audit"
    # The tiny model's embeddings of these few-word texts are all alike: exact repeats only here.
    argv = ["--validation", str(validation), "--folds", "4", "--near-duplicate", "1"]
    assert _audit(tiny_bert_mean, train, out, *argv) == 0
    summary_text = capsys.readouterr().out
    issues = pd.read_csv(out / "issues.csv", keep_default_na=False)
    assert list(issues.columns) == [
        "row", "issue", "score", "text", "given_label", "suggested_label", "detail"
    ]  # fmt: skip
    by_kind = {kind: part for kind, part in issues.groupby("issue", sort=False)}
    assert list(by_kind) == ["label", "conflict", "leak", "duplicate", "outlier"]  # the order of the file
    for part in by_kind.values():
        assert part["score"].is_monotonic_decreasing  # worst first within a kind

    labels = by_kind["label"]
    assert set(FLIPPED) <= set(labels["row"].head(len(FLIPPED) + 2))  # the flipped rows lead the list
    flipped = labels.set_index("row").loc[FLIPPED]
    assert (flipped["suggested_label"] != flipped["given_label"]).all()

    duplicates = by_kind["duplicate"].set_index("row")
    assert duplicates.loc[80, "detail"] == "same text as row 2" and duplicates.loc[80, "score"] == 1.0
    assert set(by_kind["conflict"]["row"]) == {4, 81}
    assert "labelled 'pos'" in by_kind["conflict"].set_index("row").loc[81, "detail"]
    leak = by_kind["leak"].set_index("row")
    assert leak.loc[10, "detail"] == "same text as validation row 7"
    outliers = by_kind["outlier"].set_index("row")["detail"]
    assert outliers[82] == "empty or missing text: training skips this row"
    assert outliers[83].startswith("200 tokens, truncated to 64")
    assert outliers[84] == "very short: 1 tokens"

    summary = json.loads((out / "audit.json").read_text())
    assert summary["counts"] == {kind: len(part) for kind, part in by_kind.items()}
    assert (
        summary["rows"] == 100
        and summary["audited_rows"] == 99
        and summary["compared_with"] == ["validation"]
    )
    assert summary["class_balance"]["counts"] == {"neg": 49, "pos": 50}
    assert summary["worst"]["duplicate"][0]["row"] in duplicates.index
    page = (out / "audit.html").read_text()
    assert all(f"<h2>{kind} (" in page for kind in by_kind)
    assert re.search(rf"\n  label +{summary['counts']['label']} ", summary_text)
    assert "out-of-fold accuracy" in summary_text


def test_near_duplicates_and_leaks_by_embedding_cosine():
    from texttune.audit import _duplicate_findings, _leak_findings

    rows = pd.DataFrame({"text": ["a b", "c d", "e f", "g h"], "row": [10, 11, 12, 13]})
    vectors = np.array([[1.0, 0.0, 0.0], [0.99, 0.14, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    features = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    duplicates, conflicts = _duplicate_findings(rows, features, ["x", "y", "x", "x"], 0.97)
    assert [(d["index"], d["detail"]) for d in duplicates] == [(1, "cosine 0.990 to row 10")]
    assert sorted(c["index"] for c in conflicts) == [0, 1]
    assert _duplicate_findings(rows, features, ["x"] * 4, 1.0) == ([], [])  # 1: exact repeats only
    test = pd.DataFrame({"text": ["z", "e f"], "row": [0, 1]})
    leaks = _leak_findings(rows, {"train": features, "test": features[[3, 0]]}, {"test": test}, 0.97)
    details = {f["index"]: f["detail"] for f in leaks}
    assert details == {
        0: "cosine 1.000 to test row 1",
        1: "cosine 0.990 to test row 1",
        2: "same text as test row 1",
        3: "cosine 1.000 to test row 0",
    }


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fix", ["drop", "relabel"])
def test_fix_writes_a_cleaned_copy_and_leaves_the_input(tiny_bert_mean, noisy, tmp_path, fix, capsys):
    train, validation = noisy
    before = _digest(train)
    clean = tmp_path / f"clean-{fix}.csv"
    argv = ["--validation", str(validation), "--folds", "4", "--near-duplicate", "1"]
    argv += ["--fix", fix, "--output-data", str(clean)]
    assert _audit(tiny_bert_mean, train, tmp_path / "audit", *argv) == 0
    assert _digest(train) == before
    source = pd.read_csv(train, keep_default_na=False)
    cleaned = pd.read_csv(clean, keep_default_na=False)
    issues = pd.read_csv(tmp_path / "audit" / "issues.csv", keep_default_na=False)
    assert list(cleaned.columns) == ["text", "label", "id"]  # every column of the input
    kept = set(cleaned["id"])
    assert "r80" not in kept and "r2" in kept  # the repeat goes, the first stays
    assert "r10" not in kept  # the row leaking into validation
    assert "r82" in kept  # rows training skips are left alone
    label_rows = set(issues.loc[issues["issue"] == "label", "row"])
    if fix == "drop":
        assert not any(f"r{i}" in kept for i in FLIPPED)
        repeats = set(issues.loc[issues["issue"].isin(["duplicate", "leak"]), "row"])
        assert len(cleaned) == len(source) - len(label_rows | repeats | _odd_conflicts(issues))
    else:
        relabelled = cleaned.set_index("id").loc[[f"r{i}" for i in FLIPPED], "label"]
        assert (relabelled.to_numpy() != source.loc[FLIPPED, "label"].to_numpy()).all()
    fix_summary = json.loads((tmp_path / "audit" / "audit.json").read_text())["fix"]
    assert fix_summary["rows"] == len(cleaned) and fix_summary["output_data"] == str(clean)
    assert f"wrote {clean}" in capsys.readouterr().out


def _odd_conflicts(issues: pd.DataFrame) -> set[int]:
    conflicts = issues[issues["issue"] == "conflict"]
    return set(conflicts.loc[conflicts["given_label"] != conflicts["suggested_label"], "row"])


def test_multi_label_data_get_label_findings(tiny_bert_mean, tmp_path, review_words):
    rows = _sentiment_rows(60, 2, review_words)
    for row in rows:
        row["label"] = row["label"] + ("|long" if len(row["text"].split()) > 4 else "")
    rows[5]["label"] = "neg" if rows[5]["label"].startswith("pos") else "pos"
    data = tmp_path / "multi.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    out = tmp_path / "audit"
    assert _audit(tiny_bert_mean, data, out, "--label-delimiter", "|", "--folds", "3") == 0
    summary = json.loads((out / "audit.json").read_text())
    assert summary["task"] == "multi_label" and set(summary["class_balance"]["counts"]) == {
        "long",
        "neg",
        "pos",
    }
    issues = pd.read_csv(out / "issues.csv", keep_default_na=False)
    labels = issues[issues["issue"] == "label"]
    assert 5 in set(labels["row"]) and "|" not in labels.set_index("row").loc[5, "given_label"]


def test_full_strategy_fine_tunes_a_run_per_fold(tiny_bert_mean, noisy, tmp_path, monkeypatch):
    import texttune.training as training

    trained = []
    real_train = training.train
    monkeypatch.setattr(training, "train", lambda config: trained.append(config) or real_train(config))
    train, _ = noisy
    out = tmp_path / "audit"
    assert _audit(tiny_bert_mean, train, out, "--strategy", "full", "--folds", "2") == 0
    assert len(trained) == 2 and all(c.strategy.strategy == "full" for c in trained)
    assert json.loads((out / "audit.json").read_text())["strategy"] == "full"


def test_train_with_audit_summarises_it_in_the_report(tiny_bert_mean, noisy, tmp_path):
    train, _ = noisy
    run = tmp_path / "run"
    argv = ["train", "--data", str(train), "--model", tiny_bert_mean, "--output", str(run), "--audit"]
    assert main([*argv, "--strategy", "full", "--epochs", "1", "--quiet"]) == 0
    summary = json.loads((run / "audit" / "audit.json").read_text())
    assert (run / "audit" / "issues.csv").is_file() and summary["counts"]["duplicate"] >= 1
    report = (run / "report.html").read_text()
    assert "Data audit" in report and "audit/audit.html" in report
