"""texttune: fine-tune pretrained transformers for text classification.

The public names below are imported on first use, so ``import texttune`` (and ``texttune --help``) does
not load torch, transformers, datasets or pandas until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "AccuracyError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "ModelError": "errors",
    "TexttuneError": "errors",
    "DataConfig": "config",
    "ModelConfig": "config",
    "RunConfig": "config",
    "TrainConfig": "config",
    "DistillConfig": "config",
    "DistillResult": "distill",
    "distill": "distill",
    "StrategyConfig": "strategies",
    "EvaluationResult": "evaluation",
    "evaluate_run": "evaluation",
    "ExportResult": "export",
    "ParityReport": "export",
    "export_onnx": "export",
    "Prediction": "inference",
    "Predictor": "inference",
    "PretrainResult": "pretraining",
    "pretrain": "pretraining",
    "SearchConfig": "search",
    "SearchResult": "search",
    "search": "search",
    "export_merged": "strategies",
    "TrainResult": "training",
    "train": "training",
}

__all__ = [
    "AccuracyError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "DistillConfig",
    "DistillResult",
    "EvaluationResult",
    "ExportResult",
    "ModelConfig",
    "ModelError",
    "ParityReport",
    "Prediction",
    "Predictor",
    "PretrainResult",
    "RunConfig",
    "SearchConfig",
    "SearchResult",
    "StrategyConfig",
    "TexttuneError",
    "TrainConfig",
    "TrainResult",
    "distill",
    "evaluate_run",
    "export_merged",
    "export_onnx",
    "pretrain",
    "search",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'texttune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs; nothing is imported at run time
    from .config import DataConfig, DistillConfig, ModelConfig, RunConfig, TrainConfig
    from .distill import DistillResult, distill
    from .errors import AccuracyError, ConfigError, DataError, ModelError, TexttuneError
    from .evaluation import EvaluationResult, evaluate_run
    from .export import ExportResult, ParityReport, export_onnx
    from .inference import Prediction, Predictor
    from .pretraining import PretrainResult, pretrain
    from .search import SearchConfig, SearchResult, search
    from .strategies import StrategyConfig, export_merged
    from .training import TrainResult, train
