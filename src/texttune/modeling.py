"""Build a sequence-classification model for a label set, from a built-in name, a folder or a hub id."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .assets import resolve_builtin_model
from .errors import ConfigError, ModelError
from .tasks import MULTI_LABEL, POOLINGS, REGRESSION, SINGLE_LABEL

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


#: sentence-transformers' pooling flags (``1_Pooling/config.json``) -> our pooling rule, most telling first.
_SENTENCE_TRANSFORMERS_POOLING = {
    "pooling_mode_lasttoken": "last",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
}


def checkpoint_pooling(model_path: str) -> str | None:
    """How a sentence-transformers checkpoint pools its token vectors (``mean``, ``cls``, ...), else None.

    Read from the checkpoint's ``modules.json`` and the pooling module's ``config.json`` (a local folder, or
    a hub repo when the hub is reachable). Its ``Normalize`` step is not copied: a classification head is
    scale-sensitive and learns its own scale (SetFit's heads also read unnormalised embeddings).

    Example:
        >>> checkpoint_pooling(resolve_model_path("minilm"))  # doctest: +SKIP
        'mean'
    """
    modules = _checkpoint_json(model_path, "modules.json")
    if not isinstance(modules, list):
        return None
    folder = next((m.get("path") for m in modules if str(m.get("type", "")).endswith(".Pooling")), None)
    if folder is None:
        return None
    settings = _checkpoint_json(model_path, f"{folder}/config.json") or {}
    chosen = [rule for flag, rule in _SENTENCE_TRANSFORMERS_POOLING.items() if settings.get(flag)]
    if len(chosen) != 1:
        if chosen:
            logger.info("%s pools several ways (%s); using the architecture's own head", model_path, chosen)
        return None
    return chosen[0]


def copy_pooling_record(model_path: str, folder: Path) -> str | None:
    """Write the pooling record of a sentence-transformers checkpoint into a model folder made from it.

    A folder written by ``save_pretrained`` (masked-LM pretraining's, say) holds no ``modules.json``, so
    ``--pooling auto`` would classify from the architecture's pooler instead of the pooling the checkpoint
    was trained with. This writes its ``modules.json`` (the transformer and the pooling module) and the
    pooling module's ``config.json``. Returns the pooling rule carried over, or None (nothing written).
    """
    rule = checkpoint_pooling(model_path)
    if rule is None:
        return None
    modules = _checkpoint_json(model_path, "modules.json")
    kept = [m for m in modules if str(m.get("type", "")).endswith((".Transformer", ".Pooling"))]
    pooling = next(m["path"] for m in kept if str(m.get("type", "")).endswith(".Pooling"))
    (folder / pooling).mkdir(parents=True, exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(kept, indent=2), encoding="utf-8")
    settings = _checkpoint_json(model_path, f"{pooling}/config.json")
    (folder / pooling / "config.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return rule


def _checkpoint_json(model_path: str, name: str):
    folder = Path(model_path)
    try:
        if folder.is_dir():
            return json.loads((folder / name).read_text(encoding="utf-8"))
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(model_path, name)).read_text(encoding="utf-8"))
    except Exception:  # absent, unreachable or unreadable: the checkpoint just says nothing about pooling
        return None


def resolve_pooling(requested: str, model_path: str, strategy) -> str:
    """The pooling a run uses: ``--pooling`` as given, or for ``auto`` the checkpoint's own.

    ``auto`` is the sentence-transformers pooling the checkpoint was trained with, where the strategy can
    classify from a pooled head; else ``pooler`` (the architecture's own head), or for a strategy that
    needs pooled features, the last real token of decoder models and the first token of others.

    Raises:
        ConfigError: The strategy cannot classify the requested way; the message names the choices.
    """
    if requested == "pooler" and not strategy.native_head:
        raise ConfigError(
            f"--strategy {strategy.name} trains a head on pooled features; use --pooling {', '.join(POOLINGS)} or auto"
        )
    if requested in POOLINGS and not strategy.pooled_head:
        raise ConfigError(
            f"--strategy {strategy.name} classifies with the model's own head; use --pooling pooler or auto"
        )
    if requested != "auto":
        return requested
    own = checkpoint_pooling(model_path) if strategy.pooled_head else None
    if own is not None:
        return own
    if strategy.native_head:
        return "pooler"
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load model {model_path!r}: {str(exc).splitlines()[0]}") from exc
    return "last" if is_decoder_model(model_config) else "cls"


def build_model(
    model_path: str,
    *,
    task: str,
    label_names: list[str],
    tokenizer=None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    pooling: str = "pooler",
):
    """Load ``model_path`` with a fresh classification head for ``label_names`` (or one output for regression).

    Label names go into the config (``id2label``/``label2id``) so every saved copy predicts names. With
    ``pooling="pooler"`` the model is the architecture's ``AutoModelForSequenceClassification``; with a
    pooling rule (``mean``, ``cls``, ``max``, ``last``) it is a :class:`texttune.heads.PooledClassifier`:
    the bare base model, that pooling and a linear head.

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
        if pooling == "pooler":
            model = AutoModelForSequenceClassification.from_pretrained(
                model_path,
                config=config,
                trust_remote_code=trust_remote_code,
                use_safetensors=None if allow_pickle else True,
            )
        else:
            model = _pooled_classifier(model_path, config, pooling, allow_pickle, trust_remote_code)
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


def _pooled_classifier(model_path: str, config, pooling: str, allow_pickle: bool, trust_remote_code: bool):
    from .heads import ClassifierHead, PooledClassifier, load_base_model

    base = load_base_model(
        model_path,
        config,
        trust_remote_code=trust_remote_code,
        use_safetensors=None if allow_pickle else True,
    )
    spec = {
        "head": "linear",
        "input_size": config.hidden_size,
        "hidden_size": config.hidden_size,
        "layers": 0,
        "dropout": _dropout(config),
        "batchnorm": False,
        "num_labels": config.num_labels,
        "problem_type": config.problem_type,
    }
    return PooledClassifier(base, ClassifierHead(spec), pooling)


def _dropout(config) -> float:
    """The dropout the architecture's own head uses before its classifier."""
    for name in ("classifier_dropout", "hidden_dropout_prob", "seq_classif_dropout", "dropout"):
        value = getattr(config, name, None)
        if isinstance(value, float):
            return value
    return 0.1


def load_classifier(folder: str | Path, **kwargs):
    """Load the classifier of a run folder (or exported folder) in eval mode: pooled when it has ``head.json``.

    Args:
        folder: A folder written by ``save_pretrained`` (a run of a plain-weights strategy, a merged export).
        **kwargs: Passed to ``from_pretrained`` (e.g. ``attn_implementation="eager"``).

    Example:
        >>> model = load_classifier("runs/demo")  # doctest: +SKIP
    """
    from transformers import AutoModelForSequenceClassification

    from .artifacts import HEAD_CONFIG_FILE
    from .heads import PooledClassifier

    if (Path(folder) / HEAD_CONFIG_FILE).is_file():
        return PooledClassifier.from_pretrained(folder, **kwargs)
    return AutoModelForSequenceClassification.from_pretrained(
        str(folder), use_safetensors=True, **kwargs
    ).eval()


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
