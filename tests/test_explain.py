"""Explanations (texttune.explain): completeness, words from word pieces, the command and the server."""

from __future__ import annotations

import json

import pytest

from texttune import Predictor
from texttune.cli import main

TEXTS = ["a gripping clever film", "awful boring plot, dull acting"]


@pytest.fixture(scope="module")
def trained_runs(tiny_bert, tiny_bert_mean, review_frame, tmp_path_factory, run_config):
    """A full run with BERT's own head, a pooled (mean) run, a LoRA run and a frozen-base run on it."""
    from texttune import StrategyConfig, train

    folder = tmp_path_factory.mktemp("explained")
    review_frame(60).to_csv(folder / "reviews.csv", index=False)
    data = str(folder / "reviews.csv")
    runs = {
        "full": run_config(tiny_bert, data, folder / "full", epochs=10.0, learning_rate=5e-3),
        "pooled": run_config(tiny_bert_mean, data, folder / "pooled", epochs=10.0, learning_rate=5e-3),
        "lora": run_config(
            tiny_bert_mean,
            data,
            folder / "lora",
            epochs=10.0,
            learning_rate=5e-3,
            strategy=StrategyConfig(strategy="lora"),
        ),
        "frozen": run_config(
            tiny_bert_mean,
            data,
            folder / "frozen",
            epochs=50.0,
            learning_rate=1e-2,
            strategy=StrategyConfig(strategy="freeze"),
        ),
    }
    return {name: str(train(config).output) for name, config in runs.items()}


@pytest.mark.parametrize("kind", ["full", "pooled", "lora", "frozen"])
def test_attributions_add_up_to_the_logit_difference_from_the_baseline(trained_runs, kind):
    predictor = Predictor.load(trained_runs[kind], backend="torch")
    for explanation, prediction in zip(predictor.explain(TEXTS, steps=300), predictor.predict(TEXTS)):
        assert explanation.label == prediction.label and explanation.score == pytest.approx(prediction.score)
        total = sum(attribution for _, attribution in explanation.words)
        difference = explanation.logit - explanation.baseline
        assert abs(difference) > 1e-3  # a trained head: there is something to explain
        assert total == pytest.approx(difference, rel=0.02, abs=1e-4)  # completeness
        assert total - difference == pytest.approx(explanation.delta, abs=1e-5)  # captum's own measure


def test_word_pieces_are_summed_into_the_words_of_the_text(trained_runs):
    predictor = Predictor.load(trained_runs["full"], backend="torch")
    [explanation] = predictor.explain("awful boring plot, dull acting")
    assert [word for word, _ in explanation.words] == ["awful", "boring", "plot", ",", "dull", "acting"]
    other_class = next(name for name in predictor.label_names if name != explanation.label)
    [other] = predictor.explain("awful boring plot, dull acting", label=other_class)
    assert other.label == other_class and other.logit != explanation.logit
    assert sum(a for _, a in other.words) == pytest.approx(other.logit - other.baseline, rel=0.05, abs=1e-4)


def test_explain_command_prints_writes_html_and_refuses_bad_input(trained_runs, tmp_path, capsys):
    run = trained_runs["pooled"]
    assert main(["explain", run, *TEXTS, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [len(line["words"]) for line in lines] == [4, 6] and {"logit", "baseline", "delta"} <= set(
        lines[0]
    )
    page = tmp_path / "why.html"
    assert main(["explain", run, TEXTS[0], "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(("negative (", "positive (")) and "gripping(" in out
    assert "<span title=" in page.read_text(encoding="utf-8")
    assert main(["explain", run, TEXTS[0], "--html", str(page)]) == 2
    assert f"{page} exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert main(["explain", run, TEXTS[0], "--label", "neutral"]) == 2
    err = capsys.readouterr().err
    assert "--label 'neutral' is not a class of this run; choose one of negative, positive" in err
    assert err.count("\n") == 1


def test_server_explains_within_its_limit(trained_runs):
    pytest.importorskip("fastapi")
    from test_serve import request
    from texttune.serve import ServeConfig, create_app, start_in_thread

    predictor = Predictor.load(trained_runs["full"], backend="torch")
    thread = start_in_thread(create_app(predictor, ServeConfig(max_explain_texts=2)), "127.0.0.1", 0)
    try:
        status, payload = request(thread.port, "POST", "/explain", {"texts": TEXTS})
        too_many = request(thread.port, "POST", "/explain", {"texts": TEXTS * 2})
        unknown = request(thread.port, "POST", "/explain", {"texts": TEXTS[:1], "label": "neutral"})
    finally:
        thread.stop()
    assert status == 200
    expected = predictor.explain(TEXTS)
    assert [e["words"][0]["word"] for e in payload["explanations"]] == ["a", "awful"]
    assert [e["label"] for e in payload["explanations"]] == [e.label for e in expected]
    assert too_many[0] == 413 and "4 texts exceed the limit of 2 per request" in too_many[1]["error"]
    assert unknown[0] == 422 and "label 'neutral' is not a class" in unknown[1]["error"]
