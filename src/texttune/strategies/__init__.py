"""Fine-tuning strategies: which parameters train, and how a trained model is saved and loaded.

Each strategy is a :class:`Strategy` subclass in a module of this package, registered by name with
:func:`register`. It declares what it can do (:attr:`Strategy.plain_weights`, :attr:`Strategy.mergeable`)
and its own options (:attr:`Strategy.options`, a dataclass); the command line, export and
``texttune strategies`` ask it. :class:`StrategyConfig` is built from the registered strategies' options,
so adding a strategy is one module here plus one row in ``tests/test_strategies.py``.

``training`` calls :meth:`Strategy.prepare` on the freshly built classifier, trains what
:meth:`Strategy.training_inputs` hands it, and the run is saved with :meth:`Strategy.save`;
``inference.load_model_for_run`` loads it with :meth:`Strategy.load`. The modules here import torch,
transformers and peft only inside methods, so that ``texttune --help`` stays fast.

Example:
    >>> from texttune.strategies import StrategyConfig, get_strategy, strategy_names
    >>> strategy_names()[:3]
    ['freeze', 'full', 'ia3']
    >>> get_strategy("lora").mergeable
    True
    >>> StrategyConfig(strategy="lora", lora_rank=16).options_for().lora_rank
    16
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, ModelError
from ..options import require_fraction, require_positive
from ..tasks import TASKS

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, type[Strategy]] = {}
#: ``--strategy auto``: the strategy is chosen from the training data (see :func:`texttune.recipe.choose_strategy`).
AUTO = "auto"
#: What ``--strategy auto`` trains when no strategy's :attr:`Strategy.auto_max_per_class` covers the data.
BASE_STRATEGY = "full"


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
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"--strategy {name!r} is not known; choose one of {', '.join(sorted(_REGISTRY))}")
    return cls()


def names_where(ability: str) -> list[str]:
    """The registered strategies whose class attribute ``ability`` is true (e.g. ``"mergeable"``)."""
    return [name for name in strategy_names() if getattr(_REGISTRY[name], ability)]


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
    #: One line for ``texttune strategies``: what trains.
    summary: ClassVar[str] = ""
    #: The dataclass of this strategy's own options (fields become flags and YAML keys), or None.
    options: ClassVar[type | None] = None
    #: The run folder holds the whole classifier's weights (a ``transformers`` model, plus ``head.*`` files
    #: when it classifies from a pooled head): it exports to ONNX and loads without its base checkpoint.
    plain_weights: ClassVar[bool] = True
    #: ``texttune export --merge`` folds the trained parameters into plain weights.
    mergeable: ClassVar[bool] = False
    #: Can classify with the architecture's own head (``--pooling pooler``).
    native_head: ClassVar[bool] = True
    #: Can classify from a head over pooled token vectors (``--pooling mean|cls|max|last``).
    pooled_head: ClassVar[bool] = True
    #: The learning rate when ``--learning-rate`` is not given; None: the model's (see :mod:`texttune.recipe`).
    learning_rate: ClassVar[float | None] = None
    #: Epochs when ``--epochs`` is not given and the data is large enough (see :mod:`texttune.recipe`).
    default_epochs: ClassVar[float] = 3.0
    #: Batch size when ``--batch-size`` is not given; None: the recipe's choice for the data size.
    default_batch_size: ClassVar[int | None] = None
    #: Fewest optimizer steps of a run whose epochs are not given; None: the recipe's (100).
    min_steps: ClassVar[int | None] = None
    #: Tasks it trains (see :mod:`texttune.tasks`).
    tasks: ClassVar[tuple[str, ...]] = TASKS
    #: ``--strategy auto`` picks it for data with at most this many training rows per class (None: never).
    auto_max_per_class: ClassVar[int | None] = None

    def trainer_rows(self, rows: int, options: Any) -> int:
        """How many examples the ``Trainer`` iterates per epoch for ``rows`` training rows."""
        return rows

    def check_options(self, options: Any) -> None:
        """Refuse option combinations this strategy cannot train with (called when the config is built)."""

    def prepare(self, model, options: Any):
        """Freeze or wrap a freshly built sequence-classification model for training.

        Args:
            model: An ``AutoModelForSequenceClassification`` model with its new head.
            options: This strategy's options (an instance of :attr:`options`, or a :class:`StrategyConfig`).

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

    def finish(self, model, datasets: dict[str, Any], collator, *, batch_size: int) -> None:
        """A step after the ``Trainer`` is done, before the run is saved (e.g. fitting a head).

        Args:
            model: The prepared model, trained.
            datasets: The tokenized ``train`` (and ``validation``) splits, with labels.
            collator: The padding collator for tokenized rows.
            batch_size: Batch size for the work done here.
        """

    def save(self, model, folder: Path) -> None:
        """Write the trained model into the run folder (safetensors only)."""
        model.save_pretrained(str(folder))

    def load(self, folder: Path, manifest, **kwargs) -> Any:
        """Load the trained model of a run folder written by :meth:`save`, in eval mode.

        ``kwargs`` go to ``from_pretrained`` (e.g. ``attn_implementation="eager"`` for ONNX export).
        """
        from ..artifacts import MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, require_files
        from ..modeling import load_classifier

        require_files(folder, [MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE])
        return load_classifier(folder, **kwargs)

    def merged_model(self, folder: Path, manifest) -> Any:
        """The run's model as a plain ``transformers`` classifier, for ``texttune export --merge``."""
        if self.plain_weights:
            return self.load(folder, manifest)  # the run already is a plain model
        supported = sorted(names_where("mergeable") + names_where("plain_weights"))
        raise ModelError(
            f"a {self.name!r} run cannot be exported as a plain transformers model; "
            f"`texttune export --merge` supports {', '.join(supported)} runs"
        )


# --------------------------------------------------------------------------- StrategyConfig


@dataclass
class _PretrainFirstFields:
    """Fields every run has, whatever its strategy: continued masked-LM pretraining before fine-tuning."""

    mlm_first: str | None = field(
        default=None,
        metadata={
            "help": "Unlabelled text (a .txt file, one text per line, or any data file) to continue "
            "masked-LM pretraining on before fine-tuning."
        },
    )
    mlm_epochs: float = field(default=1.0, metadata={"help": "--mlm-first: epochs of masked-LM training."})
    mlm_learning_rate: float = field(
        default=5e-5, metadata={"help": "--mlm-first: learning rate of masked-LM training."}
    )
    mlm_probability: float = field(
        default=0.15, metadata={"help": "--mlm-first: share of tokens masked (BERT used 0.15)."}
    )
    whole_word_mask: bool = field(
        default=False, metadata={"help": "--mlm-first: mask whole words instead of single word pieces."}
    )


def _check_config(self) -> None:
    require_positive(self, ("mlm_epochs", "mlm_learning_rate"))
    require_fraction(self, ("mlm_probability",), open_low=True)
    for name in strategy_names():
        if _REGISTRY[name].options is not None:
            _REGISTRY[name].options(**_values_of(self, _REGISTRY[name].options))  # validates its fields
    if self.strategy != AUTO and self.strategy not in _REGISTRY:
        known = ", ".join([AUTO, *strategy_names()])
        raise ConfigError(f"--strategy {self.strategy!r} is not known; choose one of {known}")
    if self.strategy != AUTO:
        get_strategy(self.strategy).check_options(self.options_for())


def _values_of(config: Any, options_class) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(options_class)}


def _options_for(self, name: str | None = None) -> Any:
    """The options of strategy ``name`` (default: this config's strategy) as its own dataclass, or None."""
    name = name or self.strategy
    options_class = None if name == AUTO else _REGISTRY[name].options
    return None if options_class is None else options_class(**_values_of(self, options_class))


def _build_strategy_config() -> type:
    """A flat dataclass: the run fields plus every registered strategy's options, each field once.

    A field that several strategies share (``target_modules``, ``num_virtual_tokens``) comes from one base
    dataclass, and its help names the strategies that read it.
    """
    users: dict[str, list[str]] = {}
    fields: dict[str, dataclasses.Field] = {}
    for name in strategy_names():
        options_class = _REGISTRY[name].options
        for f in dataclasses.fields(options_class) if options_class is not None else ():
            users.setdefault(f.name, []).append(name)
            fields.setdefault(f.name, f)
    extra = [
        (
            name,
            f.type,
            field(default=f.default, metadata={"help": f"{', '.join(users[name])}: {f.metadata['help']}"}),
        )
        for name, f in fields.items()
    ]
    summary = ", ".join(f"{name} ({_REGISTRY[name].summary})" for name in strategy_names())
    base_fields = [
        (
            "strategy",
            "str",
            field(
                default=AUTO,
                metadata={"help": f"What trains: {AUTO} (the default: {auto_summary()}), {summary}."},
            ),
        ),
        *[
            (f.name, f.type, field(default=f.default, metadata=f.metadata))
            for f in dataclasses.fields(_PretrainFirstFields)
        ],
    ]
    return dataclasses.make_dataclass(
        "StrategyConfig",
        base_fields + extra,
        namespace={
            "__doc__": "Which parameters train and how: the strategy, its options (every registered "
            "strategy's, each read only by the strategies its help names) and continued pretraining.",
            "__post_init__": _check_config,
            "options_for": _options_for,
            "__module__": __name__,
        },
    )


def auto_summary() -> str:
    """What ``--strategy auto`` does, from the strategies that declare :attr:`Strategy.auto_max_per_class`."""
    picks = [
        f"{name} for {'/'.join(t.replace('_', '-') for t in _REGISTRY[name].tasks)} data with at most "
        f"{_REGISTRY[name].auto_max_per_class} training rows per class"
        for name in strategy_names()
        if _REGISTRY[name].auto_max_per_class
    ]
    return ", ".join([*picks, f"else {BASE_STRATEGY}"])


def _import_strategy_modules() -> None:
    """Import every module of this package: their @register decorators add the strategies."""
    import importlib
    import pkgutil

    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{module}")


_import_strategy_modules()
StrategyConfig = _build_strategy_config()


def export_merged(run: str | Path, output: str | Path, *, overwrite: bool = False) -> Path:
    """Write a run's model as a plain ``transformers`` model folder (adapters merged into the weights).

    The folder holds ``config.json`` (with the label names), ``model.safetensors`` and the tokenizer, and
    loads with ``AutoModelForSequenceClassification.from_pretrained`` alone; a run that classifies from a
    pooled head (see ``--pooling``) also gets ``head.safetensors``, ``head.json`` and a ``README.md`` that
    says how to load it (:func:`texttune.modeling.load_classifier`).

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
    from ..heads import PooledClassifier
    from ..tokenization import load_tokenizer

    folder = Path(run)
    manifest = read_manifest(folder)
    model = get_strategy(manifest.strategy).merged_model(folder, manifest)
    tokenizer = load_tokenizer(str(folder))
    with AtomicDir(output, overwrite=overwrite) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if isinstance(model, PooledClassifier):
            (tmp / "README.md").write_text(_POOLED_README.format(pooling=model.pooling), encoding="utf-8")
    logger.info("merged %s model of %s written to %s", manifest.strategy, folder, output)
    return Path(output)


_POOLED_README = """# A texttune classifier with a pooled head

This model classifies from the {pooling}-pooled token vectors of its base model (the way the checkpoint
was trained), through the head in `head.safetensors` (its layout is in `head.json`). The base model is a
plain `transformers` model (`config.json`, `model.safetensors`), but
`AutoModelForSequenceClassification` cannot add this head, so load it with texttune:

```python
from texttune.modeling import load_classifier
from transformers import AutoTokenizer

model = load_classifier("THIS_FOLDER")
tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")
logits = model(**tokenizer(["a text to classify"], return_tensors="pt")).logits
print(model.config.id2label[int(logits.argmax(-1))])
```

Without texttune: run the base model (`AutoModel`), {pooling}-pool its last hidden states over the
attention mask, and apply the head that `head.json` describes (its weights are in `head.safetensors`).
"""
