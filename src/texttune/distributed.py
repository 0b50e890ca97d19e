"""Running one training job as several processes (``torchrun`` / ``accelerate launch``): DDP, FSDP, DeepSpeed.

Every process builds the same data, model and ``Trainer``; the Trainer shards the training batches and
synchronises gradients. Only the main process (global rank 0) writes the run folder; the others wait at
barriers so that none of them returns before the run exists. Multi-node runs need ``--output`` on a file
system that every node sees (the best checkpoint is reloaded by every process at the end).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .artifacts import AtomicDir
from .errors import ConfigError

logger = logging.getLogger(__name__)

#: Test hook: when set to a folder, each process writes the training rows it was given in the first
#: epoch to ``rank-N.json`` there (used to show that processes see different shards).
SHARD_LOG_ENV = "TEXTTUNE_SHARD_LOG"


def launched_world_size() -> int:
    """Processes in this job as set by the launcher (``WORLD_SIZE``); 1 when started plainly."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def needs_cpu_backend() -> bool:
    """True for a multi-process job on a machine without CUDA.

    ``TrainingArguments`` must then get ``use_cpu=True`` (accelerate picks gloo); without it each process
    silently trains on its own.
    """
    import torch

    return launched_world_size() > 1 and not torch.cuda.is_available()


def check_engine_options(fsdp: str | None, deepspeed: str | None) -> None:
    """Fail early, with the fix, when FSDP/DeepSpeed are asked for but cannot run."""
    if fsdp and deepspeed:
        raise ConfigError("give --fsdp or --deepspeed, not both")
    if deepspeed:
        try:
            json.loads(Path(deepspeed).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--deepspeed {deepspeed} is not a readable JSON file: {exc}") from None
        try:
            import deepspeed as _  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--deepspeed needs the deepspeed package: pip install deepspeed (on a machine with CUDA)"
            ) from None


@contextmanager
def run_folder(target: Path, overwrite: bool, args, **atomic_options: Any) -> Iterator[Path]:
    """The run's work folder for every process; only the main process creates, fills and commits it.

    The main process prepares ``.NAME.partial`` before the others go on (they only read from it, e.g. the
    best checkpoint), and the others leave only after the main process has moved the run into place.
    ``atomic_options`` go to :class:`~texttune.artifacts.AtomicDir`.
    """
    if args.world_size <= 1:
        with AtomicDir(target, overwrite=overwrite, **atomic_options) as work:
            yield work
        return
    state = args.distributed_state
    main = args.process_index == 0
    atomic = AtomicDir(target, overwrite=overwrite, **atomic_options)
    if main:
        atomic.__enter__()
    state.wait_for_everyone()
    try:
        yield atomic.work
    except BaseException as exc:
        if main:
            atomic.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if main:
        atomic.commit()
    state.wait_for_everyone()


def gathered_state_dict(trainer) -> dict[str, Any] | None:
    """The full model weights under FSDP/DeepSpeed (a collective: every process must call it); else None.

    Plain DDP and single-process runs keep the whole model on each process, so ``save_pretrained`` needs
    no help there.
    """
    args = trainer.args
    if not (args.fsdp or args.deepspeed):
        return None
    return trainer.accelerator.get_state_dict(trainer.model_wrapped)


def shard_logging_collator(collator, train_dataset, folder: str, rank: int):
    """Wrap a collator to record which training rows this process receives (see :data:`SHARD_LOG_ENV`).

    Rows are recognised by their token ids, so the training texts should be distinct.
    """
    row_of = {tuple(ids): i for i, ids in enumerate(train_dataset["input_ids"])}
    seen: list[int] = []
    path = Path(folder) / f"rank-{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)

    def collate(features):
        if len(seen) < len(row_of):
            seen.extend(row_of.get(tuple(f["input_ids"]), -1) for f in features)
            path.write_text(json.dumps({"rank": rank, "rows": seen}), encoding="utf-8")
        return collator(features)

    return collate
