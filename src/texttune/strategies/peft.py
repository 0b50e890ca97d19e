"""``--strategy lora|ia3|prefix|prompt|ptuning``: parameter-efficient adapters through ``peft``.

Every adapter is created with ``task_type=SEQ_CLS``, which makes ``peft`` train the classification
head and save it in ``adapter_model.safetensors`` next to the adapter; without it the head stays at
its random initialisation and a reloaded run predicts at random. The run folder holds the adapter and
the classifier's ``config.json`` (label names, pad token); loading rebuilds the classifier from the
base model (the run's ``--model``, or the ``mlm_model/`` folder that ``--mlm-first`` wrote) and puts
the adapter on it.

LoRA and IA3 also adapt a :class:`texttune.heads.PooledClassifier` (a checkpoint's own pooling, see
``--pooling``): peft wraps it as a plain module, the head trains and is saved with the adapter
(``modules_to_save``), and ``head.json`` keeps its layout and pooling rule.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError
from ..options import require_fraction, require_positive
from . import Strategy, register

logger = logging.getLogger(__name__)


@dataclass
class TargetOptions:
    """Which modules an adapter changes (LoRA, IA3)."""

    target_modules: str | None = field(
        default=None,
        metadata={
            "help": "comma-separated module names to adapt (e.g. query,value). Default: chosen for the "
            "architecture."
        },
    )

    def __post_init__(self) -> None:
        if self.target_modules is not None and not target_module_list(self.target_modules):
            raise ConfigError("--target-modules must name at least one module, e.g. query,value")


@dataclass
class LoraOptions(TargetOptions):
    """``--strategy lora``: the rank, scaling and dropout of the low-rank updates."""

    lora_rank: int = field(default=8, metadata={"help": "rank of the update matrices."})
    lora_alpha: float = field(default=16.0, metadata={"help": "scaling (alpha / rank)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the adapter input."})

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, ("lora_rank", "lora_alpha"))
        require_fraction(self, ("lora_dropout",))


@dataclass
class VirtualTokenOptions:
    """Prefix, prompt and p-tuning: how many virtual tokens are learned."""

    num_virtual_tokens: int = field(default=20, metadata={"help": "number of virtual tokens."})

    def __post_init__(self) -> None:
        require_positive(self, ("num_virtual_tokens",))


def target_module_list(spec: str | None) -> list[str] | None:
    """``--target-modules`` as a list, or None for the architecture's default."""
    if spec is None:
        return None
    return [name.strip() for name in spec.split(",") if name.strip()]


#: Modules to adapt where ``peft`` has no default for the architecture.
LORA_TARGETS = {"distilbert": ["q_lin", "v_lin"]}
IA3_TARGETS = {"distilbert": (["q_lin", "v_lin", "lin2"], ["lin2"])}  # (targets, feed-forward ones)


def _peft():
    try:
        import peft
    except ImportError as exc:  # a declared dependency, but keep the message useful if it is missing
        raise ModelError("adapter strategies need peft: pip install peft") from exc
    return peft


class PeftStrategy(Strategy):
    """Shared by the adapter methods: wrap, save, load and merge through ``peft``."""

    plain_weights = False

    def peft_config(self, model, options):
        raise NotImplementedError

    def check(self, model) -> None:
        """Refuse model/method combinations that would train but not work."""

    def prepare(self, model, options):
        self.check(model)
        peft_config = self.peft_config(model, options)
        if _is_pooled(model):
            # peft's SEQ_CLS wrapper expects the architecture's own head; a pooled classifier is a plain
            # module whose trained head is saved with the adapter.
            peft_config.task_type = None
            peft_config.modules_to_save = ["head"]
        extra = _modules_to_save(model)
        if extra:
            peft_config.modules_to_save = list(peft_config.modules_to_save or []) + extra
        try:
            wrapped = self.wrap(model, peft_config)
        except ValueError as exc:
            raise ModelError(f"--strategy {self.name}: {str(exc).splitlines()[0]}") from exc
        return wrapped

    def wrap(self, model, peft_config):
        """Put a new adapter on ``model`` (peft's model class for the task)."""
        return _peft().get_peft_model(model, peft_config)

    def attach(self, model, folder: Path):
        """Put the trained adapter saved in ``folder`` on ``model``."""
        return _peft().PeftModel.from_pretrained(model, str(folder))

    def save(self, model, folder: Path) -> None:
        from ..artifacts import HEAD_CONFIG_FILE, write_json

        model.save_pretrained(str(folder))
        classifier = model.get_base_model()
        # The adapter folder has no config.json: without it the label names would be lost.
        classifier.config.save_pretrained(str(folder))
        if _is_pooled(classifier):
            write_json(folder / HEAD_CONFIG_FILE, classifier.head_spec())

    def load(self, folder: Path, manifest, **kwargs) -> Any:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        from ..artifacts import (
            ADAPTER_CONFIG_FILE,
            ADAPTER_WEIGHTS_FILE,
            HEAD_CONFIG_FILE,
            MODEL_CONFIG_FILE,
            base_model_path,
            require_files,
        )
        from ..heads import PooledClassifier

        require_files(folder, [MODEL_CONFIG_FILE, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE])
        base = base_model_path(folder, manifest, "restore it or export a merged model while it exists")
        if (folder / HEAD_CONFIG_FILE).is_file():
            # The trained head is in the adapter file: build the classifier around the base, then attach.
            model = PooledClassifier.from_pretrained(folder, base=base, head_weights=False, **kwargs)
        else:
            config = AutoConfig.from_pretrained(str(folder))
            model = AutoModelForSequenceClassification.from_pretrained(
                base, config=config, use_safetensors=True, **kwargs
            )
        return self.attach(model, folder).eval()

    def merged_model(self, folder: Path, manifest) -> Any:
        if not self.mergeable:
            return super().merged_model(folder, manifest)
        model = self.load(folder, manifest)
        _unwrap_modules_to_save(model)
        return model.merge_and_unload()


def _is_pooled(model) -> bool:
    from ..heads import PooledClassifier

    return isinstance(model, PooledClassifier)


def _modules_to_save(model) -> list[str]:
    """Base modules that train and are saved with the adapter besides peft's classification head.

    BERT-style models classify from ``pooler(CLS)``, so the pooler is part of the classification head:
    checkpoints trained for mean-pooled sentence embeddings (such as the built-in MiniLM) ship a pooler
    whose output is nearly constant across texts (mean |x| 0.05 on the built-in model), and with it frozen
    an adapter run stays at the majority class. A pooler the checkpoint lacks would also be re-initialised
    at every load; saving it keeps reloads identical.
    """
    base = getattr(model, "base_model", None)
    if getattr(base, "pooler", None) is None:
        return []
    logger.info("the pooler trains with the adapter and is saved with it")
    return ["pooler"]


def _unwrap_modules_to_save(model) -> None:
    """Put each trained head copy in place of its wrapper before merging.

    Merging IA3 into a model with a multi-layer head (RoBERTa) fails on the wrapper; the plain module works.
    """
    from peft.utils import ModulesToSaveWrapper

    for name, module in list(model.named_modules()):
        if isinstance(module, ModulesToSaveWrapper):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.modules_to_save[module.active_adapter])


def _targets(model, options: TargetOptions, method: str, own: dict[str, Any]) -> Any:
    given = target_module_list(options.target_modules)
    if given is not None:
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [m for m in given if m.rsplit(".", 1)[-1] not in names]
        if missing:
            raise ConfigError(
                f"--target-modules {', '.join(missing)} not found in the model; module names include "
                f"{', '.join(sorted(n for n in names if n)[:20])}"
            )
        return given
    kind = model.config.model_type
    if kind in own:
        return own[kind]
    from peft.utils import constants

    mapping = getattr(constants, f"TRANSFORMERS_MODELS_TO_{method.upper()}_TARGET_MODULES_MAPPING")
    if kind not in mapping:
        raise ConfigError(
            f"--strategy {method} has no default target modules for {kind!r} models; "
            "name them with --target-modules (e.g. q_proj,v_proj)"
        )
    return None  # peft's own default for the architecture


def _cache_argument(backbone) -> str | None:
    """The name under which ``backbone.forward`` takes a key/value cache, or None if it takes none."""
    import inspect

    parameters = inspect.signature(backbone.forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


@functools.cache
def _prefix_model_class():
    """peft's sequence classifier, handing the prefix cache to models that call it ``cache``."""
    peft = _peft()

    class PrefixCacheModel(peft.PeftModelForSequenceClassification):
        # Overridden because peft's version passes the prefixes only as `past_key_values` and refuses
        # models whose forward names the cache `cache` (transformers >= 5.24).
        def _prefix_tuning_forward(self, input_ids=None, inputs_embeds=None, **kwargs):
            backbone = self.base_model.get_submodule(self.transformer_backbone_name)
            if _cache_argument(backbone) != "cache":
                return super()._prefix_tuning_forward(
                    input_ids=input_ids, inputs_embeds=inputs_embeds, **kwargs
                )
            batch_size = (input_ids if input_ids is not None else inputs_embeds).shape[0]
            # The classifier passes keyword arguments it does not name on to its backbone.
            return self.base_model(
                input_ids=input_ids, inputs_embeds=inputs_embeds, cache=self.get_prompt(batch_size), **kwargs
            )

    return PrefixCacheModel


def _prompt_dims(model) -> dict[str, int]:
    # peft reads these from the config dict, where DistilBERT names them dim / n_heads / n_layers.
    config = model.config
    return {
        "token_dim": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "num_layers": config.num_hidden_layers,
    }


@register("lora")
class LoraStrategy(PeftStrategy):
    """Low-rank updates of the attention projections (Hu et al., 2021)."""

    summary = "low-rank updates of the attention projections + the head"
    options = LoraOptions
    mergeable = True
    learning_rate = 1e-3  # the LoRA paper's GLUE rates were 4e-4..5e-4 at rank 8 over many epochs

    def peft_config(self, model, options):
        peft = _peft()
        return peft.LoraConfig(
            task_type=peft.TaskType.SEQ_CLS,
            r=options.lora_rank,
            lora_alpha=options.lora_alpha,
            lora_dropout=options.lora_dropout,
            target_modules=_targets(model, options, "lora", LORA_TARGETS),
        )


@register("ia3")
class IA3Strategy(PeftStrategy):
    """Learned rescaling of keys, values and feed-forward activations (Liu et al., 2022)."""

    summary = "learned scalings of keys, values and feed-forward activations + the head"
    options = TargetOptions
    mergeable = True
    learning_rate = 3e-3  # the (IA)3 paper's rate

    def peft_config(self, model, options):
        peft = _peft()
        kind = model.config.model_type
        own = {k: v[0] for k, v in IA3_TARGETS.items()}
        targets = _targets(model, options, "ia3", own)
        feedforward = None
        if options.target_modules is None and kind in IA3_TARGETS:
            feedforward = IA3_TARGETS[kind][1]
        elif options.target_modules is not None:
            feedforward = []  # user-chosen targets: scale their outputs, not their inputs
        return peft.IA3Config(
            task_type=peft.TaskType.SEQ_CLS, target_modules=targets, feedforward_modules=feedforward
        )


class _PromptStrategy(PeftStrategy):
    options = VirtualTokenOptions
    pooled_head = False  # peft's virtual tokens need its sequence-classification wrapper

    def check(self, model) -> None:
        from ..modeling import is_decoder_model

        if is_decoder_model(model.config):
            raise ModelError(
                f"--strategy {self.name} on a decoder model ({model.config.model_type}) classifies from a "
                "padding position, so predictions depend on the batch; use --strategy lora, ia3 or prefix"
            )


@register("prefix")
class PrefixStrategy(PeftStrategy):
    """Trained key/value prefixes in every attention layer (Li & Liang, 2021).

    peft hands the prefixes to the model as a key/value cache. transformers 5.24 renamed that argument
    from ``past_key_values`` to ``cache`` (BERT, GPT-2, ...), and peft 0.21 still looks for the old name;
    :func:`_prefix_model_class` passes the cache under whichever name the model takes.
    """

    summary = "key/value prefixes in every layer + the head"
    options = VirtualTokenOptions
    pooled_head = False  # peft's prefix cache needs its sequence-classification wrapper
    learning_rate = 1e-2  # peft's prefix-tuning examples

    def check(self, model) -> None:
        if _cache_argument(model.base_model) is None:
            import peft
            import transformers

            raise ModelError(
                f"--strategy prefix does not support {model.config.model_type} models with transformers "
                f"{transformers.__version__} and peft {peft.__version__} (their forward takes no key/value "
                "cache); use --strategy lora, ia3, prompt or ptuning"
            )

    def wrap(self, model, peft_config):
        return _prefix_model_class()(model, peft_config)

    def attach(self, model, folder: Path):
        peft = _peft()
        config = peft.PeftConfig.from_pretrained(str(folder))
        config.inference_mode = True  # as PeftModel.from_pretrained sets it
        wrapped = _prefix_model_class()(model, config)
        wrapped.load_adapter(str(folder), "default")
        return wrapped

    def peft_config(self, model, options):
        peft = _peft()
        return peft.PrefixTuningConfig(
            task_type=peft.TaskType.SEQ_CLS,
            num_virtual_tokens=options.num_virtual_tokens,
            **_prompt_dims(model),
        )


@register("prompt")
class PromptStrategy(_PromptStrategy):
    """Trained soft-prompt embeddings before the input (Lester et al., 2021)."""

    summary = "soft-prompt embeddings + the head"
    learning_rate = 3e-2  # peft's prompt-tuning examples; prompt embeddings need large steps

    def peft_config(self, model, options):
        peft = _peft()
        return peft.PromptTuningConfig(
            task_type=peft.TaskType.SEQ_CLS,
            num_virtual_tokens=options.num_virtual_tokens,
            **_prompt_dims(model),
        )


@register("ptuning")
class PTuningStrategy(_PromptStrategy):
    """Soft prompts produced by a small trained encoder (P-tuning, Liu et al., 2021)."""

    summary = "soft prompts from a small prompt encoder + the head"
    learning_rate = 1e-3  # peft's p-tuning examples

    def peft_config(self, model, options):
        peft = _peft()
        return peft.PromptEncoderConfig(
            task_type=peft.TaskType.SEQ_CLS,
            num_virtual_tokens=options.num_virtual_tokens,
            encoder_hidden_size=model.config.hidden_size,
            **_prompt_dims(model),
        )
