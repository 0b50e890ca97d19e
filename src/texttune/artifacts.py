"""The saved run: the one place that knows a run folder's files, writes them and checks them on load.

Every file name of a run folder is a constant here. Training hands :func:`save_run` the trained model,
its strategy, the tokenizer, the manifest and the training log; evaluations, the report, checkpoints and
exports write through the functions and names below. A run is written into a hidden work folder and
moved into place only when complete (:class:`AtomicDir`).

A run folder::

    texttune.json            RunManifest: task, labels, columns, strategy, resolved config, versions
    config.json              the classifier's transformers config (label names)
    model.safetensors        the weights (plain-weight strategies; the frozen base for freeze)
    head.safetensors/.json   --strategy freeze: the head and how to rebuild it
    adapter_*                adapter strategies: the adapter and the trained head
    tokenizer*.json          the tokenizer
    mlm_model/               --mlm-first: the masked-LM model the run was fine-tuned from
    training_log.json        Trainer's log history
    metrics.json, report.txt, confusion_matrix.png, validation.parquet    the final validation
    test_metrics.json        the test split's metrics
    report.html, *.png, README.md, tensorboard/                           the run report
    evaluations/NAME/        written by `texttune evaluate`
    onnx/                    written by `texttune export --onnx`
"""

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
MODEL_WEIGHTS_FILE = "model.safetensors"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
#: ``--strategy freeze``: the trained head's weights and its layout (plus the pooling rule).
HEAD_WEIGHTS_FILE = "head.safetensors"
HEAD_CONFIG_FILE = "head.json"
#: Adapter strategies (peft's names): the adapter with the trained classification head.
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
#: ``--mlm-first``: the model after masked-LM pretraining, which the run was fine-tuned from.
MLM_MODEL_DIR = "mlm_model"
#: The run report (``--no-report`` skips it) and ``--report-to tensorboard`` logs.
REPORT_HTML_FILE = "report.html"
MODEL_CARD_FILE = "README.md"
LEARNING_CURVES_FILE = "learning_curves.png"
PER_CLASS_F1_FILE = "per_class_f1.png"
LABEL_DISTRIBUTION_FILE = "label_distribution.png"
RELIABILITY_FILE = "reliability.png"
RISK_COVERAGE_FILE = "risk_coverage.png"
#: Single-label runs: the test split's (else validation's) most confident mistakes, most confused pairs
#: and accuracy by text length (see :mod:`texttune.analysis`), and the test confusion matrix.
ERROR_ANALYSIS_FILE = "error_analysis.json"
TEST_CONFUSION_MATRIX_FILE = "test_confusion_matrix.png"
#: ``texttune train --audit``: the audit of the training data (issues.csv, audit.json, audit.html).
AUDIT_DIR = "audit"
TENSORBOARD_DIR = "tensorboard"
#: Inside the work folder of an unfinished run: Trainer checkpoints and the options they were made with.
CHECKPOINT_DIR = "checkpoints"
RESUME_CONFIG_FILE = "resume_config.json"
#: ``texttune evaluate`` writes each evaluation into ``evaluations/NAME/``.
EVALUATIONS_DIR = "evaluations"
#: ``texttune export --onnx``: the ONNX model and how it was made, in a run or a stand-alone folder.
ONNX_DIR = "onnx"
ONNX_MODEL_FILE = "model.onnx"
EXPORT_INFO_FILE = "export.json"

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
    #: Temperature scaling fitted on validation (multi-label: one per label); None: probabilities as trained.
    temperature: float | list[float] | None = None
    #: How texts longer than ``max_length`` are encoded: truncate, head-tail or sliding (with ``stride``).
    long_text: str = "truncate"
    stride: int | None = None
    #: A student of ``texttune distill``: the teacher run, the student kind (static, layers:N), the
    #: temperature and alpha it was trained with, and its training rows; None for a trained run.
    distillation: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = RUN_FORMAT_VERSION
    created: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def for_data(cls, data, *, max_length: int, base_model: str, **fields: Any) -> RunManifest:
        """The manifest of a run trained on ``data`` (a :class:`~texttune.data.PreparedData`).

        Args:
            data: The prepared data: task, label names and columns come from it.
            max_length: The truncation length the model was trained with.
            base_model: What ``--model`` named.
            **fields: Any other field (``strategy``, ``config``, parameter counts, ...).
        """
        return cls(
            task=data.task,
            label_names=data.label_names,
            text_column=data.text_column,
            text_pair_column=data.text_pair_column,
            label_column=data.label_column,
            max_length=max_length,
            base_model=base_model,
            **fields,
        )


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


def base_model_path(folder: Path, manifest, fix: str) -> str:
    """The model the run in ``folder`` was fine-tuned from: its continued-pretraining model
    (``mlm_model/``) if it has one, else ``manifest.base_model``.

    Raises:
        ModelError: The base model cannot be loaded; the message names the run, the model and ``fix``.
    """
    from .modeling import resolve_model_path

    adapted = folder / MLM_MODEL_DIR
    if adapted.is_dir():
        return str(adapted)
    try:
        return resolve_model_path(manifest.base_model)
    except ModelError as exc:
        raise ModelError(
            f"the {manifest.strategy} run {folder} needs its base model {manifest.base_model!r}, "
            f"which cannot be loaded ({exc}); {fix}"
        ) from None


def require_files(folder: Path, names: list[str]) -> None:
    missing = [name for name in names if not (folder / name).exists()]
    if missing:
        raise ModelError(f"run folder {folder} is incomplete: missing {', '.join(missing)}; retrain the run")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_safetensors(path: Path, state_dict: dict[str, Any]) -> None:
    """Save tensors with safetensors (contiguous copies: it refuses views that share storage)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in state_dict.items()}, str(path))


def save_run(
    work: Path,
    *,
    model,
    tokenizer,
    manifest: RunManifest,
    log_history: list[dict[str, Any]],
    state_dict: dict[str, Any] | None = None,
    mlm_folder: Path | None = None,
) -> None:
    """Write a trained run's model, tokenizer, manifest and training log into its work folder.

    The strategy the manifest names writes the weights its way (see :meth:`Strategy.save
    <texttune.strategies.Strategy.save>`).

    Args:
        work: The run's work folder (from :class:`AtomicDir`).
        model: The trained (prepared) model.
        tokenizer: The tokenizer the model was trained with.
        manifest: What the run is.
        log_history: ``Trainer.state.log_history``.
        state_dict: The full weights gathered from FSDP/DeepSpeed shards, when training was sharded.
        mlm_folder: ``--mlm-first``'s model folder, moved into the run as ``mlm_model/``.
    """
    from .strategies import get_strategy

    # Weights go through save_pretrained, never Trainer.save_model (it adds a pickled training_args.bin).
    get_strategy(manifest.strategy).save(model, work)
    if state_dict is not None:
        model.save_pretrained(str(work), state_dict=state_dict)
    tokenizer.save_pretrained(str(work))
    if mlm_folder is not None:
        shutil.move(str(mlm_folder), str(work / MLM_MODEL_DIR))
    write_manifest(work, manifest)
    write_json(work / TRAINING_LOG_FILE, log_history)


def write_evaluation(folder: Path, metrics: dict[str, Any], label_names: list[str], title: str) -> None:
    """An evaluation's ``metrics.json``, ``report.txt`` and ``confusion_matrix.png`` (titled ``title``)."""
    from .metrics import format_report, plot_confusion_matrix

    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / METRICS_FILE, metrics)
    (folder / REPORT_FILE).write_text(format_report(metrics) + "\n", encoding="utf-8")
    if "confusion_matrix" in metrics:
        plot_confusion_matrix(metrics["confusion_matrix"], label_names, folder / CONFUSION_MATRIX_FILE, title)


def write_analysis(folder: Path, analysis: dict[str, Any] | None, split: str) -> None:
    """A split's error analysis (see :mod:`texttune.analysis`) as ``error_analysis.json``; None: nothing."""
    if analysis is not None:
        write_json(folder / ERROR_ANALYSIS_FILE, {"split": split, **analysis})


def read_analysis(folder: Path) -> dict[str, Any] | None:
    """The error analysis :func:`write_analysis` kept in ``folder``, or None."""
    path = folder / ERROR_ANALYSIS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_audit_summary(run: Path) -> dict[str, Any] | None:
    """The summary (``audit.json``) of a run trained with ``--audit``, or None."""
    path = run / AUDIT_DIR / "audit.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_validation_split(folder: Path, dataset) -> None:
    """Keep the validation split, so that ``texttune evaluate RUN`` reproduces ``metrics.json`` exactly."""
    dataset.to_parquet(str(folder / VALIDATION_DATA_FILE))


def read_validation_split(folder: Path):
    """The validation split a run kept (see :func:`write_validation_split`)."""
    from datasets import Dataset

    require_files(folder, [VALIDATION_DATA_FILE])
    return Dataset.from_parquet(str(folder / VALIDATION_DATA_FILE))


def copy_run_description(run: Path, folder: Path) -> None:
    """What a predictor needs besides the model: the manifest, the model config and the tokenizer."""
    from .tokenization import load_tokenizer

    for name in (MANIFEST_FILE, MODEL_CONFIG_FILE):
        shutil.copy2(run / name, folder / name)
    load_tokenizer(str(run)).save_pretrained(str(folder))
