"""Run configuration: one dataclass per concern, every field with help text.

Field names are unique across the dataclasses so that a flat YAML file (``--config run.yaml``) and the
command-line flags (``--learning-rate`` -> ``learning_rate``) address the same fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

TASKS = ("auto", "single_label", "multi_label", "regression")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
HEADS = ("linear", "mlp")
POOLINGS = ("auto", "cls", "mean", "last")
LONG_TEXT_MODES = ("truncate", "head-tail", "sliding")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def require_positive(options: Any, names: tuple[str, ...]) -> None:
    """Refuse options in ``names`` that are zero or negative; None (use the default) passes."""
    for name in names:
        value = getattr(options, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{_flag(name)} must be positive, got {value}")


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
        if self.task not in TASKS:
            raise ConfigError(f"--task {self.task!r} is not one of {', '.join(TASKS)}")
        if not 0.0 < self.validation_split < 1.0:
            raise ConfigError(
                f"--validation-split must be between 0 and 1 (exclusive), got {self.validation_split}"
            )
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{_flag(name)} must be a positive number, got {value}")
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

    def __post_init__(self) -> None:
        if self.max_length is not None and self.max_length < 8:
            raise ConfigError(f"--max-length must be at least 8 tokens, got {self.max_length}")
        if self.long_text not in LONG_TEXT_MODES:
            raise ConfigError(f"--long-text {self.long_text!r} is not one of {', '.join(LONG_TEXT_MODES)}")
        if self.stride is not None:
            if self.long_text != "sliding":
                raise ConfigError("--stride only applies to --long-text sliding")
            if self.stride < 0:
                raise ConfigError(f"--stride must not be negative, got {self.stride}")
            if self.max_length is not None and self.stride >= self.max_length // 2:
                raise ConfigError(
                    f"--stride {self.stride} must be below half of --max-length {self.max_length}"
                )


@dataclass
class TrainConfig:
    """How to train. Defaults follow the BERT paper's fine-tuning recipe (Devlin et al., 2019, A.3):
    learning rate 5e-5 (the top of its grid {5e-5, 3e-5, 2e-5}; a built-in model may bring its own tuned
    rate), batch size 32, 3 epochs, linear decay after a 10% warmup, weight decay 0.01. Evaluation runs
    every epoch and the best epoch is kept."""

    output: str | None = field(default=None, metadata={"help": "Folder to write the run into."})
    overwrite: bool = field(default=False, metadata={"help": "Replace --output if it already holds files."})
    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate (AdamW). Default: the built-in model's tuned rate (minilm: 1e-4), "
            "else 5e-5."
        },
    )
    epochs: float = field(default=3.0, metadata={"help": "Number of passes over the training data."})
    batch_size: int = field(default=32, metadata={"help": "Training batch size per device."})
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
    precision: str = field(
        default="auto",
        metadata={
            "help": "fp32, fp16 or bf16 (autocast; weights stay fp32). auto: bf16 on GPUs and on CPUs with "
            "native bf16 (AVX512-BF16 or AMX), fp16 on older GPUs, fp32 on other CPUs."
        },
    )
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
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        positive = ("learning_rate", "epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps")
        require_positive(self, positive)
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must not be negative, got {self.weight_decay}")
        if self.save_steps is not None and self.save_steps < 1:
            raise ConfigError(f"--save-steps must be at least 1, got {self.save_steps}")
        if self.resume and self.overwrite:
            raise ConfigError(
                "--resume and --overwrite conflict: --overwrite starts over and discards the checkpoints; "
                "drop one of them"
            )
        if self.max_tokens_per_batch is not None and self.max_tokens_per_batch < 8:
            raise ConfigError(f"--max-tokens-per-batch must be at least 8, got {self.max_tokens_per_batch}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ConfigError(
                f"--early-stopping-patience must be at least 1, got {self.early_stopping_patience}"
            )
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
class StrategyConfig:
    """Which parameters train and how: the fine-tuning strategy and its knobs.

    Each knob only matters for the strategies named in its help text; the others ignore it.
    """

    strategy: str = field(
        default="full",
        metadata={
            "help": "full (every parameter trains), freeze (frozen base, a head trains on cached features), "
            "partial (--freeze-layers), lora, ia3, prefix, prompt or ptuning (peft adapters)."
        },
    )
    head: str = field(default="linear", metadata={"help": "freeze: the head, linear or mlp."})
    pooling: str = field(
        default="auto",
        metadata={
            "help": "freeze: how token vectors become one feature vector: cls (first token), mean, last "
            "(last non-pad token). auto: last for decoder models, else cls."
        },
    )
    head_hidden_size: int = field(default=256, metadata={"help": "freeze --head mlp: hidden layer width."})
    head_layers: int = field(default=1, metadata={"help": "freeze --head mlp: number of hidden layers."})
    head_dropout: float = field(default=0.1, metadata={"help": "freeze: dropout before each head layer."})
    head_batchnorm: bool = field(
        default=False, metadata={"help": "freeze --head mlp: BatchNorm after each hidden layer."}
    )
    freeze_layers: int | None = field(
        default=None,
        metadata={
            "help": "partial: freeze the embeddings and the bottom N transformer layers; a negative N "
            "keeps the top -N layers trainable and freezes the rest."
        },
    )
    lora_rank: int = field(default=8, metadata={"help": "lora: rank of the update matrices."})
    lora_alpha: float = field(default=16.0, metadata={"help": "lora: scaling (alpha / rank)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "lora: dropout on the adapter input."})
    target_modules: str | None = field(
        default=None,
        metadata={
            "help": "lora/ia3: comma-separated module names to adapt (e.g. query,value). "
            "Default: chosen for the architecture."
        },
    )
    num_virtual_tokens: int = field(
        default=20, metadata={"help": "prefix/prompt/ptuning: number of virtual tokens."}
    )
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

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ConfigError(f"--head {self.head!r} is not one of {', '.join(HEADS)}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"--pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}")
        positive = ("head_hidden_size", "head_layers", "lora_rank", "lora_alpha", "num_virtual_tokens")
        positive += ("mlm_epochs", "mlm_learning_rate")
        require_positive(self, positive)
        for name in ("head_dropout", "lora_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{_flag(name)} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ConfigError(f"--mlm-probability must be between 0 and 1, got {self.mlm_probability}")
        if self.strategy == "partial" and self.freeze_layers is None:
            raise ConfigError("--strategy partial needs --freeze-layers N (bottom layers to freeze)")
        if self.target_modules is not None and not self.target_module_list():
            raise ConfigError("--target-modules must name at least one module, e.g. query,value")

    def target_module_list(self) -> list[str] | None:
        """``--target-modules`` as a list, or None for the architecture's default."""
        if self.target_modules is None:
            return None
        return [name.strip() for name in self.target_modules.split(",") if name.strip()]


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
            parts[owners[key]][key] = _coerce(key, value, source)
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


def field_types() -> dict[str, str]:
    return {f.name: str(f.type) for klass in _SECTION_CLASSES.values() for f in dataclasses.fields(klass)}


def _coerce(key: str, value: Any, source: str) -> Any:
    """Check a YAML value against the field's declared type; YAML gives ints/floats/bools natively."""
    kind = field_types()[key]
    if value is None:
        if "None" in kind:
            return None
        raise ConfigError(f"{source} key {key!r} must not be empty")
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source} key {key!r} must be true or false, got {value!r}")
    if kind.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source} key {key!r} must be a whole number, got {value!r}")
    if kind.startswith("float"):
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 2e-5 (no dot) as a string
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{source} key {key!r} must be a number, got {value!r}")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{source} key {key!r} must be a string, got {value!r}")


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
    return {key: _coerce(key, value, f"config file {path}:") for key, value in flat.items()}
