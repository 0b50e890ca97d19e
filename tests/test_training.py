from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

from texttune import Predictor, evaluate_run, train
from texttune.errors import ConfigError, DataError


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_two_steps_change_weights_and_save_round_trips(tiny_bert, reviews_csv, tmp_path, run_config):
    from transformers import AutoModel

    base = _state(AutoModel.from_pretrained(tiny_bert))
    result = train(run_config(tiny_bert, reviews_csv, tmp_path / "run", batch_size=32))
    assert result.log_history[-1]["step"] == 2  # 45 training rows / batch 32
    trained = result.model.state_dict()
    changed = [k for k in base if not torch.equal(base[k], trained["bert." + k].cpu())]
    assert "encoder.layer.0.attention.self.query.weight" in changed

    texts = ["the film was good fun", "awful boring plot", "really clever and moving story"]
    predictor = Predictor.load(result.output)
    model = result.model.eval().cpu()
    with torch.inference_mode():
        expected = model(**predictor.tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(predictor.logits(texts), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_cpu_is_bf16_where_the_cpu_has_it(native, tmp_path, monkeypatch):
    from texttune import RunConfig, TrainConfig, training

    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: native)
    config = RunConfig(train=TrainConfig(output="x", use_cpu=True))
    args = training.build_training_arguments(config, tmp_path, "single_label", True)
    assert (args.bf16, args.fp16, args.use_cpu) == (native, False, True)
    config.train.precision = "fp32"
    assert not training.build_training_arguments(config, tmp_path, "single_label", True).bf16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_bf16_without_a_gpu_trains_on_the_cpu_without_use_cpu(tmp_path):
    from texttune import RunConfig, TrainConfig
    from texttune.training import build_training_arguments

    config = RunConfig(train=TrainConfig(output="x", precision="bf16"))
    args = build_training_arguments(config, tmp_path, "single_label", True)
    assert args.bf16 and args.use_cpu  # TrainingArguments refuses bf16 on a CPU it was not told of


def test_bf16_autocasts_training_and_saves_fp32_weights(tiny_bert, reviews_csv, tmp_path, run_config):
    from transformers import TrainerCallback

    dtypes = set()

    class RecordDtypes(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            query = model.bert.encoder.layer[0].attention.self.query
            query.register_forward_hook(lambda module, inputs, output: dtypes.add(output.dtype))

    config = run_config(tiny_bert, reviews_csv, tmp_path / "run", precision="bf16")
    result = train(config, callbacks=[RecordDtypes()])
    assert torch.bfloat16 in dtypes
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}
    assert evaluate_run(result.output).metrics["accuracy"] == result.metrics["accuracy"]  # fp32 reload
    # The model handed back no longer autocasts: it computes what the saved run computes.
    texts = ["the film was good fun", "awful boring plot"]
    predictor = Predictor.load(result.output)
    with torch.inference_mode():
        memory = result.model.eval()(**predictor.tokenizer(texts, padding=True, return_tensors="pt"))
    np.testing.assert_allclose(predictor.logits(texts), memory.logits.numpy(), rtol=1e-5, atol=1e-6)


def test_evaluate_reproduces_stored_metrics(tiny_bert, reviews_csv, tmp_path, run_config):
    result = train(run_config(tiny_bert, reviews_csv, tmp_path / "run"))
    stored = json.loads((result.output / "metrics.json").read_text())
    again = evaluate_run(result.output).metrics
    for key, value in again.items():
        assert stored[key] == value, key
    assert (result.output / "evaluations" / "validation" / "confusion_matrix.png").is_file()


def test_refuses_non_empty_output_and_overwrite_replaces(tiny_bert, reviews_csv, tmp_path, run_config):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"output folder .*run is not empty; pass --overwrite"):
        train(run_config(tiny_bert, reviews_csv, out))
    assert (out / "keep.txt").read_text() == "mine"
    train(run_config(tiny_bert, reviews_csv, out, overwrite=True))
    assert not (out / "keep.txt").exists() and (out / "texttune.json").is_file()


def test_bad_data_writes_nothing(tiny_bert, tmp_path, run_config):
    out = tmp_path / "run"
    with pytest.raises(DataError):
        train(run_config(tiny_bert, str(tmp_path / "missing.csv"), out))
    assert not out.exists() and not list(tmp_path.glob(".run*"))


def test_unknown_best_metric(tiny_bert, reviews_csv, tmp_path, run_config):
    with pytest.raises(ConfigError, match=r"--metric-for-best-model 'bleu' is not a metric of this task"):
        train(run_config(tiny_bert, reviews_csv, tmp_path / "run", metric_for_best_model="bleu"))


def test_pairs_multilabel_regression_train(tiny_bert, tmp_path, run_config, make_review):
    rng = random.Random(1)
    rows = []
    for i in range(48):
        a, b = make_review(rng, i % 2 == 0), make_review(rng, i % 3 == 0)
        rows.append(
            {
                "sentence1": a,
                "sentence2": b,
                "label": "same" if (i % 2 == 0) == (i % 3 == 0) else "different",
                "tags": ["pos"] if i % 2 == 0 else (["neg", "long"] if i % 3 else ["neg"]),
                "score": float(i % 5) / 4,
            }
        )
    frame = pd.DataFrame(rows)
    pairs = tmp_path / "pairs.csv"
    frame[["sentence1", "sentence2", "label"]].to_csv(pairs, index=False)
    run = train(run_config(tiny_bert, str(pairs), tmp_path / "pairs")).output
    manifest = json.loads((run / "texttune.json").read_text())
    assert manifest["text_pair_column"] == "sentence2"
    predictor = Predictor.load(run)
    assert predictor.predict(["good fun"], ["awful plot"])[0].label in {"same", "different"}

    multi = tmp_path / "multi.jsonl"
    frame.rename(columns={"sentence1": "text"})[["text", "tags"]].to_json(multi, orient="records", lines=True)
    result = train(run_config(tiny_bert, str(multi), tmp_path / "multi"))
    assert Predictor.load(result.output).task == "multi_label"
    assert {"f1_micro", "subset_accuracy"} <= set(result.metrics)
    assert isinstance(Predictor.load(result.output).predict(["good"])[0].label, list)

    reg = tmp_path / "reg.csv"
    frame[["sentence1", "score"]].rename(columns={"sentence1": "text", "score": "label"}).to_csv(
        reg, index=False
    )
    result = train(run_config(tiny_bert, str(reg), tmp_path / "reg"))
    assert {"mse", "pearson", "spearman"} <= set(result.metrics)
    assert isinstance(Predictor.load(result.output).predict(["good"])[0].label, float)
