"""texttune: fine-tune pretrained transformers for text classification."""

from .config import DataConfig, ModelConfig, RunConfig, StrategyConfig, TrainConfig
from .errors import ConfigError, DataError, ModelError, TexttuneError
from .evaluation import EvaluationResult, evaluate_run
from .export import ExportResult, ParityReport, export_onnx
from .inference import Prediction, Predictor
from .pretraining import PretrainResult, pretrain
from .search import SearchConfig, SearchResult, search
from .strategies import export_merged
from .training import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataError",
    "EvaluationResult",
    "ExportResult",
    "ModelConfig",
    "ModelError",
    "ParityReport",
    "Prediction",
    "Predictor",
    "PretrainResult",
    "RunConfig",
    "StrategyConfig",
    "SearchConfig",
    "SearchResult",
    "TexttuneError",
    "TrainConfig",
    "TrainResult",
    "evaluate_run",
    "export_merged",
    "export_onnx",
    "pretrain",
    "search",
    "train",
]
