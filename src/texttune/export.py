"""Export a run to ONNX (optionally int8-quantized) and check that it predicts like the PyTorch model.

Why not ``optimum``: it does not import with transformers 5. The legacy ``torch.onnx.export`` tracer
(``dynamo=False``) on a model loaded with eager attention gives a graph that ONNX Runtime's transformer
optimizer fuses into its ``Attention`` kernels; the dynamo exporter and SDPA attention fuse only in part.

An int8 export must keep its accuracy: it is checked against the run's PyTorch model on labelled rows
(the run's validation split, or ``--data``) and kept only within ``--max-accuracy-drop``. The variants
tried, in order: the weight type that suits this CPU (:func:`texttune.hardware.int8_weight_type`), the
other one, then the better of the two with more and more of the most sensitive matrices kept in fp32
(:func:`texttune.quantization.rank_by_int8_error`), up to half of them. Beyond that an int8 model saves
little over fp32, so the export stops with an :class:`~texttune.errors.AccuracyError` instead.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import (
    EXPORT_INFO_FILE,
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    ONNX_DIR,
    ONNX_MODEL_FILE,
    VALIDATION_DATA_FILE,
    copy_run_description,
    partial_dir,
    read_manifest,
    read_validation_split,
    require_files,
    write_json,
)
from .config import MAX_ACCURACY_DROP, QUANTIZATIONS, DataConfig
from .errors import AccuracyError, ConfigError, ModelError
from .hardware import int8_weight_type
from .metrics import default_best_metric, metric_direction
from .onnx_model import ONNX_INSTALL_HINT, require_onnxruntime
from .quantization import WEIGHT_TYPES, quantize_int8, rank_by_int8_error
from .strategies import get_strategy, names_where
from .tasks import REGRESSION, SINGLE_LABEL, TEXT, TEXT_PAIR

logger = logging.getLogger(__name__)

OPSET = 17
#: Model types whose graphs ONNX Runtime's BERT optimizer knows how to fuse.
_FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert", "mpnet", "deberta-v2"}
#: Rows the export is checked on (a seeded random subset of larger splits; quick, and enough to see a
#: disagreement or a lost point of accuracy).
PARITY_ROWS = 2000
#: Seed of that subset (the one ``texttune evaluate --max-eval-samples`` uses on a stored split).
_CHECK_SEED = 42
#: Tokens (rows x padded length) of the batch that ranks the matrices by int8 error.
PROBE_TOKENS = 4096


@dataclass
class ParityReport:
    """How closely the exported model follows the PyTorch model, on the run's validation split or ``--data``.

    ``max_abs_diff`` is the largest absolute difference of any probability (of any predicted value for
    regression); ``label_agreement`` the share of rows with the same predicted label (label set for
    multi-label; None for regression); ``accuracy_*`` the accuracy of each against the true labels
    (single-label). ``metric`` is the run's primary metric (``accuracy``, ``f1_micro`` for multi-label,
    ``mse`` for regression), measured for both models.

    An int8 export with the accuracy check also records the limit (``max_drop``: the largest loss of
    the metric, or its relative rise for ``mse``), the ``variant`` kept, the matrices it keeps in fp32
    (``excluded_nodes``) and every variant ``tried``, in order, with its metric and loss.
    """

    rows: int
    max_abs_diff: float
    label_agreement: float | None
    accuracy_torch: float | None = None
    accuracy_onnx: float | None = None
    metric: str | None = None
    metric_torch: float | None = None
    metric_onnx: float | None = None
    #: ``validation`` (the run's split) or the ``--data`` source.
    data: str = "validation"
    max_drop: float | None = None
    variant: str | None = None
    excluded_nodes: list[str] = field(default_factory=list)
    tried: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote."""

    folder: Path
    model_file: Path
    quantize: str | None
    fused: bool
    size_bytes: int
    parity: ParityReport | None
    #: ``QInt8`` or ``QUInt8`` for an int8 export: the weight type kept.
    weight_type: str | None = None


@dataclass(frozen=True)
class Variant:
    """One way to quantize to int8: the weight type, and the matrices (node names) kept in fp32."""

    weight_type: str
    excluded: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``QUInt8 weights``, or ``QUInt8 weights, 2 matrices fp32``."""
        if not self.excluded:
            return f"{self.weight_type} weights"
        count = len(self.excluded)
        return f"{self.weight_type} weights, {count} {'matrix' if count == 1 else 'matrices'} fp32"


@dataclass
class Attempt:
    """One variant measured by the accuracy check (stored in :attr:`ParityReport.tried`)."""

    variant: str
    weight_type: str
    excluded_nodes: int
    value: float
    #: The loss of the metric against PyTorch (for ``mse``: its relative rise); negative when it gained.
    drop: float
    within: bool


@dataclass
class _Check:
    """The labelled rows an export is checked on, and the run's PyTorch model and its logits on them."""

    reference: Any  # a torch-backed Predictor
    dataset: Any
    source: str
    logits: np.ndarray
    metric: str

    @property
    def rows(self) -> int:
        return len(self.dataset)

    @cached_property
    def value(self) -> float:
        """The PyTorch model's primary metric on the rows."""
        return self.score(self.logits)

    def score(self, logits: np.ndarray) -> float:
        """The primary metric of ``logits`` on the rows, computed as ``texttune evaluate`` does."""
        return float(self.reference.evaluate(self.dataset, logits=logits)[self.metric])


def export_onnx(
    run: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    quantize: str | None = None,
    overwrite: bool = False,
    check_parity: bool = True,
    max_accuracy_drop: float | None = MAX_ACCURACY_DROP,
    data: str | None = None,
) -> ExportResult:
    """Export a run's model to ONNX, fuse attention, optionally quantize to int8, and check it.

    The check compares the ONNX model with the run's PyTorch model on the run's validation split (at most
    :data:`PARITY_ROWS` rows), or on ``data``. An int8 model must keep the run's primary metric within
    ``max_accuracy_drop``; variants are tried in turn (see the module docstring) and the first within
    the limit is kept. Nothing is written until a model passes, so a refused export leaves no folder
    behind and an existing export in place.

    A run without a validation split (trained without one) has no rows to check on: an int8 export then
    needs ``data`` (labelled, with the run's columns) or ``max_accuracy_drop=None``, and refuses with a
    :class:`ConfigError` naming both rather than write an unchecked model silently; an fp32 export,
    which follows the PyTorch model to rounding error, logs a warning and skips the parity report.

    Args:
        run: A run folder written by :func:`texttune.train`.
        output: Where to write. Default: the run itself (the model goes to ``RUN/onnx/model.onnx`` and
            ``Predictor.load(RUN)`` picks it up). Another folder becomes a stand-alone predictor folder:
            tokenizer, ``config.json``, ``texttune.json`` and ``onnx/model.onnx``, without the PyTorch weights.
        quantize: None for fp32, or ``"int8"`` (dynamic quantization of the weights, per channel).
        overwrite: Replace an existing ONNX export.
        check_parity: Compare with the PyTorch model (False: no check at all, int8 unchecked too).
        max_accuracy_drop: int8: the most the primary metric may lose, as a fraction (0.01 = 1 point of
            accuracy, or of micro F1 for multi-label); for regression the most the MSE may rise, relative
            (0.01 = 1%). None: no accuracy check (the parity report is still written).
        data: Labelled data to check on instead of the run's validation split (the run's column names).

    Returns:
        The :class:`ExportResult`, with the parity report (None when there were no rows to check on).

    Raises:
        AccuracyError: No int8 variant is within ``max_accuracy_drop``; nothing was written.

    Example:
        >>> result = export_onnx("runs/rt", quantize="int8")  # doctest: +SKIP
        >>> result.parity.variant, result.parity.accuracy_onnx - result.parity.accuracy_torch  # doctest: +SKIP
        ('QInt8 weights', -0.002)
    """
    run, folder = Path(run), Path(output) if output is not None else Path(run)
    guarded = quantize == "int8" and check_parity and max_accuracy_drop is not None
    manifest = _check_export(run, folder, quantize, overwrite, max_accuracy_drop)
    check = _load_check(run, manifest, data, required=guarded) if check_parity else None
    stand_alone = folder.resolve() != run.resolve()
    target = folder / ONNX_DIR
    work = partial_dir(target) if not stand_alone else partial_dir(folder)
    shutil.rmtree(work, ignore_errors=True)
    onnx_work = work / ONNX_DIR if stand_alone else work
    onnx_work.mkdir(parents=True)
    try:
        if stand_alone:
            copy_run_description(run, work)
        fp32, fused = _export(run, onnx_work)
        limit = max_accuracy_drop if guarded else None
        model, weight_type, parity = _choose_model(fp32, onnx_work, quantize, check, limit)
        _keep_only(model, onnx_work)
        info: dict[str, Any] = {
            "source_run": str(run),
            "quantize": quantize,
            "weight_type": weight_type,
            "opset": OPSET,
            "fused_attention": fused,
            "task": manifest.task,
        }
        if parity is not None:
            info["parity"] = asdict(parity)
        write_json(onnx_work / EXPORT_INFO_FILE, info)
        _move_into_place(work, folder if stand_alone else target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    model_file = target / ONNX_MODEL_FILE
    logger.info("ONNX model written to %s", model_file)
    return ExportResult(
        folder=folder,
        model_file=model_file,
        quantize=quantize,
        fused=fused,
        size_bytes=model_file.stat().st_size,
        parity=parity,
        weight_type=weight_type,
    )


def _check_export(
    run: Path, folder: Path, quantize: str | None, overwrite: bool, max_accuracy_drop: float | None
):
    """Refuse an export that cannot succeed, before anything is written; returns the run's manifest."""
    require_onnxruntime()
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError(f"ONNX export needs onnx; install it with: {ONNX_INSTALL_HINT}") from None
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"--quantize {quantize!r} is not one of {', '.join(QUANTIZATIONS)}")
    if max_accuracy_drop is not None and not 0.0 <= max_accuracy_drop < 1.0:
        raise ConfigError(f"--max-accuracy-drop must be in [0, 1), got {max_accuracy_drop}")
    manifest = read_manifest(run)
    if not get_strategy(manifest.strategy).plain_weights:
        raise ConfigError(
            f"ONNX export supports runs of strategy {' or '.join(names_where('plain_weights'))}; {run} is a "
            f"{manifest.strategy!r} run (its weights are not one plain model)"
        )
    require_files(run, [MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE])
    stand_alone = folder.resolve() != run.resolve()
    if stand_alone and folder.exists() and any(folder.iterdir()) and not overwrite:
        raise ConfigError(f"--output {folder} is not empty; pass --overwrite to replace it or choose another")
    if (folder / ONNX_DIR).exists() and not overwrite:
        raise ConfigError(f"{folder / ONNX_DIR} already exists; pass --overwrite to replace the ONNX export")
    return manifest


def _load_check(run: Path, manifest, data: str | None, *, required: bool, rows: int = PARITY_ROWS):
    """The rows to check the export on, with the PyTorch model's logits; None when there are none.

    ``required``: refuse (rather than skip the check) when the run has no validation split and no
    ``data`` was given.
    """
    from .data import load_labelled
    from .data.splits import subset
    from .inference import Predictor

    if data is not None:
        columns = {
            name: getattr(manifest, name) for name in ("text_column", "text_pair_column", "label_column")
        }
        config = DataConfig(data=data)
        dataset = load_labelled(data, config, task=manifest.task, label_names=manifest.label_names, **columns)
    elif (run / VALIDATION_DATA_FILE).is_file():
        dataset = read_validation_split(run)
    elif required:
        raise ConfigError(
            f"{run} has no validation split to check the int8 model's accuracy on; pass --data FILE "
            "(labelled, with the run's columns) or --no-accuracy-check to export it unchecked"
        )
    else:
        logger.warning("%s has no %s; skipping the parity check", run, VALIDATION_DATA_FILE)
        return None
    dataset = subset(dataset, rows, seed=_CHECK_SEED)
    reference = Predictor.load(run, device="cpu", backend="torch")
    logits = reference.logits(dataset[TEXT], _pairs(dataset))
    metric = default_best_metric(manifest.task)[0]
    return _Check(reference, dataset, data or "validation", logits, metric)


def _choose_model(fp32: Path, folder: Path, quantize: str | None, check: _Check | None, limit: float | None):
    """The model file to keep, its int8 weight type (None for fp32) and its parity report."""
    if quantize is None:
        return fp32, None, _parity(check, _onnx_logits(check, fp32)) if check else None
    if limit is None:
        variant = Variant(int8_weight_type())
        model = _quantize(fp32, folder, variant, 0)
        return model, variant.weight_type, _parity(check, _onnx_logits(check, model)) if check else None
    return _int8_within(fp32, folder, check, limit)


def _int8_within(fp32: Path, folder: Path, check: _Check, limit: float):
    """The first int8 variant whose metric stays within ``limit`` of PyTorch's, or an AccuracyError."""
    attempts: list[Attempt] = []
    for variant in _variants(fp32, folder, check, attempts):
        model = _quantize(fp32, folder, variant, len(attempts))
        logits = _onnx_logits(check, model)
        attempts.append(_measure(check, variant, logits, limit))
        if attempts[-1].within:
            report = _parity(check, logits)
            report.max_drop, report.variant = limit, variant.name
            report.excluded_nodes, report.tried = list(variant.excluded), [asdict(a) for a in attempts]
            logger.info("kept int8 variant %s (%d tried)", variant.name, len(attempts))
            return model, variant.weight_type, report
        model.unlink()
    raise AccuracyError(_refusal(check, attempts, limit))


def _variants(fp32: Path, folder: Path, check: _Check, attempts: list[Attempt]) -> Iterator[Variant]:
    """The int8 variants to try, in order; the later ones follow the ``attempts`` measured so far.

    Both weight types (the one that suits this CPU first), then the better of the two with the 1, 2, 4,
    ... matrices that lose most to int8 kept in fp32, up to half of the matrices.
    """
    preferred = int8_weight_type()
    for weight_type in (preferred, *(t for t in WEIGHT_TYPES if t != preferred)):
        yield Variant(weight_type)
    best = min(attempts, key=lambda attempt: attempt.drop).weight_type
    ranked = rank_by_int8_error(fp32, _probe_batch(check), best, folder)
    for count in _exclusion_steps(len(ranked)):
        yield Variant(best, tuple(ranked[:count]))


def _exclusion_steps(matrices: int) -> list[int]:
    """How many matrices to keep in fp32, step by step: 1, 2, 4, ... and finally half of them."""
    steps, count = [], 1
    while count < matrices // 2:
        steps.append(count)
        count *= 2
    return steps + [matrices // 2] if matrices >= 2 else []


def _quantize(fp32: Path, folder: Path, variant: Variant, index: int) -> Path:
    model = folder / f"model.int8-{index}.onnx"
    quantize_int8(fp32, model, variant.weight_type, variant.excluded)
    return model


def _measure(check: _Check, variant: Variant, logits: np.ndarray, limit: float) -> Attempt:
    """Score one variant's ``logits`` against the PyTorch model's and log the result."""
    reference, value = check.value, check.score(logits)
    if metric_direction(check.metric):
        drop = reference - value
    else:  # an error metric (mse): its relative rise
        drop = (value - reference) / max(abs(reference), 1e-12)
    # The tolerance absorbs float rounding (0.60 - 0.59 > 0.01), so a loss of exactly the limit passes.
    within = drop <= limit + 1e-9
    attempt = Attempt(variant.name, variant.weight_type, len(variant.excluded), value, drop, within)
    logger.info(
        "int8 %s: %s %.4f vs %.4f (PyTorch) on %d rows; %s %.4f %s limit %g",
        variant.name,
        check.metric,
        value,
        reference,
        check.rows,
        _loss_word(check.metric),
        drop,
        "within" if attempt.within else "beyond",
        limit,
    )
    return attempt


def _loss_word(metric: str) -> str:
    return "drop" if metric_direction(metric) else "relative rise"


def _refusal(check: _Check, attempts: list[Attempt], limit: float) -> str:
    """The one-line AccuracyError message: what was measured, the best variant, and what to do."""
    best = min(attempts, key=lambda attempt: attempt.drop)
    where = "the validation split" if check.source == "validation" else check.source
    return (
        f"no int8 variant keeps {check.metric} within --max-accuracy-drop {limit:g} on {check.rows} rows of "
        f"{where}: PyTorch {check.value:.4f}, best int8 {best.value:.4f} ({best.variant}, "
        f"{_loss_word(check.metric)} {best.drop:.4f}; {len(attempts)} variants tried); nothing written. "
        "Export fp32 (leave out --quantize) or allow a larger --max-accuracy-drop"
    )


def _probe_batch(check: _Check) -> dict[str, np.ndarray]:
    """The first rows of the check, padded into one batch of at most :data:`PROBE_TOKENS` tokens."""
    from .tokenization import encode

    head = check.dataset.select(range(min(check.rows, 64))).to_dict()
    tokenizer = check.reference.tokenizer
    encoded = encode(
        {TEXT: head[TEXT], TEXT_PAIR: head.get(TEXT_PAIR)}, tokenizer, check.reference.manifest.max_length
    )
    lengths = [len(ids) for ids in encoded["input_ids"]]
    count = 1
    while count < len(lengths) and (count + 1) * max(lengths[: count + 1]) <= PROBE_TOKENS:
        count += 1
    rows = [{key: values[i] for key, values in encoded.items()} for i in range(count)]
    return dict(tokenizer.pad(rows, return_tensors="np"))


def _pairs(dataset) -> list[str] | None:
    return dataset[TEXT_PAIR] if TEXT_PAIR in dataset.column_names else None


def _onnx_logits(check: _Check, model: Path) -> np.ndarray:
    """The logits of the ONNX ``model`` on the check's rows, batched as the run's predictor batches."""
    from .inference import Predictor
    from .onnx_model import OnnxModel

    reference = check.reference
    predictor = Predictor(OnnxModel(model), reference.tokenizer, reference.manifest)
    return predictor.logits(check.dataset[TEXT], _pairs(check.dataset))


def _parity(check: _Check, logits: np.ndarray) -> ParityReport:
    """How the ONNX ``logits`` compare with the PyTorch model's on the check's rows."""
    reference = check.reference
    p_ref, p_new = reference.probabilities(check.logits), reference.probabilities(logits)
    report = ParityReport(
        rows=check.rows,
        max_abs_diff=float(np.abs(p_ref - p_new).max()) if check.rows else 0.0,
        label_agreement=None,
        metric=check.metric,
        metric_torch=check.value,
        metric_onnx=check.score(logits),
        data=check.source,
    )
    if reference.task == SINGLE_LABEL:
        report.label_agreement = float((p_ref.argmax(axis=1) == p_new.argmax(axis=1)).mean())
        report.accuracy_torch, report.accuracy_onnx = report.metric_torch, report.metric_onnx
    elif reference.task != REGRESSION:
        chosen_ref, chosen_new = p_ref >= reference.thresholds, p_new >= reference.thresholds
        report.label_agreement = float((chosen_ref == chosen_new).all(axis=1).mean())
    return report


def _keep_only(model: Path, folder: Path) -> None:
    """Make ``model`` the folder's ``model.onnx`` and delete the other graphs written on the way."""
    os.replace(model, folder / ONNX_MODEL_FILE)
    for leftover in folder.glob("model.*.onnx"):
        leftover.unlink()


def _move_into_place(work: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(work, target)


def _logits_only(model):
    """Wrap a model so that the traced graph has exactly one output, ``logits``."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            return self.inner(**kwargs).logits

    return LogitsOnly(model)


def _export(run: Path, folder: Path) -> tuple[Path, bool]:
    """Write the fp32 graph into ``folder``; returns its path and whether attention was fused."""
    import torch

    from .modeling import load_classifier
    from .tokenization import load_tokenizer

    try:
        # Eager attention: its traced graph is the pattern ONNX Runtime's optimizer fuses.
        model = load_classifier(run, attn_implementation="eager")
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load the model of {run}: {str(exc).splitlines()[0]}") from exc
    tokenizer = load_tokenizer(str(run))
    sample = tokenizer(["an example text to trace", "short"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in sample else [])
    inputs = tuple(sample[name] for name in names)
    raw = folder / "model.raw.onnx"
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    dynamic["logits"] = {0: "batch"}
    # The tracer warns about Python-side shape checks in the mask code; they hold for every batch we
    # feed (mask length == sequence length), which the parity check confirms on padded batches.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _logits_only(model),
            inputs,
            str(raw),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    fp32 = folder / "model.fp32.onnx"
    fused = _optimize(raw, fp32, model.config)
    return (fp32 if fp32.is_file() else raw), fused


def _optimize(source: Path, target: Path, config) -> bool:
    """Fuse attention and layer norms with ONNX Runtime's transformer optimizer, where it knows the model.

    Writes ``target`` for model types the optimizer knows; returns whether attention was fused.
    """
    model_type = getattr(config, "model_type", "")
    if model_type not in _FUSABLE:
        logger.info("no attention fusion for model type %r; exporting the plain graph", model_type)
        return False
    from onnxruntime.transformers.optimizer import optimize_model

    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    optimized = optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden)
    optimized.save_model_to_file(str(target))
    fused = optimized.get_fused_operator_statistics().get("Attention", 0) > 0
    logger.info("ONNX Runtime optimizer: attention %s", "fused" if fused else "not fused")
    return fused


def parity_check(
    run: str | os.PathLike, exported: str | os.PathLike, *, rows: int = PARITY_ROWS, data: str | None = None
) -> ParityReport | None:
    """Compare an exported ONNX model with the run's PyTorch model on the run's validation split.

    Args:
        run: The run folder (PyTorch weights and ``validation.parquet``).
        exported: The folder holding ``onnx/model.onnx`` (the run itself or a stand-alone export).
        rows: Use at most this many rows (a seeded random subset of more).
        data: Labelled data to compare on instead of the validation split (the run's column names).

    Returns:
        A :class:`ParityReport`, or None when the run has no ``validation.parquet`` and no ``data`` is given.

    Example:
        >>> parity_check("runs/rt", "deploy/rt-int8").label_agreement  # doctest: +SKIP
        0.998
    """
    run = Path(run)
    check = _load_check(run, read_manifest(run), data, required=False, rows=rows)
    if check is None:
        return None
    return _parity(check, _onnx_logits(check, Path(exported) / ONNX_DIR / ONNX_MODEL_FILE))
