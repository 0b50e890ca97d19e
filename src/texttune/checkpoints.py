"""Training checkpoints inside a run's work folder: which ones are complete, and what ``--resume`` continues.

A ``Trainer`` checkpoint is written file by file (weights, optimizer, scheduler, RNG state) and its
``trainer_state.json`` last, so a checkpoint whose state file is missing or cut short was being written
when the process died; resuming skips it and continues from the newest complete one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .artifacts import CHECKPOINT_DIR, MANIFEST_FILE, MODEL_WEIGHTS_FILE, RESUME_CONFIG_FILE, partial_dir
from .errors import ConfigError

logger = logging.getLogger(__name__)

#: ``Trainer``'s names inside a ``checkpoint-STEP`` folder. Its state file is written last: its presence
#: (as valid JSON) marks a complete checkpoint.
TRAINER_STATE_FILE = "trainer_state.json"
#: What a checkpoint needs besides its state file to continue training exactly.
CHECKPOINT_FILES = (MODEL_WEIGHTS_FILE, "optimizer.pt", "scheduler.pt", "rng_state.pth")
#: Options that may differ between the interrupted and the resumed run (they do not change the result).
RESUME_FREE_OPTIONS = ("resume", "overwrite", "progress", "output", "logging_steps", "use_cpu")

_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(folder: Path) -> int | None:
    """The global step of a ``checkpoint-STEP`` folder, or None for any other name."""
    match = _CHECKPOINT_NAME.match(folder.name)
    return int(match.group(1)) if match else None


def is_complete_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds every file of a checkpoint and a readable ``trainer_state.json``."""
    state = folder / TRAINER_STATE_FILE
    if not state.is_file() or not all((folder / name).is_file() for name in CHECKPOINT_FILES):
        return False
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def find_resume_checkpoint(work: Path) -> Path | None:
    """The newest complete checkpoint under ``work/checkpoints``; newer incomplete ones are removed.

    Args:
        work: The run's work folder (``.NAME.partial``).

    Returns:
        The checkpoint folder to pass to ``Trainer.train(resume_from_checkpoint=...)``, or None.

    Example:
        >>> find_resume_checkpoint(Path("runs/.a.partial"))  # doctest: +SKIP
        PosixPath('runs/.a.partial/checkpoints/checkpoint-40')
    """
    root = work / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    found = sorted(
        ((step, path) for path in root.iterdir() if (step := checkpoint_step(path)) is not None),
        reverse=True,
    )
    for step, path in found:
        if is_complete_checkpoint(path):
            return path
        # Trainer would write the same step into this folder again; start it from empty.
        logger.warning("skipping checkpoint %s at step %d: it was not completely written", path, step)
        shutil.rmtree(path, ignore_errors=True)
    return None


def has_checkpoint(work: Path) -> bool:
    """Whether ``work`` holds a complete checkpoint (so an interrupted run is worth keeping)."""
    root = work / CHECKPOINT_DIR
    return root.is_dir() and any(
        checkpoint_step(p) is not None and is_complete_checkpoint(p) for p in root.iterdir()
    )


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for section in config.values() for k, v in section.items()}
    return {k: v for k, v in flat.items() if k not in RESUME_FREE_OPTIONS}


def record_resume_config(work: Path, config: dict[str, Any]) -> None:
    """Store the run's options in its work folder so that ``--resume`` can check it continues the same run."""
    (work / RESUME_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def check_resume_config(work: Path, config: dict[str, Any]) -> None:
    """Refuse to resume with options that change the result (data, model, learning rate, ...).

    Raises:
        ConfigError: naming the first options that differ and both values.
    """
    path = work / RESUME_CONFIG_FILE
    if not path.is_file():
        return
    try:
        before = _comparable(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return
    now = _comparable(config)
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if changed:
        shown = ", ".join(
            f"--{k.replace('_', '-')} was {before.get(k)!r}, now {now.get(k)!r}" for k in changed[:3]
        )
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise ConfigError(
            f"--resume continues a run started with other options: {shown}{more}; "
            "give the same options, or start over with --overwrite instead of --resume"
        )


def clear_for_resume(work: Path) -> None:
    """Remove what a killed run left besides its checkpoints (e.g. a half-written final model)."""
    for path in work.iterdir():
        if path.name in (CHECKPOINT_DIR, RESUME_CONFIG_FILE):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def check_resumable(output: Path, config: dict[str, Any] | None = None) -> None:
    """Before any work: a finished run has nothing to resume, and a resumed run must keep its options.

    ``config`` (the resolved options) is compared with the interrupted run's when given.
    """
    if (output / MANIFEST_FILE).is_file():
        raise ConfigError(
            f"--resume: {output} is already a finished run, there is nothing to resume; "
            "choose another --output, or pass --overwrite instead of --resume to train it again"
        )
    work = partial_dir(output)
    if work.is_dir() and config is not None:
        check_resume_config(work, config)


def stash_checkpoints(work: Path) -> Path:
    """Move the checkpoints of a finished run out of its work folder (a rename: instant) and return where.

    They are deleted (:func:`remove_folder`) only after the run is in place, so a crash at any moment
    leaves either a checkpoint to resume from or the finished run.
    """
    trash = work.parent / f"{work.name}.old-checkpoints"
    remove_folder(trash)
    if (work / CHECKPOINT_DIR).exists():
        os.replace(work / CHECKPOINT_DIR, trash)
    (work / RESUME_CONFIG_FILE).unlink(missing_ok=True)
    return trash


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
