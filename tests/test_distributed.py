from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from texttune import Predictor
from texttune.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _distinct_reviews(make_review, path: Path, n: int) -> str:
    rng = random.Random(11)
    texts: dict[str, str] = {}
    while len(texts) < n:
        positive = len(texts) % 2 == 0
        texts.setdefault(make_review(rng, positive), "positive" if positive else "negative")
    pd.DataFrame({"text": list(texts), "label": list(texts.values())}).to_csv(path, index=False)
    return str(path)


LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    # --multi_gpu starts 2 processes on a CPU-only machine too (--cpu would start one)
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no"],
}  # fmt: skip


@pytest.mark.parametrize("launcher", ["torchrun", pytest.param("accelerate", marks=pytest.mark.slow)])
def test_two_cpu_processes_share_the_data_and_rank0_writes(launcher, tiny_bert, tmp_path, make_review):
    data = _distinct_reviews(make_review, tmp_path / "reviews.csv", 60)
    out = tmp_path / "run"
    shards = tmp_path / "shards"
    env = dict(
        os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=SRC, TEXTTUNE_SHARD_LOG=str(shards)
    )
    command = [
        sys.executable, *LAUNCHERS[launcher],
        "-m", "texttune", "train", "--data", data, "--model", tiny_bert, "--output", str(out),
        "--epochs", "1", "--batch-size", "8", "--max-length", "32", "--validation-split", "0.2",
        "--learning-rate", "1e-3", "--no-progress", "--strategy", "full",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    # each process got its own half of the 48 training rows
    rows = {r: json.loads((shards / f"rank-{r}.json").read_text())["rows"] for r in (0, 1)}
    seen = {r: {i for i in rows[r] if i >= 0} for r in rows}  # -1: validation batches
    assert len(seen[0]) == len(seen[1]) == 24
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(48))

    # one optimizer step per pair of batches: 48 rows / (8 per process x 2 processes) = 3 steps, not 6
    log = json.loads((out / "training_log.json").read_text())
    assert max(row["step"] for row in log) == 3
    # the loss is the batches' mean (about ln 2 for two classes), not the process count times it
    assert 0.3 < log[-1]["train_loss"] < 1.0

    # only process 0 wrote the run and reported it
    assert done.stdout.count("run saved to") == 1
    assert done.stderr.count("run written to") == 1
    assert "process 1 of 2: the run is written by process 0" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv", "run", "shards"]
    assert (out / "report.html").is_file() and not (out / "checkpoints").exists()

    predictor = Predictor.load(out)
    assert predictor.predict(["good fun film"])[0].label in {"negative", "positive"}
    assert json.loads((out / "metrics.json").read_text())["samples"] == 12


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--deepspeed", "missing.json"], "--deepspeed config file not found: missing.json"),
        (["--fsdp", "full_shard", "--deepspeed", "ds.json"], "give --fsdp or --deepspeed, not both"),
        (["--deepspeed", "ds.json"], "--deepspeed needs the deepspeed package: pip install deepspeed"),
        (["--deepspeed", "bad.json"], "--deepspeed bad.json is not a readable JSON file"),
    ],
)
def test_engine_option_errors(extra, message, reviews_csv, tmp_path, monkeypatch, capsys):
    if "package" in message:
        pytest.importorskip("texttune")  # keeps the parametrisation readable
        if __import__("importlib").util.find_spec("deepspeed") is not None:
            pytest.skip("deepspeed is installed here")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ds.json").write_text("{}")
    (tmp_path / "bad.json").write_text("zero: 2")
    assert main(["train", "--data", reviews_csv, "--output", "out", *extra]) == 2
    assert message in capsys.readouterr().err


def test_engine_and_tracker_options_reach_training_arguments(tmp_path, monkeypatch):
    from texttune import RunConfig, TrainConfig
    from texttune.distributed import needs_cpu_backend
    from texttune.training import build_training_arguments

    config = RunConfig(
        train=TrainConfig(output="x", fsdp="full_shard", report_to="tensorboard, wandb", use_cpu=True)
    )
    args = build_training_arguments(config, tmp_path, "single_label", True)
    assert args.fsdp and args.fsdp_config["reshard_after_forward"] is True
    assert args.report_to == ["tensorboard", "wandb"]

    assert not needs_cpu_backend()  # a plain single process keeps its device choice
    monkeypatch.setenv("WORLD_SIZE", "2")
    import torch

    assert needs_cpu_backend() == (not torch.cuda.is_available())  # gloo on CPUs needs use_cpu=True
