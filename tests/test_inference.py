"""Predictor: texts, pairs and files in, label names and probabilities out, always in input order.

Most tests here build the predictor in memory from the tiny BERT with a fresh (random) head and a
hand-written manifest: what is checked is the Predictor's own work, not what a model learned.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from texttune import Predictor, train
from texttune.errors import DataError
from texttune.inference import OUTPUT_FORMATS

#: Not sorted by length, so that sorting by length inside the predictor reorders them.
TEXTS = [
    "the film was good fun",
    "awful",
    "really clever and moving story with a plot that was quite brilliant",
    "dull plot",
    "a very very boring and tedious film and the acting was weak",
]
PAIRS = ["great acting", "the plot was messy and the film was long", "dull", "lovely", "a story"]
#: The columns ``predict_file`` writes for a labelled single-label file of reviews.
SENTIMENT_COLUMNS = ["text", "label", "predicted_label", "score", "prob_negative", "prob_positive"]


def _predictor(tiny_bert: str, manifest, num_labels: int, **kwargs) -> Predictor:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=num_labels)
    return Predictor(model, AutoTokenizer.from_pretrained(tiny_bert), manifest, **kwargs)


@pytest.fixture(scope="module")
def sentiment(tiny_bert, sentiment_manifest) -> Predictor:
    """A two-class predictor that runs two texts per forward pass."""
    return _predictor(tiny_bert, sentiment_manifest(tiny_bert), 2, batch_size=2)


@pytest.fixture(scope="module")
def multi_label(tiny_bert, sentiment_manifest) -> Predictor:
    manifest = dataclasses.replace(
        sentiment_manifest(tiny_bert),
        task="multi_label",
        label_names=["long", "neg", "pos"],
        thresholds=[0.0, 1.0, 0.0],  # always, never (sigmoid stays below 1 here), always
    )
    return _predictor(tiny_bert, manifest, 3)


@pytest.fixture(scope="module")
def regression(tiny_bert, sentiment_manifest) -> Predictor:
    manifest = dataclasses.replace(sentiment_manifest(tiny_bert), task="regression", label_names=[])
    return _predictor(tiny_bert, manifest, 1)


def _model_logits(predictor: Predictor, texts, pairs=None) -> np.ndarray:
    """The model's own outputs on one padded batch, for comparison."""
    batch = predictor.tokenizer(
        list(texts), list(pairs) if pairs else None, padding=True, truncation=True, max_length=32,
        return_tensors="pt",
    )  # fmt: skip
    with torch.inference_mode():
        return predictor.model(**batch).logits.numpy()


def test_predict_texts_gives_label_names_and_probabilities_that_sum_to_one(sentiment):
    predictions = sentiment.predict(TEXTS)
    assert len(predictions) == len(TEXTS)
    probabilities = sentiment.probabilities(sentiment.logits(TEXTS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    for prediction, row in zip(predictions, probabilities):
        assert set(prediction.probabilities) == {"negative", "positive"}
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert prediction.label == ["negative", "positive"][int(row.argmax())]
        assert prediction.score == pytest.approx(float(row.max()))
        assert prediction.to_dict() == {
            "label": prediction.label,
            "score": prediction.score,
            "probabilities": prediction.probabilities,
        }
    np.testing.assert_allclose(sentiment.logits(TEXTS), _model_logits(sentiment, TEXTS), rtol=1e-5, atol=1e-5)
    assert [p.label for p in sentiment.predict(TEXTS[0])] == [predictions[0].label]  # one string: one text


def test_predict_pairs_encodes_both_texts(sentiment):
    logits = sentiment.logits(TEXTS, PAIRS)
    np.testing.assert_allclose(logits, _model_logits(sentiment, TEXTS, PAIRS), rtol=1e-5, atol=1e-5)
    assert not np.allclose(logits, sentiment.logits(TEXTS))  # the pair text reaches the model
    single = sentiment.predict(TEXTS[0], PAIRS[0])
    assert len(single) == 1 and single[0].label == sentiment.predict(TEXTS, PAIRS)[0].label
    with pytest.raises(DataError, match="got 2 texts but 1 pair texts; give one pair text per text"):
        sentiment.predict(TEXTS[:2], PAIRS[:1])


def test_batches_are_sorted_by_length_and_outputs_come_back_in_input_order(sentiment):
    widths: list[int] = []
    hook = sentiment.model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        together = sentiment.logits(TEXTS)
    finally:
        hook.remove()
    assert len(widths) == 3 and widths == sorted(widths)  # 5 texts, 2 per batch, shortest first
    one_at_a_time = np.concatenate([sentiment.logits([text]) for text in TEXTS])
    np.testing.assert_allclose(together, one_at_a_time, rtol=1e-5, atol=1e-5)
    assert [p.label for p in sentiment.predict(TEXTS)] == [sentiment.predict(t)[0].label for t in TEXTS]


def test_logits_of_no_texts_has_one_column_per_output(sentiment, multi_label, regression):
    assert sentiment.logits([]).shape == (0, 2)
    assert multi_label.logits([]).shape == (0, 3)
    assert regression.logits([]).shape == (0, 1)
    assert sentiment.predict([]) == []


def test_multi_label_uses_the_thresholds_of_the_manifest(multi_label):
    np.testing.assert_array_equal(multi_label.thresholds, [0.0, 1.0, 0.0])
    probabilities = multi_label.probabilities(multi_label.logits(TEXTS))
    assert ((probabilities > 0) & (probabilities < 1)).all()
    for prediction, row in zip(multi_label.predict(TEXTS), probabilities):
        assert prediction.label == ["long", "pos"]
        assert prediction.score == pytest.approx(min(row[0], row[2]))
        assert set(prediction.probabilities) == {"long", "neg", "pos"}

    # without tuned thresholds, the single threshold applies to every label
    manifest = dataclasses.replace(multi_label.manifest, thresholds=None, threshold=0.0)
    untuned = Predictor(multi_label.model, multi_label.tokenizer, manifest)
    np.testing.assert_array_equal(untuned.thresholds, [0.0, 0.0, 0.0])
    assert untuned.predict(TEXTS[0])[0].label == ["long", "neg", "pos"]


def test_regression_predicts_the_value(regression):
    values = regression.logits(TEXTS)[:, 0]
    predictions = regression.predict(TEXTS)
    assert [p.label for p in predictions] == pytest.approx(values.tolist())
    assert all(
        isinstance(p.label, float) and p.score == p.label and p.probabilities == {} for p in predictions
    )
    np.testing.assert_allclose(values, _model_logits(regression, TEXTS)[:, 0], rtol=1e-5, atol=1e-5)


def _read(path) -> pd.DataFrame:
    suffix = path.suffix
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")


@pytest.mark.parametrize("suffix", OUTPUT_FORMATS)
def test_predict_file_writes_every_output_format(suffix, sentiment, review_frame, tmp_path):
    source = tmp_path / "reviews.csv"
    frame = review_frame(30)
    frame.to_csv(source, index=False)
    out = tmp_path / f"preds{suffix}"
    assert sentiment.predict_file(str(source), out, chunk_size=7) == 30
    written = _read(out)
    assert list(written.columns) == SENTIMENT_COLUMNS
    assert written["text"].tolist() == frame["text"].tolist()
    expected = sentiment.predict(frame["text"].tolist())
    assert written["predicted_label"].tolist() == [p.label for p in expected]
    np.testing.assert_allclose(written["score"], [p.score for p in expected], atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["reviews.csv", out.name])  # no temp file


def test_predict_file_columns_for_multi_label_and_regression(multi_label, regression, tmp_path):
    source = tmp_path / "texts.csv"
    pd.DataFrame({"text": TEXTS}).to_csv(source, index=False)
    multi_label.predict_file(str(source), tmp_path / "multi.csv")
    written = pd.read_csv(tmp_path / "multi.csv")
    assert list(written.columns) == ["text", "predicted_labels", "prob_long", "prob_neg", "prob_pos"]
    assert written["predicted_labels"].tolist() == ["long|pos"] * len(TEXTS)
    regression.predict_file(str(source), tmp_path / "values.csv")
    written = pd.read_csv(tmp_path / "values.csv")
    assert list(written.columns) == ["text", "predicted_value"]
    np.testing.assert_allclose(written["predicted_value"], regression.logits(TEXTS)[:, 0], rtol=1e-5)


def test_predict_file_refuses_an_unknown_output_suffix(sentiment, tmp_path):
    source = tmp_path / "texts.csv"
    pd.DataFrame({"text": TEXTS}).to_csv(source, index=False)
    with pytest.raises(
        DataError, match=r"--output .*preds.txt must end in one of .csv, .tsv, .jsonl, .parquet"
    ):
        sentiment.predict_file(str(source), tmp_path / "preds.txt")
    assert [p.name for p in tmp_path.iterdir()] == ["texts.csv"]


def test_predict_file_streams_with_columns(tiny_bert, reviews_csv, tmp_path, run_config):
    run = train(run_config(tiny_bert, reviews_csv, tmp_path / "run")).output
    predictor = Predictor.load(run, batch_size=8)
    out = tmp_path / "preds.csv"
    rows = predictor.predict_file(reviews_csv, out, chunk_size=7)
    frame = pd.read_csv(out)
    assert rows == len(frame) == 60
    assert list(frame.columns) == SENTIMENT_COLUMNS
    expected = [p.label for p in predictor.predict(pd.read_csv(reviews_csv)["text"].tolist())]
    assert frame["predicted_label"].tolist() == expected
    np.testing.assert_allclose(frame["prob_negative"] + frame["prob_positive"], 1.0, atol=1e-5)


def test_predict_file_streams_in_bounded_chunks(
    tiny_bert, tmp_path, monkeypatch, review_frame, sentiment_manifest
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    manifest = sentiment_manifest(tiny_bert)
    predictor = Predictor(model, AutoTokenizer.from_pretrained(tiny_bert), manifest, batch_size=64)
    frame = review_frame(1200)
    frame.insert(0, "id", range(len(frame)))
    source = tmp_path / "big.csv"
    frame.to_csv(source, index=False)

    seen: list[int] = []
    logits = predictor.logits

    def spy(texts, pairs=None):
        seen.append(len(texts))
        return logits(texts, pairs)

    monkeypatch.setattr(predictor, "logits", spy)
    rows = predictor.predict_file(str(source), tmp_path / "out.csv", chunk_size=300)
    assert rows == 1200
    assert seen == [300] * 4  # never more than one chunk in memory
    written = pd.read_csv(tmp_path / "out.csv")
    assert written["id"].tolist() == list(range(1200))
    assert set(written["predicted_label"]) <= {"negative", "positive"}
