"""The saved run: what a run folder holds, how it is written atomically, and how it is checked on load."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelError

logger = logging.getLogger(__name__)

#: File names inside a run folder.
MANIFEST_FILE = "texttune.json"
METRICS_FILE = "metrics.json"
TEST_METRICS_FILE = "test_metrics.json"
TRAINING_LOG_FILE = "training_log.json"
VALIDATION_DATA_FILE = "validation.parquet"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
REPORT_FILE = "report.txt"
MODEL_CONFIG_FILE = "config.json"
#: ``--mlm-first``: the model after masked-LM pretraining, which the run was fine-tuned from.
MLM_MODEL_DIR = "mlm_model"

#: Suffix of the hidden work folder a run is written into before it is renamed into place.
PARTIAL_SUFFIX = ".partial"

#: Version of the run folder layout; bumped when a reader of older runs would misread a newer one.
RUN_FORMAT_VERSION = 1


@dataclass
class RunManifest:
    """What a run is: enough to load it, predict label names and re-evaluate it."""

    task: str
    label_names: list[str]
    text_column: str
    text_pair_column: str | None
    label_column: str
    max_length: int
    base_model: str
    strategy: str = "full"
    threshold: float = 0.5
    trainable_parameters: int = 0
    total_parameters: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    #: Multi-label: one decision threshold per label (tuned on validation); None uses ``threshold``.
    thresholds: list[float] | None = None
    #: How texts longer than ``max_length`` are encoded: truncate, head-tail or sliding (with ``stride``).
    long_text: str = "truncate"
    stride: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = RUN_FORMAT_VERSION
    created: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("texttune", "torch", "transformers", "datasets", "peft", "accelerate", "scikit-learn"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return versions


def check_output_dir(output: str | Path, overwrite: bool) -> Path:
    """Refuse to replace a non-empty folder unless ``--overwrite``; called before any work starts."""
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output {path} is a file; give a folder path")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(
            f"output folder {path} is not empty; pass --overwrite to replace it or choose another --output"
        )
    return path


class AtomicDir:
    """Write a folder under a work name and move it into place only when complete.

    The work folder is the hidden sibling ``.NAME.partial``: a crash leaves at most that, never a
    half-written ``NAME``. Its name is fixed so that every process of a distributed run, and a resumed
    run, finds the same folder.

    Example:
        >>> with AtomicDir("runs/a", overwrite=True) as work:  # doctest: +SKIP
        ...     (work / "file").write_text("x")
    """

    def __init__(
        self,
        target: str | Path,
        overwrite: bool = False,
        *,
        keep_partial: bool = False,
        keep_on_error: Callable[[Path], bool] | None = None,
    ):
        """
        Args:
            target: The folder to write.
            overwrite: Replace ``target`` if it already holds files.
            keep_partial: Reuse a work folder left by an earlier attempt (resume) and keep it on error.
            keep_on_error: Called with the work folder when the block fails; keep the folder when it
                returns True (e.g. it holds a checkpoint to resume from).
        """
        self.target = Path(target)
        self.overwrite = overwrite
        self.keep_partial = keep_partial
        self.keep_on_error = keep_on_error
        self.work = partial_dir(self.target)

    def __enter__(self) -> Path:
        check_output_dir(self.target, self.overwrite)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        if self.work.exists() and not self.keep_partial:
            shutil.rmtree(self.work)
        self.work.mkdir(exist_ok=True)
        return self.work

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            keep = self.keep_partial or (self.keep_on_error is not None and self.keep_on_error(self.work))
            if keep:
                logger.warning("kept the unfinished run in %s; continue it with --resume", self.work)
            else:
                shutil.rmtree(self.work, ignore_errors=True)
            return
        self.commit()

    def commit(self) -> None:
        """Move the finished work folder into place, replacing an old run only with ``overwrite``."""
        old = None
        if self.target.exists():
            check_output_dir(self.target, self.overwrite)
            old = self.target.parent / f".{self.target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.target, old)
        os.replace(self.work, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def partial_dir(target: str | Path) -> Path:
    """The work folder of a run that is being written: ``.NAME.partial`` beside ``NAME``."""
    target = Path(target)
    return target.parent / f".{target.name}{PARTIAL_SUFFIX}"


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_manifest(folder: Path, manifest: RunManifest) -> None:
    manifest.created = manifest.created or time.strftime("%Y-%m-%dT%H:%M:%S%z")
    manifest.versions = manifest.versions or library_versions()
    (folder / MANIFEST_FILE).write_text(manifest.to_json() + "\n", encoding="utf-8")


def read_manifest(run: str | Path) -> RunManifest:
    """Read and check a run folder's manifest; names the missing file when the folder is not a complete run."""
    folder = Path(run)
    if not folder.exists():
        raise ModelError(f"run folder not found: {folder}")
    if not folder.is_dir():
        raise ModelError(
            f"{folder} is a file, not a run folder (give the --output folder of `texttune train`)"
        )
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file() and folder.name.startswith(".") and folder.name.endswith(PARTIAL_SUFFIX):
        raise ModelError(
            f"{folder} is the work folder of an unfinished run ({MANIFEST_FILE} is missing); finish it with "
            "`texttune train ... --resume` and load the folder named without the dot and .partial"
        )
    if not manifest_path.is_file():
        hint = (
            "it looks like a plain transformers model; fine-tune it with `texttune train --model` first"
            if (folder / MODEL_CONFIG_FILE).is_file()
            else "give the --output folder of `texttune train`"
        )
        raise ModelError(f"{folder} is not a texttune run: {MANIFEST_FILE} is missing ({hint})")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{manifest_path} is corrupt ({exc}); retrain the run") from None
    version = raw.get("format_version")
    if version != RUN_FORMAT_VERSION:
        raise ModelError(
            f"{folder} was written in run format {version}, this texttune reads format {RUN_FORMAT_VERSION}; "
            "retrain it or use the texttune version listed in its texttune.json"
        )
    known = set(RunManifest.__dataclass_fields__)
    try:
        manifest = RunManifest(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        raise ModelError(f"{manifest_path} is incomplete ({exc}); retrain the run") from None
    return manifest


def require_files(folder: Path, names: list[str]) -> None:
    missing = [name for name in names if not (folder / name).exists()]
    if missing:
        raise ModelError(f"run folder {folder} is incomplete: missing {', '.join(missing)}; retrain the run")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
