"""``--strategy lora|ia3|prefix|prompt|ptuning``: parameter-efficient adapters through ``peft``.

Every adapter is created with ``task_type=SEQ_CLS``, which makes ``peft`` train the classification
head and save it in ``adapter_model.safetensors`` next to the adapter; without it the head stays at
its random initialisation and a reloaded run predicts at random. The run folder holds the adapter and
the classifier's ``config.json`` (label names, pad token); loading rebuilds the classifier from the
base model (the run's ``--model``, or the ``mlm_model/`` folder that ``--mlm-first`` wrote) and puts
the adapter on it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..artifacts import MLM_MODEL_DIR
from ..config import StrategyConfig
from ..errors import ConfigError, ModelError
from . import Strategy, is_decoder_model, register

logger = logging.getLogger(__name__)

ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"

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

    def peft_config(self, model, config: StrategyConfig):
        raise NotImplementedError

    def check(self, model) -> None:
        """Refuse model/method combinations that would train but not work."""

    def prepare(self, model, config: StrategyConfig):
        peft = _peft()
        self.check(model)
        peft_config = self.peft_config(model, config)
        extra = _modules_to_save(model)
        if extra:
            peft_config.modules_to_save = list(peft_config.modules_to_save or []) + extra
        try:
            wrapped = peft.get_peft_model(model, peft_config)
        except ValueError as exc:
            raise ModelError(f"--strategy {self.name}: {str(exc).splitlines()[0]}") from exc
        return wrapped

    def save(self, model, folder: Path) -> None:
        model.save_pretrained(str(folder))
        # The adapter folder has no config.json: without it the label names would be lost.
        model.get_base_model().config.save_pretrained(str(folder))

    def load(self, folder: Path, manifest) -> Any:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        from ..artifacts import MODEL_CONFIG_FILE, require_files

        peft = _peft()
        require_files(folder, [MODEL_CONFIG_FILE, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE])
        base = base_model_path(folder, manifest)
        config = AutoConfig.from_pretrained(str(folder))
        model = AutoModelForSequenceClassification.from_pretrained(base, config=config, use_safetensors=True)
        return peft.PeftModel.from_pretrained(model, str(folder)).eval()

    def merged_model(self, folder: Path, manifest) -> Any:
        if self.name not in ("lora", "ia3"):
            return super().merged_model(folder, manifest)
        model = self.load(folder, manifest)
        _unwrap_modules_to_save(model)
        return model.merge_and_unload()


def base_model_path(folder: Path, manifest) -> str:
    """The base model an adapter run was trained on; the message names the path when it is gone."""
    from ..modeling import resolve_model_path

    adapted = folder / MLM_MODEL_DIR
    if adapted.is_dir():
        return str(adapted)
    try:
        return resolve_model_path(manifest.base_model)
    except ModelError as exc:
        raise ModelError(
            f"the {manifest.strategy} run {folder} needs its base model {manifest.base_model!r}, "
            f"which cannot be loaded ({exc}); restore it or export a merged model while it exists"
        ) from None


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


def _targets(model, config: StrategyConfig, method: str, own: dict[str, Any]) -> Any:
    given = config.target_module_list()
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

    def peft_config(self, model, config):
        peft = _peft()
        return peft.LoraConfig(
            task_type=peft.TaskType.SEQ_CLS,
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=_targets(model, config, "lora", LORA_TARGETS),
        )


@register("ia3")
class IA3Strategy(PeftStrategy):
    """Learned rescaling of keys, values and feed-forward activations (Liu et al., 2022)."""

    def peft_config(self, model, config):
        peft = _peft()
        kind = model.config.model_type
        own = {k: v[0] for k, v in IA3_TARGETS.items()}
        targets = _targets(model, config, "ia3", own)
        feedforward = None
        if config.target_modules is None and kind in IA3_TARGETS:
            feedforward = IA3_TARGETS[kind][1]
        elif config.target_modules is not None:
            feedforward = []  # user-chosen targets: scale their outputs, not their inputs
        return peft.IA3Config(
            task_type=peft.TaskType.SEQ_CLS, target_modules=targets, feedforward_modules=feedforward
        )


class _PromptStrategy(PeftStrategy):
    def check(self, model) -> None:
        if is_decoder_model(model.config):
            raise ModelError(
                f"--strategy {self.name} on a decoder model ({model.config.model_type}) classifies from a "
                "padding position, so predictions depend on the batch; use --strategy lora, ia3 or prefix"
            )


@register("prefix")
class PrefixStrategy(PeftStrategy):
    """Trained key/value prefixes in every attention layer (Li & Liang, 2021)."""

    def check(self, model) -> None:
        import inspect

        if "past_key_values" not in inspect.signature(model.base_model.forward).parameters:
            raise ModelError(
                f"--strategy prefix does not support {model.config.model_type} models (they take no "
                "past key values); use --strategy prompt, ptuning or lora"
            )

    def peft_config(self, model, config):
        peft = _peft()
        return peft.PrefixTuningConfig(
            task_type=peft.TaskType.SEQ_CLS,
            num_virtual_tokens=config.num_virtual_tokens,
            **_prompt_dims(model),
        )


@register("prompt")
class PromptStrategy(_PromptStrategy):
    """Trained soft-prompt embeddings before the input (Lester et al., 2021)."""

    def peft_config(self, model, config):
        peft = _peft()
        return peft.PromptTuningConfig(
            task_type=peft.TaskType.SEQ_CLS,
            num_virtual_tokens=config.num_virtual_tokens,
            **_prompt_dims(model),
        )


@register("ptuning")
class PTuningStrategy(_PromptStrategy):
    """Soft prompts produced by a small trained encoder (P-tuning, Liu et al., 2021)."""

    def peft_config(self, model, config):
        peft = _peft()
        return peft.PromptEncoderConfig(
            task_type=peft.TaskType.SEQ_CLS,
            num_virtual_tokens=config.num_virtual_tokens,
            encoder_hidden_size=model.config.hidden_size,
            **_prompt_dims(model),
        )
