from __future__ import annotations

import pandas as pd

from texttune import Predictor


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
