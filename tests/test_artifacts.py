"""The run folder: its files, its manifest, its format version, and how it is written (AtomicDir)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from texttune import Predictor, evaluate_run, train
from texttune.artifacts import (
    CONFUSION_MATRIX_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    REPORT_FILE,
    RUN_FORMAT_VERSION,
    TOKENIZER_CONFIG_FILE,
    TRAINING_LOG_FILE,
    VALIDATION_DATA_FILE,
    AtomicDir,
    partial_dir,
    read_manifest,
    require_files,
    save_run,
    write_evaluation,
    write_manifest,
)
from texttune.errors import ConfigError, ModelError

#: A tiny full run written by texttune 0.1.0 (run format 1); see its texttune.json.
FORMAT_1_RUN = Path(__file__).parent / "fixtures" / "runs" / "format-1-full"
TEXTS = ["the film was good fun", "awful boring plot", "really clever and moving story", "dull"]


@pytest.fixture()
def format_1_run(tmp_path) -> Path:
    """A copy of the committed format-1 run (evaluating a run writes into it)."""
    return Path(shutil.copytree(FORMAT_1_RUN, tmp_path / "format-1-full"))


def _set_format_version(run: Path, version) -> None:
    raw = json.loads((run / MANIFEST_FILE).read_text())
    raw["format_version"] = version
    (run / MANIFEST_FILE).write_text(json.dumps(raw))


# ------------------------------------------------------------------ runs written by an earlier release


def test_a_run_of_the_previous_release_loads_and_predicts(format_1_run):
    manifest = read_manifest(format_1_run)
    assert (manifest.format_version, manifest.versions["texttune"]) == (1, "0.1.0")
    predictor = Predictor.load(format_1_run, device="cpu", backend="torch")
    assert predictor.task == "single_label" and predictor.label_names == ["negative", "positive"]
    predictions = predictor.predict(TEXTS)
    assert len(predictions) == len(TEXTS)
    for prediction in predictions:
        assert prediction.label in {"negative", "positive"}
        assert set(prediction.probabilities) == {"negative", "positive"}
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_evaluating_a_run_of_the_previous_release_reproduces_its_metrics(format_1_run):
    stored = json.loads((format_1_run / METRICS_FILE).read_text())
    result = evaluate_run(format_1_run, backend="torch")
    assert result.metrics["accuracy"] == stored["accuracy"]
    assert result.metrics["samples"] == stored["samples"] == 15
    assert result.metrics["confusion_matrix"] == stored["confusion_matrix"]
    assert (format_1_run / "evaluations" / "validation" / METRICS_FILE).is_file()


def test_the_committed_run_is_at_the_current_format_version():
    # When RUN_FORMAT_VERSION is bumped, keep this folder as the old format's fixture and commit a new one.
    assert json.loads((FORMAT_1_RUN / MANIFEST_FILE).read_text())["format_version"] == RUN_FORMAT_VERSION == 1


# ------------------------------------------------------------------ writing a run


def test_save_run_writes_exactly_the_files_of_a_full_run(tiny_bert, tmp_path, sentiment_manifest):
    from texttune.modeling import build_model
    from texttune.tokenization import load_tokenizer

    model = build_model(tiny_bert, task="single_label", label_names=["negative", "positive"]).eval()
    tokenizer = load_tokenizer(tiny_bert)
    log = [{"loss": 0.69, "step": 1}]
    work = tmp_path / "run"
    work.mkdir()
    save_run(
        work,
        model=model,
        tokenizer=tokenizer,
        manifest=sentiment_manifest(tiny_bert),
        log_history=log,
    )
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [
            MANIFEST_FILE,
            MODEL_CONFIG_FILE,
            MODEL_WEIGHTS_FILE,
            TOKENIZER_CONFIG_FILE,
            "tokenizer.json",
            TRAINING_LOG_FILE,
        ]
    )
    assert json.loads((work / TRAINING_LOG_FILE).read_text()) == log
    assert json.loads((work / MODEL_CONFIG_FILE).read_text())["id2label"] == {
        "0": "negative",
        "1": "positive",
    }

    # what was saved is what loads
    loaded = Predictor.load(work, device="cpu")
    memory = Predictor(model, tokenizer, loaded.manifest)
    np.testing.assert_allclose(loaded.logits(TEXTS), memory.logits(TEXTS), rtol=1e-5, atol=1e-6)


def test_write_evaluation_writes_metrics_report_and_confusion_matrix(tmp_path):
    from texttune.metrics import evaluate_predictions

    logits = np.array([[2.0, -1.0], [0.5, 1.0], [-1.0, 1.0], [1.0, 0.0]])
    metrics = evaluate_predictions("single_label", ["negative", "positive"], logits, np.array([0, 1, 0, 0]))
    folder = tmp_path / "evaluations" / "new"
    write_evaluation(folder, metrics, ["negative", "positive"], "new")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [METRICS_FILE, REPORT_FILE, CONFUSION_MATRIX_FILE]
    )
    assert json.loads((folder / METRICS_FILE).read_text()) == json.loads(json.dumps(metrics))
    assert (folder / CONFUSION_MATRIX_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_folder_contents_and_label_names(tiny_bert, reviews_csv, tmp_path, run_config):
    result = train(run_config(tiny_bert, reviews_csv, tmp_path / "run"))
    run = result.output
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "texttune.json",
        "metrics.json",
        "training_log.json",
        "validation.parquet",
        "confusion_matrix.png",
        "report.txt",
    ):
        assert (run / name).is_file(), name
    assert not list(run.glob("*.bin")) and not (run / "checkpoints").exists()
    assert not list(tmp_path.glob(".run.partial"))
    config = json.loads((run / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    manifest = json.loads((run / "texttune.json").read_text())
    assert manifest["label_names"] == ["negative", "positive"]
    assert manifest["versions"]["transformers"].startswith("5.")
    assert manifest["config"]["train"]["epochs"] == 1.0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["samples"] == 15
    prediction = Predictor.load(run).predict(["good fun"])[0]
    assert prediction.label in {"negative", "positive"}
    assert set(prediction.probabilities) == {"negative", "positive"}
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


# ------------------------------------------------------------------ the manifest


def test_the_manifest_round_trips(tmp_path, sentiment_manifest):
    manifest = dataclasses.replace(
        sentiment_manifest("base-model", max_length=48),
        task="multi_label",
        label_names=["long", "neg", "pos"],
        strategy="lora",
        thresholds=[0.25, 0.5, 0.75],
        long_text="sliding",
        stride=8,
        config={"train": {"epochs": 2.0, "learning_rate": 1e-3}, "strategy": {"lora_rank": 4}},
    )
    write_manifest(tmp_path, manifest)
    assert manifest.created and manifest.versions["python"]  # filled in on writing
    assert read_manifest(tmp_path) == manifest
    assert read_manifest(tmp_path).format_version == RUN_FORMAT_VERSION


def test_manifest_keys_this_version_does_not_know_are_ignored(tmp_path, sentiment_manifest):
    manifest = sentiment_manifest("base-model")
    write_manifest(tmp_path, manifest)
    raw = json.loads((tmp_path / MANIFEST_FILE).read_text())
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({**raw, "calibration": {"temperature": 1.5}}))
    assert read_manifest(tmp_path) == manifest


def test_a_wrong_format_version_is_refused_naming_both_versions(format_1_run):
    newer = RUN_FORMAT_VERSION + 1
    _set_format_version(format_1_run, newer)
    message = (
        rf"was written in run format {newer}, this texttune reads format {RUN_FORMAT_VERSION}; retrain it"
    )
    with pytest.raises(ModelError, match=message):
        read_manifest(format_1_run)
    with pytest.raises(ModelError, match=message):
        Predictor.load(format_1_run)
    _set_format_version(format_1_run, None)  # written before format versions
    with pytest.raises(
        ModelError, match=rf"run format None, this texttune reads format {RUN_FORMAT_VERSION}"
    ):
        read_manifest(format_1_run)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"task": "single_label",', r"texttune.json is corrupt \(.*\); retrain the run"),
        (
            '{"task": "single_label", "format_version": 1}',
            r"texttune.json is incomplete \(.*\); retrain the run",
        ),
    ],
)
def test_a_damaged_manifest_is_refused(text, message, tmp_path):
    (tmp_path / MANIFEST_FILE).write_text(text)
    with pytest.raises(ModelError, match=message):
        read_manifest(tmp_path)


# ------------------------------------------------------------------ missing files


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (MODEL_WEIGHTS_FILE, r"run folder .*format-1-full is incomplete: missing model.safetensors; retrain"),
        (MODEL_CONFIG_FILE, r"is incomplete: missing config.json; retrain the run"),
        (TOKENIZER_CONFIG_FILE, r"is incomplete: missing tokenizer_config.json; retrain the run"),
        (
            MANIFEST_FILE,
            r"is not a texttune run: texttune.json is missing \(it looks like a plain transformers",
        ),
    ],
)
def test_a_missing_file_is_named_when_loading(name, message, format_1_run):
    (format_1_run / name).unlink()
    with pytest.raises(ModelError, match=message):
        Predictor.load(format_1_run)


def test_a_missing_validation_split_is_named_when_evaluating(format_1_run):
    (format_1_run / VALIDATION_DATA_FILE).unlink()
    with pytest.raises(ModelError, match=r"is incomplete: missing validation.parquet; retrain the run"):
        evaluate_run(format_1_run)


def test_require_files_names_only_the_missing_ones(tmp_path):
    (tmp_path / MODEL_CONFIG_FILE).write_text("{}")
    with pytest.raises(ModelError, match=r"incomplete: missing model.safetensors, tokenizer.json; retrain"):
        require_files(tmp_path, [MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, "tokenizer.json"])
    require_files(tmp_path, [MODEL_CONFIG_FILE])


def test_folders_that_are_not_runs_say_what_they_are(tiny_bert, tmp_path):
    with pytest.raises(
        ModelError, match=r"texttune.json is missing \(it looks like a plain transformers model"
    ):
        read_manifest(tiny_bert)
    with pytest.raises(ModelError, match=r"run folder not found: .*nowhere"):
        read_manifest(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match=r"is a file, not a run folder"):
        read_manifest(tmp_path / "file")
    work = partial_dir(tmp_path / "run")
    work.mkdir()
    with pytest.raises(
        ModelError, match=r"is the work folder of an unfinished run \(texttune.json is missing\)"
    ):
        read_manifest(work)


# ------------------------------------------------------------------ AtomicDir


def test_atomic_dir_moves_the_finished_folder_into_place(tmp_path):
    target = tmp_path / "run"
    with AtomicDir(target) as work:
        assert work == partial_dir(target) == tmp_path / ".run.partial"
        (work / "file").write_text("x")
        assert not target.exists()
    assert (target / "file").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), AtomicDir(tmp_path / "run") as work:
        (work / "half-written").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_keeps_the_work_folder_when_asked_on_failure(tmp_path):
    keep = AtomicDir(tmp_path / "run", keep_on_error=lambda work: (work / "checkpoint").exists())
    with pytest.raises(RuntimeError), keep as work:
        (work / "checkpoint").write_text("x")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.partial"]
    with AtomicDir(tmp_path / "run", keep_partial=True) as work:  # a resumed run continues in it
        assert (work / "checkpoint").is_file()
    assert (tmp_path / "run" / "checkpoint").is_file() and not partial_dir(tmp_path / "run").exists()


def test_atomic_dir_refuses_a_non_empty_target_without_overwrite(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with (
        pytest.raises(ConfigError, match=r"output folder .*run is not empty; pass --overwrite"),
        AtomicDir(target),
    ):
        pytest.fail("the block must not run")
    assert (target / "keep.txt").read_text() == "mine" and not partial_dir(target).exists()

    with AtomicDir(target, overwrite=True) as work:
        (work / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the old run is gone, not set aside

    (tmp_path / "file").write_text("x")
    with (
        pytest.raises(ConfigError, match=r"--output .*file is a file; give a folder path"),
        AtomicDir(tmp_path / "file", overwrite=True),
    ):
        pass


def test_atomic_dir_replaces_a_stale_work_folder(tmp_path):
    stale = partial_dir(tmp_path / "run")
    stale.mkdir()
    (stale / "old").write_text("x")
    with AtomicDir(tmp_path / "run") as work:
        assert list(work.iterdir()) == []
    assert list((tmp_path / "run").iterdir()) == []
