"""Configuration: one dataclass per concern and per subcommand, every field with help text.

A training run is a :class:`RunConfig` of four sections (:class:`DataConfig`, :class:`ModelConfig`,
:class:`TrainConfig` and the strategies' :class:`~texttune.strategies.StrategyConfig`). Field names are
unique across the sections so that a flat YAML file (``--config run.yaml``) and the command-line flags
(``--learning-rate`` -> ``learning_rate``) address the same fields. The other subcommands have one
dataclass each (:class:`AuditConfig`, :class:`EvaluateConfig`, :class:`PredictConfig`, :class:`PretrainConfig`,
:class:`ExportConfig`, :class:`DistillConfig`, :class:`DemoConfig`); :mod:`texttune.options` turns every one of them into flags
and holds the checks their ``__post_init__`` methods share.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .options import (
    coerce,
    require_at_least,
    require_choice,
    require_fraction,
    require_non_negative,
    require_positive,
    require_probability,
)
from .strategies import StrategyConfig
from .tasks import POOLING_CHOICES

TASKS = ("auto", "single_label", "multi_label", "regression")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
LONG_TEXT_MODES = ("truncate", "head-tail", "sliding")
#: What runs a saved model: ``auto`` uses the run's ONNX export when it has one (and ONNX Runtime is
#: installed and the device is the CPU), else PyTorch.
BACKENDS = ("auto", "torch", "onnx")
QUANTIZATIONS = ("int8",)
#: ``texttune export --quantize int8``: the most of the primary validation metric the int8 model may lose.
MAX_ACCURACY_DROP = 0.01
DEMO_OUTPUT = "runs/demo"


def micro_batch_tokens_field():
    """``--micro-batch-tokens``, shared by fine-tuning and masked-LM pretraining."""
    return field(
        default=8192,
        metadata={
            "help": "Run a training batch of more padded tokens (texts x longest text) than this in slices "
            "whose gradients add up to the whole batch's: the same update in less memory (32 texts of 512 "
            "tokens need over 20 GB for a 12-layer model). 0 never slices."
        },
    )


def precision_field():
    """``--precision``, shared by fine-tuning and masked-LM pretraining."""
    return field(
        default="auto",
        metadata={
            "help": "fp32, fp16 or bf16 (autocast; weights stay fp32). auto: bf16 on GPUs and on CPUs with "
            "native bf16 (AVX512-BF16 or AMX), fp16 on older GPUs, fp32 on other CPUs."
        },
    )


@dataclass
class DataConfig:
    """Where the data comes from and how its columns map to texts and labels."""

    data: str | None = field(
        default=None,
        metadata={
            "help": "Training data: a CSV/TSV/JSON/JSONL/Parquet file, a folder saved with "
            "datasets.save_to_disk, a built-in dataset name (see `texttune datasets`) or a hub dataset name."
        },
    )
    validation: str | None = field(
        default=None,
        metadata={"help": "Validation data (same formats). Default: a stratified split of --data."},
    )
    test: str | None = field(
        default=None, metadata={"help": "Test data (same formats), evaluated after training."}
    )
    text_column: str | None = field(
        default=None,
        metadata={"help": "Column holding the text. Default: detected (text, sentence, review, ...)."},
    )
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Column holding the second text of a sentence pair."}
    )
    label_column: str | None = field(
        default=None,
        metadata={"help": "Column holding the label. Default: detected (label, labels, category, ...)."},
    )
    label_delimiter: str | None = field(
        default=None,
        metadata={
            "help": "Split string labels on this delimiter into several labels (makes the task multi-label)."
        },
    )
    task: str = field(
        default="auto",
        metadata={
            "help": "single_label, multi_label or regression. auto: multi_label for list labels or "
            "--label-delimiter, regression for float labels, else single_label."
        },
    )
    validation_split: float = field(
        default=0.1, metadata={"help": "Share of --data held out (stratified) when no --validation is given."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many training rows (a seeded random subset)."}
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={"help": "Use at most this many validation/test rows (a seeded random subset)."},
    )
    encoding: str = field(default="utf-8", metadata={"help": "Text encoding of CSV/TSV/JSON files."})
    strict: bool = field(
        default=False,
        metadata={"help": "Fail on empty or missing texts instead of dropping them with a warning."},
    )
    data_seed: int = field(default=42, metadata={"help": "Seed for the validation split and the subsets."})

    def __post_init__(self) -> None:
        require_choice(self, "task", TASKS)
        require_fraction(self, ("validation_split",), open_low=True)
        require_positive(self, ("max_train_samples", "max_eval_samples"), what="a positive number")
        if self.label_delimiter == "":
            raise ConfigError("--label-delimiter must not be empty")
        if self.label_delimiter is not None and self.task in ("single_label", "regression"):
            raise ConfigError(
                f"--label-delimiter makes labels multi-label; it cannot be used with --task {self.task}"
            )


@dataclass
class ModelConfig:
    """Which pretrained model to start from and how texts are cut to fit it."""

    model: str = field(
        default="minilm",
        metadata={
            "help": "A built-in model name (see `texttune models`), a local model folder or a hub model id."
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Truncate texts to this many tokens. Default: the model's limit, at most 512."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow models whose code lives in the checkpoint (runs that code!)."}
    )
    allow_pickle: bool = field(
        default=False,
        metadata={
            "help": "Allow a --model folder that only has pickled weights (.bin/.pt). Unpickling can run "
            "code: only for files you trust. Default: safetensors only."
        },
    )
    long_text: str = field(
        default="truncate",
        metadata={
            "help": "Texts longer than --max-length: truncate (keep the start), head-tail (keep the first "
            "quarter and the last three quarters of the budget) or sliding (overlapping windows; a "
            "document's prediction averages its windows' logits). Single texts only."
        },
    )
    stride: int | None = field(
        default=None,
        metadata={
            "help": "Tokens shared by neighbouring windows with --long-text sliding. Default: a quarter of "
            "--max-length."
        },
    )
    pooling: str = field(
        default="auto",
        metadata={
            "help": "How the classifier reads the token vectors: mean, cls (first token), max or last (last "
            "real token) feed a linear head; pooler uses the architecture's own head (BERT's pooler on [CLS], "
            "a decoder's last token). auto: the pooling a sentence-transformers checkpoint was trained with "
            "(its modules.json), else pooler (freeze: last for decoders, else cls)."
        },
    )

    def __post_init__(self) -> None:
        require_choice(self, "pooling", POOLING_CHOICES)
        if self.max_length is not None and self.max_length < 8:
            raise ConfigError(f"--max-length must be at least 8 tokens, got {self.max_length}")
        require_choice(self, "long_text", LONG_TEXT_MODES)
        if self.stride is not None:
            if self.long_text != "sliding":
                raise ConfigError("--stride only applies to --long-text sliding")
            require_non_negative(self, ("stride",))
            if self.max_length is not None and self.stride >= self.max_length // 2:
                raise ConfigError(
                    f"--stride {self.stride} must be below half of --max-length {self.max_length}"
                )


@dataclass
class TrainConfig:
    """How to train. Defaults follow the BERT paper's fine-tuning recipe (Devlin et al., 2019, A.3) where
    the data is large enough: batch size 32, 3 epochs, linear decay after a 10% warmup, weight decay 0.01;
    evaluation every epoch, the best epoch kept. Smaller data gets a smaller batch and more epochs (at
    least 100 optimizer steps), and the learning rate suits the strategy and model (see
    :mod:`texttune.recipe`); a value given here always wins."""

    output: str | None = field(default=None, metadata={"help": "Folder to write the run into."})
    overwrite: bool = field(default=False, metadata={"help": "Replace --output if it already holds files."})
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate (AdamW). Default: the strategy's (lora, freeze: 1e-3; setfit: 2e-5; "
            "see `texttune strategies`), else the built-in model's tuned rate (minilm: 1e-4), else 5e-5."
        },
    )
    epochs: float | None = field(
        default=None,
        metadata={
            "help": "Number of passes over the training data. Default: 3, or more on small data so that "
            "training takes at least 100 optimizer steps."
        },
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Training batch size per device. Default: 32, or 16 or 8 on small data (the largest that "
            "gives 100 steps in 3 epochs)."
        },
    )
    eval_batch_size: int = field(default=64, metadata={"help": "Evaluation and prediction batch size."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "Share of training steps with a linear learning-rate warmup."}
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={"help": "Accumulate gradients over this many batches before each optimizer step."},
    )
    seed: int = field(default=42, metadata={"help": "Random seed for model initialisation and data order."})
    precision: str = precision_field()
    metric_for_best_model: str | None = field(
        default=None,
        metadata={
            "help": "Validation metric that picks the best epoch. Default: accuracy, or mse for regression."
        },
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without improvement."}
    )
    group_by_length: bool = field(
        default=True,
        metadata={"help": "Batch texts of similar length together so that less padding is computed."},
    )
    max_tokens_per_batch: int | None = field(
        default=None,
        metadata={
            "help": "Build each training batch up to this many padded tokens (texts x longest text) from "
            "texts of similar length, instead of --batch-size texts per batch."
        },
    )
    micro_batch_tokens: int = micro_batch_tokens_field()
    logging_steps: int = field(default=50, metadata={"help": "Log the training loss every N steps."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even when a GPU is present."})
    save_steps: int | None = field(
        default=None,
        metadata={
            "help": "Save a checkpoint (and evaluate) every N optimizer steps, so a crash loses at most N "
            "steps. Default: once per epoch."
        },
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "Continue an interrupted run from the newest complete checkpoint of --output "
            "(model, optimizer, scheduler, RNG state, data order); starts afresh when there is none."
        },
    )
    class_weights: str = field(
        default="none",
        metadata={
            "help": "Weighted loss against class imbalance: none, auto (inverse class frequency; for "
            "multi-label each label's negatives/positives) or one weight per label in label order, "
            "comma-separated (e.g. 1,6.5)."
        },
    )
    calibrate: bool = field(
        default=True,
        metadata={
            "help": "Classification: fit temperature scaling on the validation split after training, so that "
            "predicted probabilities match how often the model is right (stored in the run; metrics gain "
            "the expected calibration error before and after)."
        },
    )
    tune_thresholds: bool = field(
        default=True,
        metadata={
            "help": "Multi-label: pick each label's decision threshold to maximise its F1 on the validation "
            "split and store it in the run (otherwise 0.5 for every label)."
        },
    )
    report: bool = field(
        default=True,
        metadata={"help": "Write report.html, its PNG plots and a model card README.md into the run."},
    )
    audit: bool = field(
        default=False,
        metadata={
            "help": "Audit the training data first (`texttune audit` with its defaults: label errors, "
            "duplicates, leakage, outliers) into RUN/audit/, and summarise it in the report."
        },
    )
    report_to: str = field(
        default="none",
        metadata={
            "help": "Also log to these trackers (comma-separated), e.g. tensorboard (logs in RUN/tensorboard)."
        },
    )
    fsdp: str | None = field(
        default=None,
        metadata={
            "help": "Passed to TrainingArguments.fsdp for multi-GPU runs, e.g. 'full_shard auto_wrap'."
        },
    )
    deepspeed: str | None = field(
        default=None,
        metadata={"help": "A DeepSpeed JSON config file for multi-GPU runs (needs `pip install deepspeed`)."},
    )

    def __post_init__(self) -> None:
        require_choice(self, "precision", PRECISIONS)
        positive = ("learning_rate", "epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps")
        require_positive(self, positive)
        require_fraction(self, ("warmup_ratio",))
        require_non_negative(self, ("weight_decay",))
        require_at_least(self, "save_steps", 1)
        if self.resume and self.overwrite:
            raise ConfigError(
                "--resume and --overwrite conflict: --overwrite starts over and discards the checkpoints; "
                "drop one of them"
            )
        require_at_least(self, "max_tokens_per_batch", 8)
        require_non_negative(self, ("micro_batch_tokens",))
        require_at_least(self, "early_stopping_patience", 1)
        parse_class_weights(self.class_weights)
        if self.deepspeed is not None and not Path(self.deepspeed).is_file():
            raise ConfigError(f"--deepspeed config file not found: {self.deepspeed}")


def parse_class_weights(spec: str) -> str | list[float]:
    """``"none"``, ``"auto"`` or the list of weights given by ``--class-weights``.

    Example:
        >>> parse_class_weights("1,6.5")
        [1.0, 6.5]
    """
    spec = spec.strip()
    if spec in ("none", "auto"):
        return spec
    try:
        weights = [float(part) for part in spec.split(",")]
    except ValueError:
        raise ConfigError(
            f"--class-weights {spec!r} must be none, auto or comma-separated numbers such as 1,6.5"
        ) from None
    if any(not w > 0 for w in weights):
        raise ConfigError(f"--class-weights {spec!r}: every weight must be positive")
    return weights


@dataclass
class RunConfig:
    """Everything that defines a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)

    SECTIONS = ("data", "model", "train", "strategy")

    def to_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in self.SECTIONS}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a nested ``{"data": {...}, ...}`` or a flat ``{"learning_rate": ..., ...}`` mapping."""
        flat: dict[str, Any] = {}
        for key, value in values.items():
            if key in cls.SECTIONS and isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        return cls.from_flat(flat)

    @classmethod
    def from_flat(cls, flat: dict[str, Any], source: str = "config") -> RunConfig:
        owners = field_owners()
        unknown = sorted(set(flat) - set(owners))
        if unknown:
            raise ConfigError(
                f"unknown {source} key(s): {', '.join(unknown)}; known keys: {', '.join(sorted(owners))}"
            )
        parts: dict[str, dict[str, Any]] = {name: {} for name in cls.SECTIONS}
        for key, value in flat.items():
            parts[owners[key]][key] = coerce(run_field(key), value, source)
        return cls(
            data=DataConfig(**parts["data"]),
            model=ModelConfig(**parts["model"]),
            train=TrainConfig(**parts["train"]),
            strategy=StrategyConfig(**parts["strategy"]),
        )


_SECTION_CLASSES = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "strategy": StrategyConfig,
}


def field_owners() -> dict[str, str]:
    """Map every field name to the section that owns it."""
    return {f.name: section for section, klass in _SECTION_CLASSES.items() for f in dataclasses.fields(klass)}


def run_field(key: str) -> dataclasses.Field:
    """The field of a run option (any section) named ``key``."""
    return next(f for klass in _SECTION_CLASSES.values() for f in dataclasses.fields(klass) if f.name == key)


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML run config into a flat mapping of field names (sections are flattened)."""
    import yaml

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--config {path} is a folder; give a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (check --config)")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option names to values")
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in RunConfig.SECTIONS and isinstance(value, dict):
            flat.update(value)
        else:
            flat[str(key).replace("-", "_")] = value
    owners = field_owners()
    unknown = sorted(set(flat) - set(owners))
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {path}: {', '.join(unknown)}; known keys: {', '.join(sorted(owners))}"
        )
    return {key: coerce(run_field(key), value, f"config file {path}:") for key, value in flat.items()}


# --------------------------------------------------------------------------- the other subcommands

MIN_CONFIDENCE_HELP = (
    "Single-label runs: abstain (no label) when the top probability (calibrated, see --calibrate) is below "
    "this."
)
_BACKEND_HELP = (
    "What runs the model: the run's ONNX export (`texttune export RUN --onnx`), PyTorch, or auto (ONNX "
    "when the run has one)."
)


@dataclass
class EvaluateConfig:
    """``texttune evaluate RUN``: new labelled data, or (without ``data``) the run's own validation split."""

    data: str | None = field(
        default=None,
        metadata={
            "help": "Labelled data: a file, a saved dataset folder or a built-in name (its test split)."
        },
    )
    text_column: str | None = field(default=None, metadata={"help": "Text column (default: the run's)."})
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Second text column for pairs (default: the run's)."}
    )
    label_column: str | None = field(default=None, metadata={"help": "Label column (default: the run's)."})
    label_delimiter: str | None = field(default=None, metadata={"help": "Delimiter of multi-label strings."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on a seeded random subset of this size."}
    )
    encoding: str = field(default="utf-8", metadata={"help": "Text encoding of the data file."})
    output: str | None = field(
        default=None,
        metadata={
            "help": "Folder for metrics.json, report.txt and confusion_matrix.png (default: "
            "RUN/evaluations/NAME)."
        },
    )
    report: str | None = field(
        default=None,
        metadata={
            "help": "Also write an HTML report of this evaluation into this folder: metrics, confusion matrix, "
            "reliability, accuracy against coverage and (single-label) the error analysis."
        },
    )
    min_confidence: float | None = field(
        default=None,
        metadata={
            "help": f"{MIN_CONFIDENCE_HELP} The report adds the share of rows answered (coverage) and the "
            "accuracy on them."
        },
    )
    target_accuracy: float | None = field(
        default=None,
        metadata={
            "help": "Single-label runs: print the lowest --min-confidence whose answered rows reach this "
            "accuracy on the evaluated data, and the share of rows it answers."
        },
    )
    batch_size: int = field(default=64, metadata={"help": "Evaluation batch size."})
    backend: str = field(default="auto", metadata={"help": _BACKEND_HELP, "choices": BACKENDS})

    def __post_init__(self) -> None:
        require_positive(self, ("batch_size",))
        require_positive(self, ("max_eval_samples",), what="a positive number")
        require_choice(self, "backend", BACKENDS)
        require_probability(self, ("min_confidence", "target_accuracy"))


AUDIT_STRATEGIES = ("freeze", "full")
FIXES = ("drop", "relabel")


@dataclass
class AuditConfig:
    """``texttune audit``: likely label errors, duplicates, conflicts, leakage and outliers in labelled data."""

    output: str | None = field(
        default=None, metadata={"help": "Folder for issues.csv, audit.json and audit.html (required)."}
    )
    model: str = field(
        default="minilm",
        metadata={"help": "Model whose embeddings the audit uses: a built-in name, a folder or a hub id."},
    )
    strategy: str = field(
        default="freeze",
        metadata={
            "help": "How the out-of-fold probabilities are made: freeze (a logistic regression per fold on the "
            "frozen model's embeddings, computed once: minutes) or full (a fine-tuned run per fold: "
            "stronger, --folds times a training run).",
            "choices": AUDIT_STRATEGIES,
        },
    )
    folds: int = field(default=5, metadata={"help": "Cross-validation folds."})
    near_duplicate: float = field(
        default=0.97,
        metadata={
            "help": "Cosine similarity of two texts' embeddings from which they count as near duplicates "
            "(and as a leak between splits); 1 keeps exact repeats only."
        },
    )
    regularization: float = field(
        default=1.0,
        metadata={"help": "--strategy freeze: inverse regularization strength C of the regression."},
    )
    fix: str | None = field(
        default=None,
        metadata={
            "help": "Write a cleaned copy of --data to --output-data: drop removes likely wrong labels, repeats, "
            "leaking rows and the odd one out of conflicting duplicates; relabel gives those labels the "
            "suggested label instead. The input is never changed.",
            "choices": FIXES,
        },
    )
    output_data: str | None = field(
        default=None, metadata={"help": "--fix: the cleaned copy (.csv, .tsv, .jsonl or .parquet)."}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace --output and --output-data if they exist."}
    )
    batch_size: int = field(default=64, metadata={"help": "Embedding batch size."})
    max_length: int | None = field(
        default=None, metadata={"help": "Tokens read per text (default: the model's maximum, up to 512)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the folds."})

    def __post_init__(self) -> None:
        require_choice(self, "strategy", AUDIT_STRATEGIES)
        require_at_least(self, "folds", 2)
        require_positive(self, ("batch_size", "regularization"))
        require_probability(self, ("near_duplicate",))
        if self.fix is not None:
            require_choice(self, "fix", FIXES)
        if bool(self.fix) != bool(self.output_data):
            raise ConfigError(
                "--fix and --output-data go together: --fix drop|relabel --output-data clean.csv"
            )


@dataclass
class ExplainConfig:
    """``texttune explain RUN TEXT...``: each word's attribution to the prediction."""

    label: str | None = field(
        default=None, metadata={"help": "Explain this class instead of each text's predicted class."}
    )
    steps: int = field(
        default=50, metadata={"help": "Integration steps (more: attributions closer to complete, slower)."}
    )
    html: str | None = field(default=None, metadata={"help": "Also write a page with the texts highlighted."})
    overwrite: bool = field(default=False, metadata={"help": "Replace --html if it exists."})

    def __post_init__(self) -> None:
        require_positive(self, ("steps",))
        if self.html and Path(self.html).exists() and not self.overwrite:
            raise ConfigError(f"{self.html} exists; pass --overwrite to replace it")


@dataclass
class PredictConfig:
    """``texttune predict RUN``: texts as arguments, a file (``data`` -> ``output``), or a prompt."""

    pair: list[str] | None = field(
        default=None, metadata={"help": "Second text of a pair, once per text (for pair models)."}
    )
    data: str | None = field(
        default=None, metadata={"help": "A CSV/TSV/JSONL/Parquet file to predict row by row."}
    )
    output: str | None = field(
        default=None,
        metadata={"help": "Where to write the file's rows with predictions (.csv, .tsv, .jsonl, .parquet)."},
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace --output if it exists."})
    text_column: str | None = field(
        default=None, metadata={"help": "Text column of --data (default: the run's, or detected)."}
    )
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Second text column of --data for pair models."}
    )
    encoding: str = field(default="utf-8", metadata={"help": "Text encoding of --data."})
    min_confidence: float | None = field(
        default=None,
        metadata={"help": f"{MIN_CONFIDENCE_HELP} Files get an `abstained` column; JSON a null label."},
    )
    batch_size: int = field(default=64, metadata={"help": "Prediction batch size."})
    backend: str = field(default="auto", metadata={"help": _BACKEND_HELP, "choices": BACKENDS})

    def __post_init__(self) -> None:
        if self.data and not self.output:
            raise ConfigError(
                "--data needs --output FILE for the predictions (.csv, .tsv, .jsonl or .parquet)"
            )
        if self.output and not self.data:
            raise ConfigError("--output is for predicting a file; give the file with --data")
        require_positive(self, ("batch_size",))
        require_choice(self, "backend", BACKENDS)
        require_probability(self, ("min_confidence",))
        if self.output and Path(self.output).exists() and not self.overwrite:
            raise ConfigError(f"{self.output} exists; pass --overwrite to replace it")

    def check_texts(self, texts: list[str]) -> None:
        """Texts given as arguments go with neither ``data`` nor a ``pair`` count of their own."""
        if self.data and texts:
            raise ConfigError("give texts as arguments or a file with --data, not both")
        if texts and self.pair and len(self.pair) != len(texts):
            raise ConfigError(f"got {len(texts)} texts but {len(self.pair)} --pair values; give one per text")


@dataclass
class PretrainConfig:
    """``texttune pretrain``: continued masked-LM pretraining on unlabelled text (the BERT recipe)."""

    data: str = field(
        default="",
        metadata={
            "help": "A .txt file (one text per line), a data file or a built-in dataset.",
            "required": True,
        },
    )
    output: str = field(default="", metadata={"help": "Folder for the model.", "required": True})
    model: str = field(default="minilm", metadata={"help": "Model to start from."})
    overwrite: bool = field(default=False, metadata={"help": "Replace --output if it holds files."})
    text_column: str | None = field(
        default=None, metadata={"help": "Text column of a table (default: detected)."}
    )
    epochs: float = field(default=1.0, metadata={"help": "Epochs."})
    learning_rate: float = field(
        default=5e-5, metadata={"help": "Peak learning rate (linear decay, 6% warmup)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Batch size."})
    max_length: int | None = field(
        default=None,
        metadata={"help": "Truncate texts to this many tokens (default: the model's limit, at most 512)."},
    )
    micro_batch_tokens: int = micro_batch_tokens_field()
    precision: str = precision_field()
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens masked."})
    whole_word_mask: bool = field(default=False, metadata={"help": "Mask whole words, not word pieces."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many texts."})
    seed: int = field(default=42, metadata={"help": "Random seed (masking, order, subset)."})
    encoding: str = field(default="utf-8", metadata={"help": "Text encoding of text files."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even when a GPU is present."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow models whose code lives in the checkpoint (runs that code!)."}
    )

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("no text to pretrain on; pass --data FILE")
        if not self.output:
            raise ConfigError("no output folder given; pass --output DIR")
        require_positive(self, ("epochs", "learning_rate", "batch_size"))
        require_positive(self, ("max_train_samples",), what="a positive number")
        require_at_least(self, "max_length", 8)
        require_non_negative(self, ("micro_batch_tokens",))
        require_choice(self, "precision", PRECISIONS)
        require_fraction(self, ("mlm_probability",), open_low=True)


@dataclass
class ExportConfig:
    """``texttune export RUN``: a plain transformers model folder, or ONNX (optionally int8)."""

    output: str | None = field(
        default=None,
        metadata={"help": "Folder for the model (required, except with --onnx: default RUN/onnx/)."},
    )
    merge: bool = field(default=False, metadata={"help": "Merge LoRA/IA3 adapters into the base weights."})
    onnx: bool = field(default=False, metadata={"help": "Export to ONNX (needs the `onnx` extra)."})
    quantize: str | None = field(
        default=None, metadata={"help": "With --onnx: dynamic int8 quantization.", "choices": QUANTIZATIONS}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace --output (or the ONNX export) if it exists."}
    )
    max_accuracy_drop: float = field(
        default=MAX_ACCURACY_DROP,
        metadata={
            "help": "With --quantize int8: the most the run's primary metric may lose against the PyTorch "
            "model on the validation split, as a fraction like --target-accuracy (0.01 = 1 point of accuracy, "
            "or of micro F1 for multi-label; regression: the MSE may rise by 1%). The other weight type, then "
            "keeping the most sensitive matrices in fp32, are tried before giving up; then nothing is written."
        },
    )
    accuracy_check: bool = field(
        default=True,
        metadata={"help": "With --quantize int8: check accuracy (--no-accuracy-check: export unchecked)."},
    )
    data: str | None = field(
        default=None,
        metadata={
            "help": "With --onnx: labelled data (with the run's columns) to check the export on instead of "
            "the run's validation split; needed for --quantize int8 on a run without one."
        },
    )

    def __post_init__(self) -> None:
        if self.quantize and not self.onnx:
            raise ConfigError("--quantize applies to --onnx; add --onnx")
        if self.data and not self.onnx:
            raise ConfigError("--data applies to --onnx (the check of an ONNX export); add --onnx")
        require_fraction(self, ("max_accuracy_drop",))
        if self.onnx and self.merge:
            raise ConfigError("--onnx and --merge are different exports; give one of them")
        if self.quantize is not None:
            require_choice(self, "quantize", QUANTIZATIONS)
        if not self.onnx and not self.output:
            raise ConfigError(
                "give the folder for the exported model with --output (or export to ONNX with --onnx)"
            )


#: ``texttune distill --student``: static embeddings (model2vec), or the bottom N layers of the teacher.
STATIC_STUDENT = "static"
LAYERS_STUDENT = "layers"
#: ``texttune distill --static-vectors``: the encoder model2vec embeds each token with.
STATIC_VECTOR_SOURCES = ("teacher", "base")


@dataclass
class DistillConfig:
    """``texttune distill RUN``: train a fast student run on the run's (the teacher's) predictions.

    The student learns from ``(1 - alpha) * soft + alpha * hard``: ``soft`` is the cross-entropy against the
    teacher's probabilities at ``temperature`` (scaled by temperature squared, as in Hinton et al.; for
    multi-label the per-label binary cross-entropy, for regression the squared error to the teacher's
    value), ``hard`` the usual loss on the given labels (rows of --unlabelled have none: soft only).
    """

    output: str | None = field(default=None, metadata={"help": "Run folder of the student (required)."})
    student: str = field(
        default=STATIC_STUDENT,
        metadata={
            "help": "static: model2vec static token embeddings of the run's encoder (mean of token "
            "vectors, no transformer: fastest), or layers:N: the teacher's embeddings and first N layers."
        },
    )
    unlabelled: str | None = field(
        default=None,
        metadata={
            "help": "More texts for the student, labelled by the teacher (a .txt file, one text per line, or "
            "a data file with the run's text column)."
        },
    )
    augment: int = field(
        default=0,
        metadata={
            "help": "Variants of every training and unlabelled text (a random span of its words, or the "
            "text with some words dropped), labelled by the teacher for the student to learn from too; "
            "single-text runs. 0: none."
        },
    )
    temperature: float = field(
        default=1.0, metadata={"help": "Softens the teacher's probabilities (its logits are divided by it)."}
    )
    alpha: float = field(
        default=0.5,
        metadata={
            "help": "Weight of the given labels' loss, 0 to 1; 1 - alpha weighs the teacher's soft labels "
            "(0: learn from the teacher only)."
        },
    )
    epochs: float | None = field(
        default=None,
        metadata={"help": "Epochs (default: 10 for static, 30 with --no-train-vectors; 3 for layers:N)."},
    )
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate (default: 3e-3 for static, 1e-2 with --no-train-vectors; 5e-5 for layers:N)."
        },
    )
    batch_size: int = field(default=32, metadata={"help": "Training batch size of the student."})
    early_stopping_patience: int = field(
        default=2,
        metadata={
            "help": "static: stop after this many epochs without a better validation loss (0: train every "
            "epoch); the best epoch is kept either way."
        },
    )
    pca_dims: int = field(default=256, metadata={"help": "static: width of the token vectors (PCA)."})
    conv_channels: int = field(
        default=256,
        metadata={
            "help": "static: filters over every 3 adjacent tokens (each keeps its strongest window), beside "
            "the mean of the token vectors; they read word order, which the mean cannot (0: the mean alone)."
        },
    )
    head_hidden: int = field(
        default=256,
        metadata={
            "help": "static: units of the head's hidden layer (ReLU, dropout 0.1) between the text vector and "
            "the outputs; 0: a linear head (texttune's static student before 2026-12-02)."
        },
    )
    ema_decay: float = field(
        default=0.99,
        metadata={
            "help": "static: validate and keep a moving average of the weights over training, each step "
            "weighing the average by this much and the new weights by the rest (0.99: about the last 100 "
            "steps); 0: the weights as they are at the end of each epoch."
        },
    )
    static_vectors: str = field(
        default="teacher",
        metadata={
            "help": "static: the encoder model2vec embeds each token with: teacher (the run's fine-tuned "
            "encoder, adapters merged) or base (the model the run was fine-tuned from; also used for "
            "runs whose encoder cannot be merged, such as prompt tuning).",
            "choices": STATIC_VECTOR_SOURCES,
        },
    )
    contextual_vectors: bool = field(
        default=True,
        metadata={
            "help": "static: start each token's vector as the encoder's average output at that token in the "
            "training and unlabelled texts, the places the teacher classifies it in (model2vec's vector of "
            "the token alone for tokens they lack). --no-contextual-vectors: model2vec's vectors alone."
        },
    )
    train_vectors: bool = field(
        default=True,
        metadata={
            "help": "static: train the token vectors with the filters and head (at a tenth of their "
            "learning rate). --no-train-vectors keeps model2vec's vectors and trains the filters and head "
            "alone: faster to train, less accurate in our benchmarks; both predict at the same speed."
        },
    )
    seed: int = field(default=42, metadata={"help": "Random seed."})
    overwrite: bool = field(default=False, metadata={"help": "Replace --output if it holds files."})

    def __post_init__(self) -> None:
        if not self.output:
            raise ConfigError("give the student's run folder with --output")
        self.student_layers()  # validates --student
        require_choice(self, "static_vectors", STATIC_VECTOR_SOURCES)
        require_positive(self, ("temperature", "batch_size", "pca_dims"))
        require_non_negative(self, ("early_stopping_patience", "conv_channels", "head_hidden", "augment"))
        require_fraction(self, ("ema_decay",))
        require_positive(self, ("epochs", "learning_rate"), what="a positive number")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(
                f"--alpha must be between 0 and 1 (the weight of the given labels), got {self.alpha}"
            )

    def student_layers(self) -> int | None:
        """None for a static student, else the N of ``layers:N``."""
        if self.student == STATIC_STUDENT:
            return None
        kind, _, count = self.student.partition(":")
        if kind != LAYERS_STUDENT or not count.isdigit() or int(count) < 1:
            raise ConfigError(
                f"--student {self.student!r} is not known; use {STATIC_STUDENT} or {LAYERS_STUDENT}:N "
                "(N layers of the teacher, e.g. layers:2)"
            )
        return int(count)


@dataclass
class DemoConfig:
    """``texttune demo``: the main job in one command, on the built-in model and reviews."""

    output: str = field(default=DEMO_OUTPUT, metadata={"help": "Run folder."})
    overwrite: bool = field(default=False, metadata={"help": "Replace the run folder if it exists."})
    epochs: float = field(default=2.0, metadata={"help": "Epochs."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on a subset for a quicker look."}
    )

    def __post_init__(self) -> None:
        require_positive(self, ("epochs",))
        require_positive(self, ("max_train_samples",), what="a positive number")
