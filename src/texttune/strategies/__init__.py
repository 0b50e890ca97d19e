"""Fine-tuning strategies: which parameters train, and how a trained model is saved and loaded.

Each strategy is a :class:`Strategy` subclass registered by name with :func:`register`; adding one is
one module here plus one row in ``tests/test_strategies.py``. ``training.train`` calls
:meth:`Strategy.prepare` on the freshly built classifier, trains what
:meth:`Strategy.training_inputs` hands it, and saves with :meth:`Strategy.save`;
``inference.load_model_for_run`` loads with :meth:`Strategy.load` of the strategy the run names.

Example:
    >>> from texttune.strategies import get_strategy, strategy_names
    >>> strategy_names()[:3]
    ['freeze', 'full', 'ia3']
    >>> get_strategy("lora").name
    'lora'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config import StrategyConfig
from ..errors import ConfigError, ModelError

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, type[Strategy]] = {}


def register(name: str):
    """Class decorator: make a :class:`Strategy` subclass available as ``--strategy NAME``.

    Args:
        name: The strategy's name; registering a name twice is an error.

    Returns:
        The decorator, which returns the class unchanged.
    """

    def decorator(cls: type[Strategy]) -> type[Strategy]:
        if name in _REGISTRY:
            raise ValueError(
                f"strategy {name!r} is already registered by {_REGISTRY[name].__module__}.{_REGISTRY[name].__name__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def strategy_names() -> list[str]:
    """The registered strategy names, sorted."""
    _load_builtin_strategies()
    return sorted(_REGISTRY)


def get_strategy(name: str) -> Strategy:
    """A fresh instance of the strategy called ``name``.

    Args:
        name: A registered name, as given to ``--strategy``.

    Returns:
        The strategy.

    Raises:
        ConfigError: The name is unknown; the message lists the known names.
    """
    _load_builtin_strategies()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"--strategy {name!r} is not known; choose one of {', '.join(sorted(_REGISTRY))}")
    return cls()


def _load_builtin_strategies() -> None:
    # Importing the modules runs their @register decorators.
    from . import freeze, full, partial, peft  # noqa: F401


@dataclass
class TrainingInputs:
    """What the ``Trainer`` is given: usually the prepared model and the tokenized splits unchanged.

    Attributes:
        model: The module the ``Trainer`` optimises.
        datasets: Split name -> dataset the ``Trainer`` iterates.
        collator: Batches rows of ``datasets``.
        argument_overrides: ``TrainingArguments`` fields this strategy needs set differently.
        feature_seconds: Time spent preparing ``datasets`` (e.g. caching features), included in training time.
    """

    model: Any
    datasets: dict[str, Any]
    collator: Any
    argument_overrides: dict[str, Any] = field(default_factory=dict)
    feature_seconds: float = 0.0


class Strategy:
    """How a classifier is prepared for training, saved into a run folder and loaded back.

    The default implementation trains and saves the whole model as a plain ``transformers`` model.
    """

    name: ClassVar[str] = ""

    def prepare(self, model, config: StrategyConfig):
        """Freeze or wrap a freshly built sequence-classification model for training.

        Args:
            model: An ``AutoModelForSequenceClassification`` model with its new head.
            config: The strategy options.

        Returns:
            The model to train and save (possibly a wrapper around ``model``).
        """
        return model

    def training_inputs(
        self, model, datasets: dict[str, Any], collator, *, batch_size: int, device: Any = "cpu"
    ) -> TrainingInputs:
        """What the ``Trainer`` trains on; by default the prepared model on the tokenized splits.

        Args:
            model: The prepared model (from :meth:`prepare`).
            datasets: Tokenized ``train`` (and ``validation``) splits.
            collator: The padding collator for tokenized rows.
            batch_size: Batch size for any work done here (e.g. computing features).
            device: Where the training will run.

        Returns:
            The :class:`TrainingInputs`.
        """
        return TrainingInputs(model=model, datasets=datasets, collator=collator)

    def save(self, model, folder: Path) -> None:
        """Write the trained model into the run folder (safetensors only)."""
        model.save_pretrained(str(folder))

    def load(self, folder: Path, manifest) -> Any:
        """Load the trained model of a run folder written by :meth:`save`, in eval mode."""
        from transformers import AutoModelForSequenceClassification

        from ..artifacts import MODEL_CONFIG_FILE, require_files

        require_files(folder, [MODEL_CONFIG_FILE, "model.safetensors"])
        return AutoModelForSequenceClassification.from_pretrained(str(folder), use_safetensors=True).eval()

    def merged_model(self, folder: Path, manifest) -> Any:
        """The run's model as a plain ``transformers`` classifier, for ``texttune export --merge``."""
        raise ModelError(
            f"a {self.name!r} run cannot be exported as a plain transformers model; "
            "`texttune export --merge` supports lora, ia3, full and partial runs"
        )


def is_decoder_model(model_config) -> bool:
    """Whether a model config is a decoder-only language model (GPT-2, Llama, ...), not a BERT-style encoder."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(model_config, "model_type", None)
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def export_merged(run: str | Path, output: str | Path, *, overwrite: bool = False) -> Path:
    """Write a run's model as a plain ``transformers`` model folder (adapters merged into the weights).

    The folder holds ``config.json`` (with the label names), ``model.safetensors`` and the tokenizer, and
    loads with ``AutoModelForSequenceClassification.from_pretrained`` alone.

    Args:
        run: A run folder written by ``texttune train``.
        output: The folder to write.
        overwrite: Replace ``output`` if it holds files.

    Returns:
        The output folder.

    Example:
        >>> export_merged("runs/lora", "models/lora-merged")  # doctest: +SKIP
    """
    from ..artifacts import AtomicDir, read_manifest
    from ..tokenization import load_tokenizer

    folder = Path(run)
    manifest = read_manifest(folder)
    model = get_strategy(manifest.strategy).merged_model(folder, manifest)
    tokenizer = load_tokenizer(str(folder))
    with AtomicDir(output, overwrite=overwrite) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    logger.info("merged %s model of %s written to %s", manifest.strategy, folder, output)
    return Path(output)
