"""Run an exported ONNX classifier with ONNX Runtime (the optional ``onnx`` extra).

The exported folder sits inside a run (``RUN/onnx/``) or in a stand-alone folder written by
``texttune export --onnx --output DIR``; either way :class:`~texttune.inference.Predictor` finds it
through :func:`find_onnx_model`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import ONNX_DIR, ONNX_MODEL_FILE
from .errors import ConfigError

logger = logging.getLogger(__name__)


ONNX_INSTALL_HINT = 'pip install "texttune[onnx]" (or: pip install onnxruntime==1.31.1 onnx==1.23.2)'


def require_onnxruntime():
    """Import ``onnxruntime`` or raise a :class:`ConfigError` with the install command."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"ONNX support needs onnxruntime; install it with: {ONNX_INSTALL_HINT}") from None
    return onnxruntime


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def find_onnx_model(folder: str | os.PathLike) -> Path | None:
    """The ONNX model file of a run or export folder, or None when it has none."""
    path = Path(folder) / ONNX_DIR / ONNX_MODEL_FILE
    return path if path.is_file() else None


class OnnxModel:
    """An ONNX Runtime session that maps tokenized batches to logits.

    Args:
        path: The ``.onnx`` file.
        num_threads: Intra-op threads (default: ONNX Runtime's choice, one per physical core).

    Example:
        >>> model = OnnxModel("runs/rt/onnx/model.onnx")  # doctest: +SKIP
        >>> model({"input_ids": ids, "attention_mask": mask}).shape  # doctest: +SKIP
        (2, 2)
    """

    def __init__(self, path: str | os.PathLike, *, num_threads: int | None = None):
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.num_labels = int(self.session.get_outputs()[0].shape[-1])

    def __call__(self, batch: dict[str, Any]) -> np.ndarray:
        """Logits (float32, shape (batch, num_labels)) for a padded batch of numpy or torch arrays."""
        return self.session.run(None, self.feed(batch))[0].astype(np.float32, copy=False)

    def feed(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """The session's inputs for a padded batch (``token_type_ids`` of zeros when the batch has none)."""
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self.input_names if name in batch}
        missing = [name for name in self.input_names if name not in feed]
        if "token_type_ids" in missing:  # single texts: segment 0 everywhere
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            missing.remove("token_type_ids")
        if missing:
            raise ConfigError(
                f"the ONNX model {self.path} expects inputs {', '.join(missing)} that the tokenizer does not "
                "give; re-export it with `texttune export RUN --onnx --overwrite`"
            )
        return feed
