"""Export a run to ONNX (optionally int8-quantized) and check that it predicts like the PyTorch model.

Why not ``optimum``: it does not import with transformers 5. The legacy ``torch.onnx.export`` tracer
(``dynamo=False``) on a model loaded with eager attention gives a graph that ONNX Runtime's transformer
optimizer fuses into its ``Attention`` kernels; the dynamo exporter and SDPA attention fuse only in part.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from dataclasses import asdict, dataclass
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
    require_files,
    write_json,
)
from .config import QUANTIZATIONS
from .errors import ConfigError, ModelError
from .hardware import int8_weight_type
from .onnx_model import ONNX_INSTALL_HINT, require_onnxruntime
from .strategies import get_strategy, names_where
from .tasks import LABELS, MULTI_LABEL, REGRESSION, TEXT, TEXT_PAIR

logger = logging.getLogger(__name__)

OPSET = 17
#: Model types whose graphs ONNX Runtime's BERT optimizer knows how to fuse.
_FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert", "mpnet", "deberta-v2"}
#: Rows of the validation split used by the parity check (enough to see a disagreement, quick to run).
PARITY_ROWS = 2000


@dataclass
class ParityReport:
    """How closely the exported model follows the PyTorch model on the run's validation split.

    ``max_abs_diff`` is the largest absolute difference of any probability (of any predicted value for
    regression); ``label_agreement`` the share of rows with the same predicted label (label set for
    multi-label; None for regression); ``accuracy_*`` the accuracy of each against the true labels.
    """

    rows: int
    max_abs_diff: float
    label_agreement: float | None
    accuracy_torch: float | None = None
    accuracy_onnx: float | None = None


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote."""

    folder: Path
    model_file: Path
    quantize: str | None
    fused: bool
    size_bytes: int
    parity: ParityReport | None
    #: ``QInt8`` or ``QUInt8`` for an int8 export: the weight type that suits this CPU.
    weight_type: str | None = None


def export_onnx(
    run: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    quantize: str | None = None,
    overwrite: bool = False,
    check_parity: bool = True,
) -> ExportResult:
    """Export a run's model to ONNX, fuse attention, optionally quantize to int8, and check parity.

    Args:
        run: A run folder written by :func:`texttune.train`.
        output: Where to write. Default: the run itself (the model goes to ``RUN/onnx/model.onnx`` and
            ``Predictor.load(RUN)`` picks it up). Another folder becomes a stand-alone predictor folder:
            tokenizer, ``config.json``, ``texttune.json`` and ``onnx/model.onnx``, without the PyTorch weights.
        quantize: None for fp32, or ``"int8"`` (dynamic quantization of the weights, per channel).
        overwrite: Replace an existing ONNX export.
        check_parity: Compare with the PyTorch model on the run's ``validation.parquet``.

    Returns:
        The :class:`ExportResult`, with the parity report (None when the run has no validation split).

    Example:
        >>> result = export_onnx("runs/rt", quantize="int8")  # doctest: +SKIP
        >>> result.parity.label_agreement  # doctest: +SKIP
        0.995
    """
    run, folder = Path(run), Path(output) if output is not None else Path(run)
    manifest = _check_export(run, folder, quantize, overwrite)
    stand_alone = folder.resolve() != run.resolve()
    target = folder / ONNX_DIR
    work = partial_dir(target) if not stand_alone else partial_dir(folder)
    shutil.rmtree(work, ignore_errors=True)
    onnx_work = work / ONNX_DIR if stand_alone else work
    onnx_work.mkdir(parents=True)
    try:
        if stand_alone:
            copy_run_description(run, work)
        weight_type = int8_weight_type() if quantize == "int8" else None
        fused = _export(run, onnx_work, quantize, weight_type)
        info: dict[str, Any] = {
            "source_run": str(run),
            "quantize": quantize,
            "weight_type": weight_type,
            "opset": OPSET,
            "fused_attention": fused,
            "task": manifest.task,
        }
        write_json(onnx_work / EXPORT_INFO_FILE, info)
        _move_into_place(work, folder if stand_alone else target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    model_file = target / ONNX_MODEL_FILE
    parity = None
    if check_parity:
        parity = parity_check(run, folder)
        if parity is not None:
            info["parity"] = asdict(parity)
            write_json(target / EXPORT_INFO_FILE, info)
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


def _check_export(run: Path, folder: Path, quantize: str | None, overwrite: bool):
    """Refuse an export that cannot succeed, before anything is written; returns the run's manifest."""
    require_onnxruntime()
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError(f"ONNX export needs onnx; install it with: {ONNX_INSTALL_HINT}") from None
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"--quantize {quantize!r} is not one of {', '.join(QUANTIZATIONS)}")
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


def _export(run: Path, folder: Path, quantize: str | None, weight_type: str | None) -> bool:
    """Write ``folder/model.onnx``; returns whether attention was fused."""
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
    fused = _optimize(raw, folder / "model.fp32.onnx", model.config)
    current = folder / "model.fp32.onnx" if (folder / "model.fp32.onnx").is_file() else raw
    if quantize == "int8":
        _quantize_int8(current, folder / "model.int8.onnx", weight_type)
        current = folder / "model.int8.onnx"
    os.replace(current, folder / ONNX_MODEL_FILE)
    for leftover in folder.glob("model.*.onnx"):
        leftover.unlink()
    return fused


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


def _quantize_int8(source: Path, target: Path, weight_type: str) -> None:
    """Dynamic int8 quantization of the matrix multiplications (weights per channel, activations per batch).

    ``weight_type`` is ``QInt8`` or ``QUInt8`` (see :func:`texttune.hardware.int8_weight_type`).
    Embedding tables (``Gather``) stay fp32: quantizing them lowers label agreement and saves no time.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs through the root logger, and warns that the optional pre-processing step was
    # skipped; that step fails on fused graphs and is not needed for dynamic quantization.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType[weight_type],
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            # Needed on graphs from the optimizer, whose fused ops lack shape-inferred tensor types.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


def parity_check(run: str | os.PathLike, exported: str | os.PathLike, *, rows: int = PARITY_ROWS):
    """Compare the exported ONNX model with the run's PyTorch model on the run's validation split.

    Args:
        run: The run folder (PyTorch weights and ``validation.parquet``).
        exported: The folder holding ``onnx/model.onnx`` (the run itself or a stand-alone export).
        rows: Use at most this many validation rows (the first ones).

    Returns:
        A :class:`ParityReport`, or None when the run has no ``validation.parquet``.
    """
    import pandas as pd

    from .inference import Predictor

    run = Path(run)
    path = run / VALIDATION_DATA_FILE
    if not path.is_file():
        logger.warning("%s has no %s; skipping the parity check", run, VALIDATION_DATA_FILE)
        return None
    frame = pd.read_parquet(path).head(rows)
    texts = frame[TEXT].astype(str).tolist()
    pairs = frame[TEXT_PAIR].astype(str).tolist() if TEXT_PAIR in frame.columns else None
    reference = Predictor.load(run, device="cpu", backend="torch")
    candidate = Predictor.load(exported, backend="onnx")
    p_ref = reference.probabilities(reference.logits(texts, pairs))
    p_new = candidate.probabilities(candidate.logits(texts, pairs))
    diff = float(np.abs(p_ref - p_new).max()) if len(texts) else 0.0
    task = reference.task
    if task == REGRESSION:
        return ParityReport(rows=len(texts), max_abs_diff=diff, label_agreement=None)
    if task == MULTI_LABEL:
        threshold = reference.manifest.threshold
        chosen_ref, chosen_new = p_ref >= threshold, p_new >= threshold
        agreement = float((chosen_ref == chosen_new).all(axis=1).mean())
        return ParityReport(rows=len(texts), max_abs_diff=diff, label_agreement=agreement)
    truth = np.asarray(frame[LABELS].tolist())
    ref_labels, new_labels = p_ref.argmax(axis=1), p_new.argmax(axis=1)
    return ParityReport(
        rows=len(texts),
        max_abs_diff=diff,
        label_agreement=float((ref_labels == new_labels).mean()),
        accuracy_torch=float((ref_labels == truth).mean()),
        accuracy_onnx=float((new_labels == truth).mean()),
    )
