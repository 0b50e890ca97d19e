"""Evaluate a saved run on new labelled data or on its own validation split."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifacts import EVALUATIONS_DIR, read_manifest, read_validation_split, write_analysis, write_evaluation
from .config import DataConfig, EvaluateConfig
from .data import load_labelled
from .data.readers import COMPRESSIONS, READERS
from .data.splits import subset
from .options import require_single_label

logger = logging.getLogger(__name__)

#: Seed of the --max-eval-samples subset of a run's stored validation split.
_EVALUATION_SEED = 42
#: The options of an evaluation that say how to read its data file (the rest say where and how to run).
_DATA_OPTIONS = (
    "text_column",
    "text_pair_column",
    "label_column",
    "label_delimiter",
    "max_eval_samples",
    "encoding",
)


@dataclass
class EvaluationResult:
    name: str
    metrics: dict[str, Any]
    output: Path
    #: ``--report``: the HTML page written.
    report: Path | None = None


def evaluate_run(run: str | Path, **options: Any) -> EvaluationResult:
    """Evaluate ``run`` and write ``metrics.json``, ``report.txt`` and ``confusion_matrix.png``.

    Without ``data`` the run's stored validation split is used, which reproduces the run's
    ``metrics.json`` exactly (with ``backend="torch"``; ``auto`` evaluates the run's ONNX export when it
    has one, as ``texttune predict`` would use it). ``max_eval_samples`` takes a seeded random subset of
    the evaluation rows (seed 42 for the stored split), as :func:`texttune.data.splits.subset` draws it.

    Args:
        run: A run folder.
        **options: Fields of :class:`~texttune.config.EvaluateConfig` (``data``, ``text_column``,
            ``label_column``, ``max_eval_samples``, ``output``, ``batch_size``, ``backend``, ...), validated
            as on the command line.

    Returns:
        The :class:`EvaluationResult`.

    Example:
        >>> evaluate_run("runs/demo", data="reviews.csv").metrics["accuracy"]  # doctest: +SKIP
    """
    from .inference import Predictor

    if options.get("output") is not None:
        options["output"] = str(options["output"])
    config = EvaluateConfig(**options)
    folder = Path(run)
    manifest = read_manifest(folder)
    require_single_label("target_accuracy", config.target_accuracy, manifest.task)
    if config.data is None:
        dataset = subset(read_validation_split(folder), config.max_eval_samples, seed=_EVALUATION_SEED)
        name = "validation"
    else:
        columns = {
            "text_column": config.text_column or manifest.text_column,
            "text_pair_column": config.text_pair_column or manifest.text_pair_column,
            "label_column": config.label_column or manifest.label_column,
        }
        data_options = {name: getattr(config, name) for name in _DATA_OPTIONS}
        dataset = load_labelled(
            config.data,
            DataConfig(data=config.data, **data_options),
            task=manifest.task,
            label_names=manifest.label_names,
            **columns,
        )
        name = _slug(config.data)
    predictor = Predictor.load(
        folder, batch_size=config.batch_size, backend=config.backend, min_confidence=config.min_confidence
    )
    metrics = predictor.evaluate(
        dataset, target_accuracy=config.target_accuracy, analysis=bool(config.report)
    )
    analysis = metrics.pop("analysis", None)
    out = Path(config.output) if config.output else folder / EVALUATIONS_DIR / name
    write_evaluation(out, metrics, manifest.label_names, name)
    write_analysis(out, analysis, name)
    page = None
    if config.report:
        from .report import write_evaluation_report

        page = write_evaluation_report(config.report, str(run), name, manifest.label_names, metrics, analysis)
    logger.info("evaluation of %s on %s written to %s", folder, name, out)
    return EvaluationResult(name=name, metrics=metrics, output=out, report=page)


def _slug(source: str) -> str:
    stem = Path(source).name
    for suffix in (*COMPRESSIONS, *READERS):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "data"
