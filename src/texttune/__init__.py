"""texttune: fine-tune pretrained transformers for text classification."""

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import ConfigError, DataError, ModelError, TexttuneError
from .evaluation import EvaluationResult, evaluate_run
from .inference import Prediction, Predictor
from .training import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataError",
    "EvaluationResult",
    "ModelConfig",
    "ModelError",
    "Prediction",
    "Predictor",
    "RunConfig",
    "TexttuneError",
    "TrainConfig",
    "TrainResult",
    "evaluate_run",
    "train",
]
