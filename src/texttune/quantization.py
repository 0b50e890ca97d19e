"""Dynamic int8 quantization of an exported ONNX graph, and which of its matrices suffer most from it.

``texttune export --onnx --quantize int8`` quantizes with :func:`quantize_int8`; when the int8 model
loses too much accuracy it keeps the matrices that :func:`rank_by_int8_error` puts first in fp32.

The ranking is a cheap local measurement: the fp32 model runs once on a batch of real rows with every
weight matrix's input exposed, and each product ``x @ W`` is compared with the product of ``x`` and ``W``
rounded to the int8 grids that ONNX Runtime's dynamic quantization uses (activations per tensor as
uint8, weights per output channel as int8 or uint8). A matrix whose input has outliers (a wide range
that few values use) loses most there; that error is local, not the accumulated error at the model's
output, so one matrix's rank does not depend on the ones before it.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    >>> w = np.eye(8, dtype=np.float32)
    >>> int8_error(x, w, "QInt8") < 0.02
    True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: ONNX Runtime's int8 weight types: signed (symmetric) and unsigned (asymmetric) weights.
WEIGHT_TYPES = ("QInt8", "QUInt8")
#: The ops :func:`quantize_int8` quantizes (``Gemm`` is rewritten as ``MatMul`` by the quantizer first).
QUANTIZED_OPS = ("MatMul", "Attention")


def quantize_int8(source: Path, target: Path, weight_type: str, exclude: Sequence[str] = ()) -> None:
    """Dynamic int8 quantization of the matrix multiplications (weights per channel, activations per batch).

    Args:
        source: The fp32 ONNX model.
        target: Where to write the int8 model.
        weight_type: ``QInt8`` or ``QUInt8`` (see :func:`texttune.hardware.int8_weight_type`).
        exclude: Names of nodes (as :func:`weight_matrices` names them) to keep in fp32.

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
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=list(exclude),
            # Needed on graphs from the optimizer, whose fused ops lack shape-inferred tensor types.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


def weight_matrices(model) -> dict[str, tuple[str, np.ndarray]]:
    """The quantizable weight matrices of an ONNX model: node name -> (input tensor name, weight (in, out)).

    Names are those ``quantize_dynamic(nodes_to_exclude=...)`` matches. A plain ``Gemm`` (a linear layer
    such as the classifier head) is first rewritten by the quantizer as ``MatMul`` + ``Add``, its
    ``MatMul`` named ``NAME_MatMul``; nodes without a name cannot be excluded and are left out.
    """
    from onnx import helper, numpy_helper

    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    found: dict[str, tuple[str, np.ndarray]] = {}
    for node in model.graph.node:
        if not node.name or len(node.input) < 2 or node.input[1] not in weights:
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        if node.op_type in QUANTIZED_OPS and weight.ndim == 2:
            found[node.name] = (node.input[0], weight)
        elif node.op_type == "Gemm":
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if _rewritten_as_matmul(attributes):
                matrix = weight.T if attributes.get("transB", 0) else weight
                found[f"{node.name}_MatMul"] = (node.input[0], matrix)
    return found


def _rewritten_as_matmul(attributes: dict) -> bool:
    """Whether the quantizer rewrites a ``Gemm`` of these attributes as ``MatMul`` (+ ``Add``)."""
    plain = attributes.get("alpha", 1.0) == 1.0 and attributes.get("beta", 1.0) == 1.0
    return plain and not attributes.get("transA", 0)


def rank_by_int8_error(fp32: Path, batch: dict[str, np.ndarray], weight_type: str, work: Path) -> list[str]:
    """The weight matrices of ``fp32``, the one that loses most to int8 first (see the module docstring).

    Args:
        fp32: The fp32 ONNX model.
        batch: One padded batch of model inputs (``input_ids``, ``attention_mask``, ...) of real rows.
        weight_type: ``QInt8`` or ``QUInt8``: the weight grid to measure.
        work: A folder for the probe model (deleted again).

    Returns:
        Node names for ``quantize_int8(exclude=...)``, most sensitive first.
    """
    import onnx

    model = onnx.load(str(fp32))
    matrices = weight_matrices(model)
    inputs = _probe(model, batch, sorted({name for name, _ in matrices.values()}), work)
    errors = {
        node: int8_error(inputs[name], weight, weight_type) for node, (name, weight) in matrices.items()
    }
    ranked = sorted(errors, key=errors.__getitem__, reverse=True)
    logger.info(
        "int8 error per matrix (%s weights), largest first: %s",
        weight_type,
        ", ".join(f"{node} {errors[node]:.4f}" for node in ranked[:5]),
    )
    return ranked


def _probe(model, batch: dict[str, np.ndarray], names: list[str], work: Path) -> dict[str, np.ndarray]:
    """Run ``model`` on ``batch`` with the tensors ``names`` exposed as outputs; returns them by name."""
    import onnx

    from .onnx_model import OnnxModel

    exposed = {output.name for output in model.graph.output}
    for name in names:
        if name not in exposed:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    path = work / "model.probe.onnx"
    onnx.save(model, str(path))
    try:
        probe = OnnxModel(path)
        values = probe.session.run(names, probe.feed(batch))
    finally:
        path.unlink(missing_ok=True)
    return dict(zip(names, values))


def int8_error(inputs: np.ndarray, weight: np.ndarray, weight_type: str) -> float:
    """Relative error of ``inputs @ weight`` when both are rounded to dynamic int8 grids.

    Activations: one uint8 grid per tensor (asymmetric, as ONNX Runtime quantizes them per batch);
    weights: one grid per output column, symmetric int8 for ``QInt8``, asymmetric uint8 for ``QUInt8``.
    """
    inputs = inputs.reshape(-1, weight.shape[0]).astype(np.float32)
    exact = inputs @ weight
    approx = _on_grid(inputs, axis=None, signed=False) @ _on_grid(
        weight, axis=0, signed=weight_type == "QInt8"
    )
    return float(np.linalg.norm(approx - exact) / max(float(np.linalg.norm(exact)), 1e-12))


def _on_grid(values: np.ndarray, *, axis: int | None, signed: bool) -> np.ndarray:
    """``values`` rounded to 8-bit grids (one per slice along ``axis``; one overall for None)."""
    low = np.minimum(values.min(axis=axis, keepdims=True), 0.0)
    high = np.maximum(values.max(axis=axis, keepdims=True), 0.0)
    if signed:
        scale = np.maximum(-low, high) / 127.0
        scale = np.where(scale > 0, scale, 1.0)
        return np.clip(np.round(values / scale), -127, 127) * scale
    scale = (high - low) / 255.0
    scale = np.where(scale > 0, scale, 1.0)
    zero = np.round(-low / scale)
    return (np.clip(np.round(values / scale) + zero, 0, 255) - zero) * scale
