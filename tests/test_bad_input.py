"""Bad input through the CLI, one row per case: exit code 2, one line naming the fix, no traceback, nothing written.

Inputs that texttune handles rather than refuses (a BOM, quoted newlines, texts far longer than
--max-length, a class with one example, mixed label types) have tests showing the handling, here and in
test_data.py.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest

from texttune.artifacts import write_manifest
from texttune.cli import main


def _write(tmp: Path, name: str, text: str | bytes) -> str:
    path = tmp / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


class Writers(NamedTuple):
    """What a case writes into its folder, with conftest's review and manifest factories."""

    #: ``reviews(tmp, name="reviews.csv")``: 40 generated reviews as a CSV file; returns its path.
    reviews: Callable[..., str]
    #: ``fake_run(tmp, tiny_bert, *, format_version=1, drop=None)``: a run folder made by hand.
    fake_run: Callable[..., str]


@pytest.fixture()
def writers(review_frame, sentiment_manifest) -> Writers:
    def reviews(tmp: Path, name: str = "reviews.csv") -> str:
        path = tmp / name
        review_frame(40).to_csv(path, index=False)
        return str(path)

    def fake_run(tmp: Path, tiny_bert: str, *, format_version: int = 1, drop: str | None = None) -> str:
        """A run folder made by hand: the tiny model plus a manifest, optionally damaged."""
        run = tmp / "run"
        shutil.copytree(tiny_bert, run)
        manifest = sentiment_manifest(tiny_bert)
        write_manifest(run, manifest)
        if format_version != 1:
            raw = json.loads((run / "texttune.json").read_text())
            raw["format_version"] = format_version
            (run / "texttune.json").write_text(json.dumps(raw))
        if drop:
            (run / drop).unlink()
        return str(run)

    return Writers(reviews, fake_run)


def _train(tiny_bert: str, data: str, tmp: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        data,
        "--model",
        tiny_bert,
        "--output",
        str(tmp / "out"),
        "--use-cpu",
        "--strategy",
        "full",
        *extra,
    ]


def _audit(tiny_bert: str, data: str, tmp: Path, *extra: str) -> list[str]:
    return ["audit", "--data", data, "--model", tiny_bert, "--output", str(tmp / "out"), *extra]


Case = Callable[[Path, str, Writers], tuple[list[str], str]]

CASES: dict[str, Case] = {
    "missing file": lambda t, m, w: (
        _train(m, str(t / "missing.csv"), t),
        r"data file not found: .*missing.csv \(check --data\)",
    ),
    "a folder where a data file is expected": lambda t, m, w: (
        _train(m, str(t), t),
        r"is a folder but not a dataset saved with datasets' save_to_disk",
    ),
    "a folder where the config file is expected": lambda t, m, w: (
        _train(m, w.reviews(t), t, "--config", str(t)),
        r"--config .* is a folder; give a YAML file",
    ),
    "empty file": lambda t, m, w: (_train(m, _write(t, "e.csv", ""), t), r"data file is empty: .*e.csv"),
    "header only": lambda t, m, w: (
        _train(m, _write(t, "h.csv", "text,label\n"), t),
        r"h.csv has a header but no rows \(check --data\)",
    ),
    "wrong delimiter (semicolons in a .csv)": lambda t, m, w: (
        _train(m, _write(t, "s.csv", "text;label\ngood;pos\nbad;neg\n"), t),
        r"s.csv looks semicolon-separated .* save it comma-separated",
    ),
    "wrong delimiter (tabs in a .csv)": lambda t, m, w: (
        _train(m, _write(t, "t.csv", "text\tlabel\ngood\tpos\nbad\tneg\n"), t),
        r"t.csv looks tab-separated .*: name it .tsv",
    ),
    "non-UTF-8 bytes": lambda t, m, w: (
        _train(m, _write(t, "l.csv", "text,label\ncaf\xe9 good,pos\nbad,neg\n".encode("latin-1")), t),
        r"l.csv is not valid utf-8 text \(byte 0xe9 .*--encoding latin-1",
    ),
    "blank texts with --strict": lambda t, m, w: (
        _train(m, _write(t, "b.csv", "text,label\ngood,pos\n  ,neg\nbad,neg\n,pos\n"), t, "--strict"),
        r"2 of 4 rows have an empty or missing text in column 'text'.*--strict",
    ),
    "labels in validation never seen in training": lambda t, m, w: (
        _train(m, w.reviews(t), t, "--validation", _write(t, "v.csv", "text,label\nfine,neutral\n")),
        r"--validation .*v.csv has labels never seen in training: 'neutral'",
    ),
    "labels in test never seen in training": lambda t, m, w: (
        _train(m, w.reviews(t), t, "--test", _write(t, "x.csv", "text,label\nfine,meh\n")),
        r"--test .*x.csv has labels never seen in training: 'meh'",
    ),
    "multi-label rows with no labels, --strict": lambda t, m, w: (
        _train(
            m,
            _write(
                t,
                "m.jsonl",
                "".join(
                    json.dumps({"text": f"t{i}", "labels": [["a"], ["b"], []][i % 3]}) + "\n"
                    for i in range(9)
                ),
            ),  # fmt: skip
            t,
            "--strict",
        ),
        r"3 of 9 rows have no label in column 'labels'",
    ),
    "zero rows left after filtering": lambda t, m, w: (
        _train(m, _write(t, "z.csv", 'text,label\n" ",a\n,b\n'), t),
        r"has no usable rows: all 2 rows have an empty text or a missing label",
    ),
    "a single class": lambda t, m, w: (
        _train(m, _write(t, "one.csv", "text,label\na,x\nb,x\nc,x\n"), t),
        r"has a single class 'x' in column 'label'; classification needs at least 2 classes",
    ),
    "config YAML with an unknown key": lambda t, m, w: (
        _train(m, w.reviews(t), t, "--config", _write(t, "c.yaml", "learnin_rate: 0.1\n")),
        r"unknown key\(s\) in .*c.yaml: learnin_rate; known keys:",
    ),
    "config YAML with a wrong type": lambda t, m, w: (
        _train(m, w.reviews(t), t, "--config", _write(t, "c.yaml", "epochs: three\n")),
        r"config file .*c.yaml: key 'epochs' must be a number, got 'three'",
    ),
    "conflicting flags: --resume and --overwrite": lambda t, m, w: (
        _train(m, w.reviews(t), t, "--resume", "--overwrite"),
        r"--resume and --overwrite conflict: .*drop one of them",
    ),
    "conflicting flags: --label-delimiter and --task regression": lambda t, m, w: (
        _train(m, w.reviews(t), t, "--label-delimiter", "|", "--task", "regression"),
        r"--label-delimiter makes labels multi-label; it cannot be used with --task regression",
    ),
    "conflicting flags: texts and --data for predict": lambda t, m, w: (
        ["predict", w.fake_run(t, m), "some text", "--data", w.reviews(t), "--output", str(t / "p.csv")],
        r"give texts as arguments or a file with --data, not both",
    ),
    "--resume with other options than the interrupted run": lambda t, m, w: (
        _resume_with_other_options(t, m, w),
        r"--resume continues a run started with other options: .*--learning-rate was 0.5, now 5e-05",
    ),
    "output folder not empty": lambda t, m, w: (
        _train(m, w.reviews(t), t) if _write(_mkdir(t / "out"), "mine.txt", "x") else [],
        r"output folder .*out is not empty; pass --overwrite to replace it or choose another --output",
    ),
    "audit: --fix without --output-data": lambda t, m, w: (
        _audit(m, w.reviews(t), t, "--fix", "drop"),
        r"--fix and --output-data go together: --fix drop\|relabel --output-data clean.csv",
    ),
    "audit: --output-data is the input file": lambda t, m, w: (
        _audit(m, w.reviews(t), t, "--fix", "drop", "--output-data", str(t / "reviews.csv")),
        r"--output-data must not be the input file: the audit never changes its input",
    ),
    "audit: output folder not empty": lambda t, m, w: (
        _audit(m, w.reviews(t), t) if _write(_mkdir(t / "out"), "mine.txt", "x") else [],
        r"output folder .*out is not empty; pass --overwrite",
    ),
    "audit: --fix relabel on multi-label data": lambda t, m, w: (
        _audit(
            m,
            _write(t, "m.csv", "text,label\n" + "good film,a|b\nbad film,a\n" * 10),
            t,
            "--label-delimiter",
            "|",
            "--fix",
            "relabel",
            "--output-data",
            str(t / "clean.csv"),
        ),
        r"--fix relabel needs single-label data, this is multi_label; use --fix drop",
    ),
    "run folder from another format version": lambda t, m, w: (
        ["predict", w.fake_run(t, m, format_version=99), "text"],
        r"was written in run format 99, this texttune reads format 1; retrain it",
    ),
    "run folder with a missing file": lambda t, m, w: (
        ["predict", w.fake_run(t, m, drop="model.safetensors"), "text"],
        r"run folder .*run is incomplete: missing model.safetensors; retrain the run",
    ),
    "run folder without its tokenizer": lambda t, m, w: (
        ["predict", w.fake_run(t, m, drop="tokenizer_config.json"), "text"],
        r"is incomplete: missing tokenizer_config.json",
    ),
    "the work folder of an unfinished run": lambda t, m, w: (
        ["predict", str(_mkdir(t / ".run.partial")), "text"],
        r"is the work folder of an unfinished run \(texttune.json is missing\); finish it with .*--resume",
    ),
    "a model path that is not a model": lambda t, m, w: (
        _train(str(_mkdir(t / "not-a-model")), w.reviews(t), t),
        r"is not a model folder \(no config.json in it\)",
    ),
    "a model path that is a file": lambda t, m, w: (
        _train(w.reviews(t, "weights.csv"), w.reviews(t), t),
        r"--model .*weights.csv' is a file; give the model folder",
    ),
    "a model with pickled weights only": lambda t, m, w: (
        _train(_pickled_model(t, m), w.reviews(t), t),
        r"only has pickled weights \(pytorch_model.bin\).* or pass --allow-pickle if you trust the files",
    ),
    "a model that needs remote code": lambda t, m, w: (
        _train(_remote_code_model(t, m), w.reviews(t), t),
        r"needs custom code shipped in its folder \(auto_map in config.json\); .* pass --trust-remote-code",
    ),
}


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _pickled_model(tmp: Path, tiny_bert: str) -> str:
    folder = tmp / "pickled"
    shutil.copytree(tiny_bert, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"never unpickled")
    return str(folder)


def _remote_code_model(tmp: Path, tiny_bert: str) -> str:
    folder = tmp / "remote"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text("raise SystemExit('this code must never run')\n")
    return str(folder)


def _resume_with_other_options(tmp: Path, tiny_bert: str, w: Writers) -> list[str]:
    from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig
    from texttune.checkpoints import record_resume_config

    data = w.reviews(tmp)
    before = RunConfig(
        data=DataConfig(data=data),
        model=ModelConfig(model=tiny_bert),
        train=TrainConfig(output=str(tmp / "out"), learning_rate=0.5, use_cpu=True),
    )
    record_resume_config(_mkdir(tmp / ".out.partial"), before.to_dict())
    return _train(tiny_bert, data, tmp, "--resume")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"/" for p in root.rglob("*")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case, tiny_bert, tmp_path, capsys, monkeypatch, writers
):
    work = tmp_path / "case"
    work.mkdir()
    monkeypatch.chdir(work)
    argv, message = CASES[case](work, tiny_bert, writers)
    before = _snapshot(work)
    code = main([*argv, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    *warnings, last = err.splitlines()
    assert last.startswith(f"texttune {argv[0]}: error: ") and err.endswith("\n"), err
    assert all(line.startswith("WARNING ") for line in warnings), err  # logged on the way, one line each
    assert "Traceback" not in err
    assert re.search(message, last), f"{message!r} not in {last!r}"
    assert _snapshot(work) == before, "a failed command wrote or changed files"


def test_the_count_of_bad_input_cases():
    assert len(CASES) == 33


def test_debug_shows_the_traceback_of_a_bad_input(tiny_bert, tmp_path, monkeypatch, writers):
    from texttune.errors import ModelError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="needs custom code"):
        main(_train(_remote_code_model(tmp_path, tiny_bert), writers.reviews(tmp_path), tmp_path, "--debug"))


def test_texts_far_longer_than_max_length_are_truncated(tiny_bert, tmp_path, review_frame, run_config):
    from texttune import Predictor, train

    frame = review_frame(24)
    frame.loc[::3, "text"] = frame.loc[::3, "text"].map(lambda t: " ".join([t] * 400))  # ~100x of 32 tokens
    path = tmp_path / "long.csv"
    frame.to_csv(path, index=False)
    # batch 8 and the model's default learning rate
    config = run_config(tiny_bert, str(path), tmp_path / "run", batch_size=8, learning_rate=None)
    result = train(config)
    predictor = Predictor.load(result.output)
    long_text = frame.loc[0, "text"]
    assert len(predictor.tokenizer(long_text)["input_ids"]) > 100 * 32
    encoded = predictor.tokenizer([long_text], truncation=True, max_length=predictor.manifest.max_length)
    assert len(encoded["input_ids"][0]) == 32
    assert predictor.predict([long_text])[0].label in {"negative", "positive"}


def test_a_trusted_remote_code_model_passes_the_safety_check(tiny_bert, tmp_path):
    from texttune.modeling import check_model_folder

    folder = _remote_code_model(tmp_path, tiny_bert)
    check_model_folder(folder, trust_remote_code=True)  # refused only without the flag


def test_allow_pickle_loads_a_pickle_only_model(tiny_bert, tmp_path):
    import torch
    from transformers import AutoModel

    from texttune.modeling import build_model

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_bert, folder)
    weights = AutoModel.from_pretrained(tiny_bert).state_dict()
    torch.save(weights, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    model = build_model(str(folder), task="single_label", label_names=["a", "b"], allow_pickle=True)
    loaded = model.bert.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items() if k in loaded)
    assert pd.Series([k in loaded for k in weights]).mean() > 0.9
