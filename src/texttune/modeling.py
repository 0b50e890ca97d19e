"""Build a sequence-classification model for a label set, from a built-in name, a folder or a hub id."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .assets import resolve_builtin_model
from .errors import ModelError
from .tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL

logger = logging.getLogger(__name__)

PROBLEM_TYPES = {
    SINGLE_LABEL: "single_label_classification",
    MULTI_LABEL: "multi_label_classification",
    REGRESSION: "regression",
}

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def resolve_model_path(name: str) -> str:
    """Turn ``--model`` into something ``from_pretrained`` accepts: a built-in name becomes its folder.

    A local folder must hold a ``config.json`` and safetensors weights; a string that is neither a
    built-in name nor an existing path is passed on as a hub id.
    """
    builtin = resolve_builtin_model(name)
    if builtin is not None:
        return builtin
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"--model {name!r} is a file; give the model folder that holds config.json")
        if not (path / "config.json").is_file():
            raise ModelError(
                f"--model {name!r} is not a model folder (no config.json in it); "
                "give a folder written by save_pretrained or `texttune pretrain`"
            )
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"--model path not found: {name}")
    return name  # hub id, for users with a network


def check_safetensors(path: str) -> None:
    """Refuse local checkpoints that only ship pickled weights (unpickling runs arbitrary code)."""
    folder = Path(path)
    if not folder.is_dir():
        return
    files = [p.name for p in folder.iterdir()]
    if any(f.endswith(".safetensors") for f in files):
        return
    pickled = [f for f in files if f.endswith(_PICKLE_SUFFIXES)]
    if pickled:
        raise ModelError(
            f"{path} only has pickled weights ({', '.join(sorted(pickled))}); texttune loads safetensors only. "
            "Convert them with `model.save_pretrained(dir)` in a trusted environment, or pass --allow-pickle "
            "if you trust the files"
        )
    raise ModelError(f"{path} has no weights (no *.safetensors file)")


def check_model_folder(path: str, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> None:
    """Safety checks on a local ``--model`` folder before anything in it is loaded.

    Args:
        path: The folder (hub ids are checked by transformers when they load).
        allow_pickle: Accept a folder whose weights are only pickled (``--allow-pickle``).
        trust_remote_code: Accept a model that ships its own Python code (``--trust-remote-code``).

    Raises:
        ModelError: pickled weights without ``allow_pickle``, custom code without ``trust_remote_code``.

    Example:
        >>> check_model_folder("path/to/bert")  # doctest: +SKIP
    """
    folder = Path(path)
    if not folder.is_dir():
        return
    if allow_pickle:
        if not any(p.suffix == ".safetensors" for p in folder.iterdir()):
            logger.warning("loading pickled weights from %s because of --allow-pickle", path)
    else:
        check_safetensors(path)
    if trust_remote_code:
        return
    for name in ("config.json", "tokenizer_config.json"):
        try:
            settings = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(settings, dict) and settings.get("auto_map"):
            raise ModelError(
                f"--model {path!r} needs custom code shipped in its folder (auto_map in {name}); texttune "
                "does not run it unless you pass --trust-remote-code (only for code you have read and trust)"
            )


def build_model(
    model_path: str,
    *,
    task: str,
    label_names: list[str],
    tokenizer=None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
):
    """Load ``model_path`` with a fresh classification head for ``label_names`` (or one output for regression).

    Label names go into the config (``id2label``/``label2id``) so every saved copy predicts names.

    Example:
        >>> model = build_model("path/to/bert", task="single_label", label_names=["neg", "pos"])  # doctest: +SKIP
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    check_model_folder(model_path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    num_labels = 1 if task == REGRESSION else len(label_names)
    id2label = {i: name for i, name in enumerate(label_names)} if task != REGRESSION else {0: "score"}
    try:
        config = AutoConfig.from_pretrained(
            model_path,
            num_labels=num_labels,
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            problem_type=PROBLEM_TYPES[task],
            trust_remote_code=trust_remote_code,
        )
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path,
            config=config,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
        )
    except ValueError as exc:
        message = str(exc).splitlines()[0]
        if "trust_remote_code" in message:
            raise ModelError(
                f"model {model_path!r} needs its own code to load; pass --trust-remote-code if you trust it"
            ) from exc
        raise ModelError(f"could not load {model_path!r} for sequence classification: {message}") from exc
    except OSError as exc:
        raise ModelError(f"could not load model {model_path!r}: {str(exc).splitlines()[0]}") from exc
    if tokenizer is not None:
        align_pad_token(model, tokenizer)
    return model


def is_decoder_model(model_config) -> bool:
    """Whether a model config is a decoder-only language model (GPT-2, Llama, ...), not a BERT-style encoder."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(model_config, "model_type", None)
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def align_pad_token(model, tokenizer) -> None:
    """Decoder models classify from the last non-pad token, so the model must know the pad id."""
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
