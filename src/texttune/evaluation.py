"""Evaluate a saved run on new labelled data or on its own validation split."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifacts import EVALUATIONS_DIR, read_manifest, read_validation_split, write_evaluation
from .config import DataConfig, EvaluateConfig
from .data import load_labelled
from .data.splits import subset

logger = logging.getLogger(__name__)

#: Seed of the --max-eval-samples subset of a run's stored validation split.
_EVALUATION_SEED = 42


@dataclass
class EvaluationResult:
    name: str
    metrics: dict[str, Any]
    output: Path


def evaluate_run(
    run: str | Path,
    *,
    data: str | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    label_delimiter: str | None = None,
    max_eval_samples: int | None = None,
    encoding: str = "utf-8",
    output: str | Path | None = None,
    batch_size: int = 64,
    backend: str = "auto",
) -> EvaluationResult:
    """Evaluate ``run`` and write ``metrics.json``, ``report.txt`` and ``confusion_matrix.png``.

    Without ``data`` the run's stored validation split is used, which reproduces the run's
    ``metrics.json`` exactly (with ``backend="torch"``; ``auto`` evaluates the run's ONNX export when it
    has one, as ``texttune predict`` would use it). ``max_eval_samples`` takes a seeded random subset of
    the evaluation rows (seed 42 for the stored split), as :func:`texttune.data.splits.subset` draws it.

    Example:
        >>> evaluate_run("runs/demo", data="reviews.csv").metrics["accuracy"]  # doctest: +SKIP
    """
    from .inference import Predictor

    EvaluateConfig(  # validates every option, as the command line does
        data=data,
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
        label_delimiter=label_delimiter,
        max_eval_samples=max_eval_samples,
        encoding=encoding,
        output=None if output is None else str(output),
        batch_size=batch_size,
        backend=backend,
    )
    folder = Path(run)
    manifest = read_manifest(folder)
    if data is None:
        dataset = subset(read_validation_split(folder), max_eval_samples, seed=_EVALUATION_SEED)
        name = "validation"
    else:
        cfg = DataConfig(
            data=data,
            text_column=text_column,
            text_pair_column=text_pair_column,
            label_column=label_column,
            label_delimiter=label_delimiter,
            max_eval_samples=max_eval_samples,
            encoding=encoding,
        )
        dataset = load_labelled(
            data,
            cfg,
            task=manifest.task,
            label_names=manifest.label_names,
            text_column=text_column or manifest.text_column,
            text_pair_column=text_pair_column or manifest.text_pair_column,
            label_column=label_column or manifest.label_column,
        )
        name = _slug(data)
    predictor = Predictor.load(folder, batch_size=batch_size, backend=backend)
    metrics = predictor.evaluate(dataset)
    out = Path(output) if output else folder / EVALUATIONS_DIR / name
    write_evaluation(out, metrics, manifest.label_names, name)
    logger.info("evaluation of %s on %s written to %s", folder, name, out)
    return EvaluationResult(name=name, metrics=metrics, output=out)


def _slug(source: str) -> str:
    stem = Path(source).name
    for suffix in (".bz2", ".gz", ".csv", ".tsv", ".jsonl", ".json", ".parquet"):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "data"
