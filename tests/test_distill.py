"""Distillation (texttune.distill): static students are runs that follow their teacher, every task, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from texttune import Predictor
from texttune.cli import main
from texttune.config import DistillConfig
from texttune.distill import augmented_texts, distill
from texttune.errors import ConfigError

#: Texts any sentiment model that learnt the reviews separates.
CLEAR = [
    "great brilliant superb",
    "lovely fun clever",
    "moving great good",
    "awful terrible boring",
    "dull weak messy",
    "tedious bad awful",
]


def _labels(run, texts):
    return [p.label for p in Predictor.load(run).predict(texts)]


@pytest.fixture(scope="module")
def teacher(tiny_bert, review_frame, tmp_path_factory, run_config):
    """A full fine-tuned sentiment run on tiny BERT (the reviews are in ``reviews.csv`` beside it)."""
    from texttune import train

    folder = tmp_path_factory.mktemp("teacher")
    review_frame(80).to_csv(folder / "reviews.csv", index=False)
    config = run_config(
        tiny_bert, str(folder / "reviews.csv"), folder / "teacher", epochs=10.0, learning_rate=5e-3
    )
    return str(train(config).output)


@pytest.fixture(scope="module")
def student(teacher, tmp_path_factory):
    """A static student of ``teacher`` (pure soft labels, model2vec's vectors kept) and the :class:`DistillResult`."""
    output = tmp_path_factory.mktemp("student") / "student"
    return distill(teacher, DistillConfig(output=str(output), alpha=0.0, epochs=100, train_vectors=False))


def test_static_student_is_a_run_that_predicts_like_its_teacher(teacher, student):
    predictor = Predictor.load(student.output)
    assert predictor.label_names == ["negative", "positive"]
    assert _labels(student.output, CLEAR) == _labels(teacher, CLEAR) == ["positive"] * 3 + ["negative"] * 3
    manifest = predictor.manifest
    assert manifest.strategy == "freeze" and manifest.distillation["student"] == "static"
    assert manifest.distillation["teacher"].endswith("teacher") and manifest.distillation["alpha"] == 0.0
    files = {p.name for p in student.output.iterdir()}
    assert {"model.safetensors", "head.safetensors", "head.json", "metrics.json", "report.html"} <= files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pkl", ".joblib"))]
    config = json.loads((student.output / "config.json").read_text())
    assert config["model_type"] == "texttune_static" and config["id2label"] == {
        "0": "negative",
        "1": "positive",
    }
    assert config["conv_channels"] == manifest.distillation["conv_channels"] == 256  # the default
    head = json.loads((student.output / "head.json").read_text())
    assert head["head"] == "mlp" and head["hidden_size"] == manifest.distillation["head_hidden"] == 256
    assert manifest.distillation["ema_decay"] == 0.99
    assert student.metrics["accuracy"] >= 0.8 and student.teacher_metrics["accuracy"] >= 0.9
    assert student.train_rows == 60 and student.unlabelled_rows == 0


def test_student_logits_after_save_and_load_equal_those_before(student):
    import torch

    predictor = Predictor.load(student.output)
    batch = predictor.tokenizer(CLEAR, padding=True, return_tensors="pt")
    with torch.no_grad():
        before = student.model(**batch).logits.numpy()
    np.testing.assert_allclose(predictor.logits(CLEAR), before, atol=1e-5)


def _vectors_and_model2vecs_of(encoder, student_folder):
    """The student's text vectors of CLEAR, and model2vec's (StaticModel.encode) of ``encoder`` over the
    teacher's tokenizer."""
    import torch
    from model2vec.distill import distill_from_model

    predictor = Predictor.load(student_folder)
    static = distill_from_model(encoder, predictor.tokenizer, quantize_to="float32")
    batch = predictor.tokenizer(CLEAR, padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = predictor.model.pooled(**batch).numpy()  # the mean, then the filters' maxima
    return pooled[:, : predictor.model.base.config.hidden_size], static.encode(CLEAR)


def _assert_vectors_are_model2vecs_of(encoder, student_folder) -> None:
    np.testing.assert_allclose(*_vectors_and_model2vecs_of(encoder, student_folder), atol=1e-5)


def test_no_contextual_vectors_gives_model2vecs_of_the_fine_tuned_encoder(teacher, tmp_path):
    from texttune.heads import load_base_model

    options = DistillConfig(
        output=str(tmp_path / "s"), epochs=1, train_vectors=False, contextual_vectors=False
    )
    manifest = Predictor.load(distill(teacher, options).output).manifest
    assert manifest.distillation["static_vectors"] == "teacher"
    assert manifest.distillation["contextual_vectors"] is False
    _assert_vectors_are_model2vecs_of(load_base_model(teacher), tmp_path / "s")  # the run's own encoder


def test_contextual_sums_add_the_encoders_outputs_at_every_place_of_a_token(tiny_bert):
    """Batched, padded and sorted by length, the sums are those of one unpadded pass per text."""
    import torch
    from transformers import AutoTokenizer

    from texttune.distill import contextual_sums
    from texttune.heads import load_base_model

    encoder, tokenizer = load_base_model(tiny_bert).eval(), AutoTokenizer.from_pretrained(tiny_bert)
    contexts = [tokenizer(text)["input_ids"] for text in ["great fun", *CLEAR, "great great dull"]]
    sums, counts = contextual_sums(encoder, tokenizer, contexts, len(tokenizer), batch_size=3)
    expected, places = np.zeros_like(sums), np.zeros(len(tokenizer))
    with torch.no_grad():
        for ids in contexts:
            hidden = encoder(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
            for token, vector in zip(ids, hidden):
                expected[token] += vector
                places[token] += 1
    great = tokenizer.convert_tokens_to_ids("great")
    assert counts[great] == 5 and counts[tokenizer.cls_token_id] == len(contexts)
    np.testing.assert_array_equal(counts, places)
    np.testing.assert_allclose(sums, expected, atol=1e-4)


def test_token_vectors_are_the_encoders_average_outputs_in_the_training_texts(teacher, student):
    """Seen tokens: their mean output over the training texts and model2vec's vector; unseen tokens:
    model2vec's. The PCA (no reduction at this width) keeps the distances between them."""
    from model2vec.distill import distill_from_model

    from texttune.config import RunConfig
    from texttune.distill import contextual_sums, teacher_data
    from texttune.heads import load_base_model

    predictor = Predictor.load(student.output)
    tokenizer, manifest = predictor.tokenizer, predictor.manifest
    assert manifest.distillation["contextual_vectors"] is True
    texts = teacher_data(Path(teacher), RunConfig.from_dict(manifest.config)).splits["train"]["text"]
    encoder = load_base_model(teacher)
    contexts = [
        tokenizer(text, truncation=True, max_length=manifest.max_length)["input_ids"] for text in texts
    ]
    sums, counts = contextual_sums(encoder, tokenizer, contexts, len(tokenizer))
    static = distill_from_model(
        encoder, tokenizer, pca_dims=None, sif_coefficient=None, quantize_to="float32"
    )
    tokens = ["great", "awful", "fox"]  # "fox" is in the vocabulary, in no review
    ids = tokenizer.convert_tokens_to_ids(tokens)
    alone = np.stack([static.embedding[static.tokenizer.get_vocab()[token]] for token in tokens])
    expected = (sums[ids] + alone) / (counts[ids, None] + 1)
    assert counts[ids[0]] > 0 and counts[ids[1]] > 0 and counts[ids[2]] == 0
    vectors = predictor.model.base.embeddings.weight.detach().numpy()[ids]  # --no-train-vectors: as built
    for a, b in ((0, 1), (0, 2), (1, 2)):
        np.testing.assert_allclose(
            np.linalg.norm(vectors[a] - vectors[b]), np.linalg.norm(expected[a] - expected[b]), rtol=1e-3
        )


def test_static_vectors_base_takes_the_model_the_run_started_from(teacher, student, tiny_bert, tmp_path):
    from texttune.heads import load_base_model

    output = tmp_path / "student"
    flags = ["--static-vectors", "base", "--no-train-vectors", "--no-contextual-vectors", "--epochs", "1"]
    assert main(["distill", teacher, "--output", str(output), *flags]) == 0
    assert Predictor.load(output).manifest.distillation["static_vectors"] == "base"
    _assert_vectors_are_model2vecs_of(load_base_model(tiny_bert), output)
    fine_tuned = Predictor.load(student.output).model.base.embeddings.weight
    assert not np.allclose(Predictor.load(output).model.base.embeddings.weight.detach(), fine_tuned.detach())


def test_adapter_teachers_give_vectors_of_their_merged_encoder(tiny_bert, review_frame, tmp_path, run_config):
    from texttune import train
    from texttune.config import StrategyConfig
    from texttune.heads import load_base_model
    from texttune.strategies import get_strategy

    review_frame(80).to_csv(tmp_path / "reviews.csv", index=False)
    config = run_config(
        tiny_bert,
        str(tmp_path / "reviews.csv"),
        tmp_path / "teacher",
        strategy=StrategyConfig(strategy="lora"),
    )
    teacher = train(config).output
    options = DistillConfig(
        output=str(tmp_path / "student"), epochs=1, train_vectors=False, contextual_vectors=False
    )
    result = distill(teacher, options)
    assert Predictor.load(result.output).manifest.distillation["static_vectors"] == "teacher"
    merged = get_strategy("lora").merged_model(teacher, Predictor.load(teacher).manifest)
    _assert_vectors_are_model2vecs_of(merged.base_model, result.output)  # LoRA's changes merged in
    ours, base = _vectors_and_model2vecs_of(load_base_model(tiny_bert), result.output)
    assert np.abs(ours - base).max() > 1e-3


def test_distill_predict_and_evaluate_through_the_command_line(teacher, tmp_path, capsys):
    output = tmp_path / "student"
    flags = ["--alpha", "0", "--epochs", "100", "--no-train-vectors", "--head-hidden", "0"]
    assert main(["distill", teacher, "--output", str(output), *flags]) == 0
    assert Predictor.load(output).manifest.distillation["train_vectors"] is False
    assert json.loads((output / "head.json").read_text())["head"] == "linear"
    printed = capsys.readouterr().out
    assert f"student run written to {output} (60 training rows" in printed
    assert "validation accuracy: student" in printed and ", teacher 1.0000" in printed
    assert main(["predict", str(output), CLEAR[0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["label"] == "positive"
    assert main(["evaluate", str(output), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(
        json.loads((output / "metrics.json").read_text())["accuracy"]
    )


def test_soft_labels_come_from_the_teacher(teacher, tmp_path):
    """With every given label flipped, alpha=0 still follows the teacher and alpha=1 follows the labels."""
    import pandas as pd

    copy = tmp_path / "teacher"
    import shutil

    shutil.copytree(teacher, copy)
    manifest = json.loads((copy / "texttune.json").read_text())
    frame = pd.read_csv(manifest["config"]["data"]["data"])
    frame["label"] = frame["label"].map({"positive": "negative", "negative": "positive"})
    frame.to_csv(tmp_path / "flipped.csv", index=False)
    manifest["config"]["data"]["data"] = str(tmp_path / "flipped.csv")
    (copy / "texttune.json").write_text(json.dumps(manifest))
    (copy / "validation.parquet").unlink()  # the validation split is then rebuilt, flipped, from the data
    expected = _labels(teacher, CLEAR)
    soft = distill(copy, DistillConfig(output=str(tmp_path / "soft"), alpha=0.0, epochs=100)).output
    hard = distill(copy, DistillConfig(output=str(tmp_path / "hard"), alpha=1.0, epochs=100)).output
    assert _labels(soft, CLEAR) == expected
    assert sum(a != b for a, b in zip(_labels(hard, CLEAR), expected)) >= 5


def test_train_vectors_moves_the_token_vectors_and_keeps_the_teacher(teacher, student, tmp_path):
    """By default the seen tokens' vectors leave model2vec's, unseen ones stay; the saved run reloads."""
    import torch

    from texttune.static_model import StaticEmbeddingModel

    result = distill(teacher, DistillConfig(output=str(tmp_path / "tv"), alpha=0.0, epochs=30))
    assert _labels(result.output, CLEAR) == _labels(teacher, CLEAR)
    loaded = Predictor.load(result.output)
    assert loaded.manifest.distillation["train_vectors"] is True
    assert loaded.manifest.trainable_parameters > Predictor.load(student.output).manifest.trainable_parameters
    before, after = (
        next(m for m in run.modules() if isinstance(m, StaticEmbeddingModel)).embeddings.weight.detach()
        for run in (student.model, loaded.model)
    )
    seen = loaded.tokenizer(CLEAR[0], add_special_tokens=False)["input_ids"]
    unseen = loaded.tokenizer.convert_tokens_to_ids("fox")  # in the vocabulary, in no review
    assert not torch.allclose(after[seen], before[seen])
    torch.testing.assert_close(after[unseen], before[unseen])
    batch = loaded.tokenizer(CLEAR, padding=True, return_tensors="pt")
    with torch.no_grad():
        np.testing.assert_allclose(loaded.logits(CLEAR), result.model(**batch).logits.numpy(), atol=1e-5)


def _static_model(conv_channels: int):
    import torch

    from texttune.static_model import StaticEmbeddingConfig, StaticEmbeddingModel

    torch.manual_seed(0)
    config = StaticEmbeddingConfig(
        vocab_size=12, hidden_size=8, ignored_token_ids=[0, 1], conv_channels=conv_channels
    )
    return StaticEmbeddingModel(config).eval()


def test_the_convolution_reads_word_order_and_the_mean_does_not():
    import torch

    ids = torch.tensor([[1, 4, 5, 6, 1], [1, 6, 5, 4, 1]])  # the same tokens, reversed, between ignored ones
    plain, conv = _static_model(0), _static_model(16)
    with torch.no_grad():
        conv.embeddings.weight.copy_(plain.embeddings.weight)
        mean = plain(input_ids=ids).last_hidden_state[:, 0]
        both = conv(input_ids=ids).last_hidden_state[:, 0]
    assert both.shape == (2, 8 + 16)
    torch.testing.assert_close(mean[0], mean[1])
    torch.testing.assert_close(both[:, :8], mean)  # the mean part is the mean model's
    assert not torch.allclose(both[0, 8:], both[1, 8:])


def test_the_convolution_ignores_padding_and_ignored_tokens():
    import torch

    model = _static_model(16)
    alone = torch.tensor([[1, 4, 5, 6, 1]])
    padded = torch.tensor([[1, 4, 5, 6, 1, 0, 0], [1, 7, 1, 0, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0]])
    with torch.no_grad():
        one = model(input_ids=alone).last_hidden_state[0, 0]
        batch = model(input_ids=padded, attention_mask=mask).last_hidden_state[:, 0]
        # ignored tokens (ids 0 and 1) count as zero vectors whatever their embedding
        model.embeddings.weight[1] = 100.0
        changed = model(input_ids=alone).last_hidden_state[0, 0]
    torch.testing.assert_close(batch[0], one)
    torch.testing.assert_close(changed, one)
    assert (batch[1, 8:] >= 0).all()


def test_prediction_looks_up_the_windows_the_convolution_trains_on():
    """In eval mode the filters' scores come from per-token tables; they equal the convolution's, and
    follow the vectors when these change."""
    import torch

    model = _static_model(16)
    ids = torch.tensor([[1, 4, 5, 6, 7, 1, 0], [1, 9, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]])
    # the mask lets one pad id in: it is ignored all the same
    mask = (ids > 0).long() | torch.tensor([[0] * 6 + [1], [0] * 7, [0] * 7])
    with torch.no_grad():
        looked_up = model(input_ids=ids, attention_mask=mask).last_hidden_state
        convolved = model.train()(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(looked_up, convolved)
        model.eval().embeddings.weight[5] += 1.0
        changed = model(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(
            changed, model.train()(input_ids=ids, attention_mask=mask).last_hidden_state
        )
    assert not torch.allclose(changed, looked_up)


def test_training_stops_after_patience_epochs_without_a_better_validation_loss(teacher, tmp_path):
    from texttune.artifacts import TRAINING_LOG_FILE

    def evaluations(patience):
        options = DistillConfig(  # base vectors: their loss stops improving within the 40 epochs
            output=str(tmp_path / f"p{patience}"),
            epochs=40,
            early_stopping_patience=patience,
            static_vectors="base",
            contextual_vectors=False,
            ema_decay=0.0,  # the trained weights: their loss jumps
        )
        log = json.loads((distill(teacher, options).output / TRAINING_LOG_FILE).read_text())
        return [entry["eval_loss"] for entry in log if "eval_loss" in entry]

    every = evaluations(0)  # all 40 epochs
    assert len(every) == 40
    first_miss = next(i for i in range(1, 40) if every[i] >= min(every[:i]))
    assert first_miss < 39  # so patience 1 stops early
    assert evaluations(1) == every[: first_miss + 1]  # the same epochs, up to the first that was no better


def test_the_weights_kept_are_a_moving_average_of_the_trained_ones():
    """A decay near 1 keeps the average at the first step's weights while the trained ones move on."""
    import torch

    from texttune.distill import Targets, fit_static
    from texttune.tasks import SINGLE_LABEL

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x):
            return SimpleNamespace(logits=self.linear(x))

    x = torch.as_tensor(np.random.default_rng(0).normal(size=(64, 4)), dtype=torch.float32)
    labels = (x[:, 0] > 0).long().numpy()
    targets = Targets(
        [""] * 64, None, 4 * np.eye(2, dtype=np.float32)[labels], labels, np.ones(64, np.float32)
    )

    def distance_travelled(decay):
        torch.manual_seed(0)
        head = Head()
        start = head.linear.weight.detach().clone()
        options = DistillConfig(output="unused", ema_decay=decay, early_stopping_patience=0)
        log = fit_static(head, (x, targets), (x, targets), SINGLE_LABEL, options, epochs=20, rate=0.1)
        losses = [entry["eval_loss"] for entry in log if "eval_loss" in entry]
        return (head.linear.weight - start).norm().item(), losses

    (trained, trained_losses), (averaged, averaged_losses) = (
        distance_travelled(0.0),
        distance_travelled(0.9999),
    )
    first_step = 0.1 * np.sqrt(8)  # Adam moves each of the 8 weights by about the learning rate
    assert averaged < 1.5 * first_step < trained
    assert min(averaged_losses) > min(trained_losses)  # the validation loss is the kept weights'


def test_unlabelled_texts_are_added_as_teacher_labelled_rows(teacher, tmp_path):
    (tmp_path / "more.txt").write_text("\n".join(CLEAR * 5) + "\n\n")
    result = distill(
        teacher, DistillConfig(output=str(tmp_path / "s"), unlabelled=str(tmp_path / "more.txt"), alpha=0.5)
    )
    assert (result.train_rows, result.unlabelled_rows) == (90, 30)
    manifest = Predictor.load(result.output).manifest
    assert manifest.distillation["unlabelled_rows"] == 30 and manifest.distillation["train_rows"] == 60


def test_augmented_variants_are_spans_or_word_drops_of_their_texts():
    texts = ["a film of great charm and wit", "short one", "dull weak and messy from start to end"]
    variants = augmented_texts(texts, 20, seed=3)
    assert len(variants) == 40 and variants == augmented_texts(texts, 20, seed=3)
    for text, group in ((texts[0], variants[:20]), (texts[2], variants[20:])):
        words = text.split()
        for variant in group:
            kept = variant.split()
            assert 0 < len(kept) < len(words) or variant == text
            assert iter_in_order(kept, words)
        spans = [v for v in group if v in text and len(v.split()) <= len(words) // 2 + 1]
        assert 0 < len(spans) < 20  # both kinds are drawn


def iter_in_order(kept: list[str], words: list[str]) -> bool:
    """Whether ``kept`` is ``words`` with some of them left out (order kept)."""
    remaining = iter(words)
    return all(word in remaining for word in kept)


def test_augmented_variants_are_teacher_labelled_rows(teacher, tmp_path):
    result = distill(teacher, DistillConfig(output=str(tmp_path / "s"), augment=2, epochs=1))
    assert result.augmented_rows == 120 and result.train_rows == 180
    made = Predictor.load(result.output).manifest.distillation
    assert (made["augment"], made["augmented_rows"], made["train_rows"]) == (2, 120, 60)


@pytest.mark.parametrize("flag", ["--unlabelled", "--augment"])
def test_text_pair_runs_refuse_single_text_options(flag, teacher, tmp_path, capsys):
    import shutil

    copy = tmp_path / "teacher"
    shutil.copytree(teacher, copy)
    manifest = json.loads((copy / "texttune.json").read_text())
    manifest["text_pair_column"] = "hypothesis"
    (copy / "texttune.json").write_text(json.dumps(manifest))
    (tmp_path / "more.txt").write_text("\n".join(CLEAR) + "\n")
    value = str(tmp_path / "more.txt") if flag == "--unlabelled" else "2"
    assert main(["distill", str(copy), "--output", str(tmp_path / "s"), flag, value]) == 2
    err = capsys.readouterr().err
    assert f"{flag} is for runs of single texts, but this run classifies text pairs" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("task", ["multi_label", "regression"])
def test_multi_label_and_regression_students(task, tiny_bert, review_frame, tmp_path, run_config):
    from texttune import train

    frame = review_frame(80)
    if task == "regression":
        frame["label"] = [0.9 if label == "positive" else 0.1 for label in frame["label"]]
    else:
        frame["label"] = [f"{label}|long" if len(text.split()) > 8 else label for text, label in frame.values]
    frame.to_csv(tmp_path / "data.csv", index=False)
    # The multi-label teacher learns "long" and barely separates sentiment: its sentiment logits vary from
    # text to text in the second decimal at 2e-3, and at 5e-3 only in the third, below a student's noise.
    rate = 2e-3 if task == "multi_label" else 5e-3
    config = run_config(
        tiny_bert, str(tmp_path / "data.csv"), tmp_path / "teacher", epochs=10.0, learning_rate=rate
    )
    config.data.task, config.data.label_delimiter = task, ("|" if task == "multi_label" else None)
    teacher = train(config).output
    result = distill(teacher, DistillConfig(output=str(tmp_path / "student"), alpha=0.0, epochs=100))
    student, reference = Predictor.load(result.output), Predictor.load(teacher)
    assert student.task == task and student.manifest.distillation["student"] == "static"
    ours, theirs = student.predict(CLEAR), reference.predict(CLEAR)
    if task == "regression":
        assert "mse" in result.metrics
        values, expected = [p.label for p in ours], [p.label for p in theirs]
        assert np.corrcoef(values, expected)[0, 1] > 0.9
    else:
        assert "f1_micro" in result.metrics
        # Sentiment only: "long" depends on a text's length, which a normalised mean of token vectors loses.
        # Raw logits: each run fits its own calibration temperature, so probabilities are not comparable.
        texts = CLEAR + list(frame["text"][:40])
        ours, theirs = student.logits(texts)[:, 1:] > 0, reference.logits(texts)[:, 1:] > 0
        assert float((ours == theirs).mean()) >= 0.8  # 0.98 seen: static vectors of a random tiny BERT


def test_student_exports_to_onnx_with_the_same_predictions(student, tmp_path):
    pytest.importorskip("onnxruntime")
    from texttune.export import export_onnx

    export_onnx(student.output, tmp_path / "onnx")
    onnx = Predictor.load(tmp_path / "onnx", backend="onnx")
    np.testing.assert_allclose(onnx.logits(CLEAR), Predictor.load(student.output).logits(CLEAR), atol=1e-4)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--student", "tiny"], "--student 'tiny' is not known; use static or layers:N"),
        (["--student", "layers:0"], "--student 'layers:0' is not known"),
        (["--alpha", "1.5"], "--alpha must be between 0 and 1"),
        (["--temperature", "0"], "--temperature must be positive, got 0.0"),
        (["--early-stopping-patience", "-1"], "--early-stopping-patience must not be negative, got -1"),
        (["--conv-channels", "-1"], "--conv-channels must not be negative, got -1"),
        (["--augment", "-1"], "--augment must not be negative, got -1"),
        (["--head-hidden", "-1"], "--head-hidden must not be negative, got -1"),
        (["--ema-decay", "1"], "--ema-decay must be in [0, 1), got 1.0"),
        (["--unlabelled", "missing.txt"], "--unlabelled missing.txt: file not found"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(flags, message, teacher, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["distill", teacher, "--output", "student", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_runs_and_outputs_exit_2_and_write_nothing(teacher, tmp_path, capsys):
    assert main(["distill", teacher]) == 2
    assert "give the student's run folder with --output" in capsys.readouterr().err
    assert main(["distill", str(tmp_path / "nope"), "--output", str(tmp_path / "s")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert main(["distill", teacher, "--output", teacher, "--overwrite"]) == 2
    assert "is the teacher run itself" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("x")
    assert main(["distill", teacher, "--output", str(tmp_path / "taken")]) == 2
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_teacher_data_that_is_gone_is_named(teacher, tmp_path, capsys):
    import shutil

    copy = tmp_path / "teacher"
    shutil.copytree(teacher, copy)
    manifest = json.loads((copy / "texttune.json").read_text())
    manifest["config"]["data"]["data"] = str(tmp_path / "gone.csv")
    (copy / "texttune.json").write_text(json.dumps(manifest))
    assert main(["distill", str(copy), "--output", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert f"cannot rebuild the training data of {copy}" in err and "gone.csv" in err
    assert not (tmp_path / "s").exists() and not (tmp_path / ".s.partial").exists()


def test_base_vectors_of_a_base_model_that_is_gone_are_named(teacher, tmp_path, capsys):
    import shutil

    copy = tmp_path / "teacher"
    shutil.copytree(teacher, copy)
    manifest = json.loads((copy / "texttune.json").read_text())
    manifest["base_model"] = str(tmp_path / "gone-model")
    (copy / "texttune.json").write_text(json.dumps(manifest))
    argv = ["distill", str(copy), "--output", str(tmp_path / "s"), "--static-vectors", "base"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # the error, after the log of the steps before it
    assert "Traceback" not in err and f"run {copy} needs its base model '{tmp_path / 'gone-model'}'" in last
    assert last.endswith("restore it, or take the vectors from the run itself with --static-vectors teacher")
    assert not (tmp_path / "s").exists() and not (tmp_path / ".s.partial").exists()


def test_missing_model2vec_names_the_install_command(teacher, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "model2vec.distill", None)
    with pytest.raises(
        ConfigError, match=r"--student static needs model2vec: pip install 'texttune\[distill\]'"
    ):
        distill(teacher, DistillConfig(output=str(tmp_path / "s")))
    assert list(tmp_path.iterdir()) == []


def test_distill_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["distill", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    flags = ("--output", "--student", "--unlabelled", "--temperature", "--alpha", "--overwrite")
    for flag in (*flags, "--static-vectors", "--head-hidden", "--ema-decay"):
        assert flag in out


def test_unknown_static_vectors_exit_2_in_one_line(teacher, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["distill", teacher, "--output", str(tmp_path / "s"), "--static-vectors", "fine"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--static-vectors: invalid choice: 'fine'" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="--static-vectors 'fine' is not one of teacher, base"):
        DistillConfig(output=str(tmp_path / "s"), static_vectors="fine")


@pytest.fixture(scope="module")
def pooled_teacher(tiny_bert_mean, teacher, run_config):
    """A full fine-tuned run of tiny BERT that classifies from mean-pooled token vectors (same reviews)."""
    from pathlib import Path

    from texttune import train

    folder = Path(teacher).parent
    config = run_config(
        tiny_bert_mean, str(folder / "reviews.csv"), folder / "pooled", epochs=10.0, learning_rate=5e-3
    )
    return str(train(config).output)


@pytest.mark.parametrize("kind", ["native", "pooled"])
def test_layer_student_keeps_the_first_layers_and_follows_the_teacher(
    kind, teacher, pooled_teacher, tmp_path
):
    source = teacher if kind == "native" else pooled_teacher
    options = DistillConfig(
        output=str(tmp_path / "s"), student="layers:1", alpha=0.0, epochs=10, learning_rate=5e-3
    )
    result = distill(source, options)
    predictor = Predictor.load(result.output)
    assert json.loads((result.output / "config.json").read_text())["num_hidden_layers"] == 1
    assert predictor.manifest.strategy == "full" and predictor.manifest.distillation["student"] == "layers:1"
    assert predictor.manifest.distillation["train_vectors"] is False  # static students only
    assert (result.output / "head.json").is_file() == (kind == "pooled")
    assert _labels(result.output, CLEAR) == _labels(source, CLEAR)
    assert predictor.manifest.total_parameters < Predictor.load(source).manifest.total_parameters
    assert any("eval_loss" in row for row in json.loads((result.output / "training_log.json").read_text()))


def test_layer_student_exports_to_onnx_int8(teacher, tmp_path):
    pytest.importorskip("onnxruntime")
    from texttune.export import export_onnx

    options = DistillConfig(
        output=str(tmp_path / "s"), student="layers:1", alpha=0.0, epochs=10, learning_rate=5e-3
    )
    student = distill(teacher, options).output
    export_onnx(student, tmp_path / "int8", quantize="int8", max_accuracy_drop=0.5)
    onnx = Predictor.load(tmp_path / "int8", backend="onnx")
    assert [p.label for p in onnx.predict(CLEAR)] == _labels(student, CLEAR)


def test_layer_student_must_drop_layers(teacher, tmp_path, capsys):
    assert main(["distill", teacher, "--output", str(tmp_path / "s"), "--student", "layers:2"]) == 2
    assert (
        "--student layers:2 keeps all of the teacher's 2 layers; give fewer (e.g. layers:1)"
        in capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []
