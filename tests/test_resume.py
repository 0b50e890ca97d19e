"""Crash and resume: a real training process is killed with SIGKILL and continued with --resume."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from texttune import train
from texttune.checkpoints import (
    RESUME_CONFIG_FILE,
    TRAINER_STATE_FILE,
    find_resume_checkpoint,
    is_complete_checkpoint,
)
from texttune.cli import main
from texttune.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src"
#: Varying measurements, not results of training.
TIMING_KEYS = {"train_seconds", "train_samples_per_second"}


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=str(SRC),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )


def _command(model: str, data: str, output: Path) -> list[str]:
    # 60 training rows / batch 4 = 15 steps per epoch, 30 in all; a checkpoint every 3 steps.
    return [
        sys.executable, "-m", "texttune", "train", "--data", data, "--model", model, "--output", str(output),
        "--epochs", "2", "--batch-size", "4", "--learning-rate", "1e-3", "--max-length", "32",
        "--validation-split", "0.25", "--save-steps", "3", "--use-cpu", "--no-progress", "--resume",
        "--strategy", "full",
    ]  # fmt: skip


def _complete_steps(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return [
        int(p.name.split("-")[1]) for p in root.glob("checkpoint-*") if (p / TRAINER_STATE_FILE).is_file()
    ]


def test_sigkill_at_a_random_step_then_resume_matches_an_uninterrupted_run(tiny_bert, tmp_path, review_frame):
    data = tmp_path / "reviews.csv"
    review_frame(80).to_csv(data, index=False)
    seed = int(os.environ.get("TEXTTUNE_KILL_SEED", random.randrange(10_000)))
    target = random.Random(seed).randrange(3, 24)  # kill after the first checkpoint at or past this step
    print(f"kill seed {seed}: kill once a checkpoint at step >= {target} exists")

    full_out, killed_out = tmp_path / "full", tmp_path / "killed"
    victim = subprocess.Popen(
        _command(tiny_bert, str(data), killed_out),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    work = tmp_path / ".killed.partial"

    def kill_at_target() -> None:
        deadline = time.monotonic() + 180
        while victim.poll() is None and time.monotonic() < deadline:
            if max(_complete_steps(work / "checkpoints"), default=0) >= target:
                time.sleep(random.Random(seed).uniform(0, 0.05))  # land anywhere in the next steps
                victim.send_signal(signal.SIGKILL)
                return
            time.sleep(0.005)
        victim.kill()

    killer = threading.Thread(target=kill_at_target)
    killer.start()
    # Meanwhile the uninterrupted run, in this process, with the subprocess's single thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_command(tiny_bert, str(data), full_out)[3:] + ["--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    killer.join()
    assert victim.wait(timeout=60) == -signal.SIGKILL, "training finished before it could be killed"
    assert not killed_out.exists(), "a killed run must not appear under its final name"
    newest = max(_complete_steps(work / "checkpoints"))
    assert newest >= target

    # A checkpoint that was being written when the process died: resuming must skip it.
    torn = work / "checkpoints" / f"checkpoint-{newest + 3}"
    shutil.copytree(work / "checkpoints" / f"checkpoint-{newest}", torn, dirs_exist_ok=True)
    (torn / TRAINER_STATE_FILE).unlink()

    resumed = subprocess.run(
        _command(tiny_bert, str(data), killed_out), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {work / 'checkpoints' / f'checkpoint-{newest}'}" in resumed.stderr
    assert f"skipping checkpoint {torn}" in resumed.stderr

    # Same weights, bit for bit: model, optimizer, scheduler, RNG and data order all continued exactly.
    full_weights = load_file(full_out / "model.safetensors")
    resumed_weights = load_file(killed_out / "model.safetensors")
    assert full_weights.keys() == resumed_weights.keys()
    for name, tensor in full_weights.items():
        assert torch.equal(tensor, resumed_weights[name]), name
    full_metrics = json.loads((full_out / "metrics.json").read_text())
    resumed_metrics = json.loads((killed_out / "metrics.json").read_text())
    for key in set(full_metrics) - TIMING_KEYS:
        assert resumed_metrics[key] == full_metrics[key], key
    full_log = json.loads((full_out / "training_log.json").read_text())
    resumed_log = json.loads((killed_out / "training_log.json").read_text())
    evals = [{k: v for k, v in e.items() if k.startswith("eval_") and "runtime" not in k and "per_second" not in k} for e in full_log if "eval_loss" in e]  # fmt: skip
    again = [{k: v for k, v in e.items() if k in evals[0]} for e in resumed_log if "eval_loss" in e]
    assert again == evals
    # The finished run holds no checkpoints and no work folder is left.
    assert not (killed_out / "checkpoints").exists() and not (killed_out / RESUME_CONFIG_FILE).exists()
    assert not work.exists() and not list(tmp_path.glob(".killed*"))


def test_a_failed_run_keeps_its_checkpoints_and_resume_checks_options(
    tiny_bert, reviews_csv, tmp_path, monkeypatch, run_config
):
    from texttune import trainer as trainer_module

    def crash_after_first_checkpoint(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt

    original = trainer_module.TexttuneTrainer._save_checkpoint
    monkeypatch.setattr(trainer_module.TexttuneTrainer, "_save_checkpoint", crash_after_first_checkpoint)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(run_config(tiny_bert, reviews_csv, out, save_steps=1))
    work = tmp_path / ".run.partial"
    assert not out.exists()
    assert find_resume_checkpoint(work) == work / "checkpoints" / "checkpoint-1"
    monkeypatch.undo()

    with pytest.raises(
        ConfigError,
        match=r"--resume continues a run started with other options: --learning-rate was 0.001, now 0.01; "
        r"give the same options, or start over with --overwrite",
    ):
        train(run_config(tiny_bert, reviews_csv, out, save_steps=1, learning_rate=1e-2, resume=True))
    result = train(run_config(tiny_bert, reviews_csv, out, save_steps=1, resume=True))
    assert result.log_history[-1]["step"] == 3 and (out / "texttune.json").is_file()
    with pytest.raises(ConfigError, match=r"--resume: .*run is already a finished run, there is nothing"):
        train(run_config(tiny_bert, reviews_csv, out, save_steps=1, resume=True))


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(
    tiny_bert, reviews_csv, tmp_path, monkeypatch, run_config
):
    from texttune import trainer as trainer_module

    def crash(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(trainer_module.TexttuneTrainer, "training_step", crash)
    with pytest.raises(RuntimeError, match="boom"):
        train(run_config(tiny_bert, reviews_csv, tmp_path / "run"))
    assert list(tmp_path.iterdir()) == [Path(reviews_csv)]


def test_resume_without_a_checkpoint_trains_from_the_start(
    tiny_bert, reviews_csv, tmp_path, caplog, run_config
):
    with caplog.at_level("WARNING", logger="texttune.training"):
        result = train(run_config(tiny_bert, reviews_csv, tmp_path / "run", resume=True))
    assert "--resume: no complete checkpoint" in caplog.text
    assert (result.output / "texttune.json").is_file()


def test_checkpoint_completeness(tmp_path):
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (folder / name).write_bytes(b"x")
    assert not is_complete_checkpoint(folder)
    (folder / TRAINER_STATE_FILE).write_text('{"global_step": 3', encoding="utf-8")  # cut short
    assert not is_complete_checkpoint(folder)
    (folder / TRAINER_STATE_FILE).write_text('{"global_step": 3}', encoding="utf-8")
    assert is_complete_checkpoint(folder)
    (folder / "optimizer.pt").unlink()
    assert not is_complete_checkpoint(folder)


def test_a_new_run_without_resume_says_it_discards_old_checkpoints(
    tiny_bert, reviews_csv, tmp_path, monkeypatch, caplog, run_config
):
    from texttune import trainer as trainer_module

    checkpoint = tmp_path / ".run.partial" / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (checkpoint / name).write_bytes(b"x")
    (checkpoint / TRAINER_STATE_FILE).write_text("{}", encoding="utf-8")

    def stop(self, *args, **kwargs):
        raise RuntimeError("stopped before training")

    monkeypatch.setattr(trainer_module.TexttuneTrainer, "train", stop)
    with caplog.at_level("WARNING", logger="texttune.training"), pytest.raises(RuntimeError):
        train(run_config(tiny_bert, reviews_csv, tmp_path / "run"))
    assert "discarding the checkpoints of an unfinished run in" in caplog.text
    assert "(pass --resume to continue it)" in caplog.text
    assert not checkpoint.exists()
