"""Continued masked-LM pretraining on unlabelled domain text (``texttune pretrain``, ``--mlm-first``).

The masked-LM counterpart of :mod:`texttune.training`: 15% of the tokens (``mlm_probability``) are
selected, of which 80% become ``[MASK]``, 10% a random token and 10% stay (the BERT recipe), optionally
whole words at a time. The result is a plain model folder (safetensors, tokenizer included) that
``texttune train --model DIR`` fine-tunes.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError, ModelError

logger = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns.

    Attributes:
        output: The model folder written.
        texts: Number of texts trained on.
        train_seconds: Training wall time.
        loss: Mean training loss over the run.
    """

    output: Path
    texts: int
    train_seconds: float
    loss: float


def read_texts(source: str, *, text_column: str | None = None, encoding: str = "utf-8") -> list[str]:
    """Unlabelled texts: a ``.txt`` file (one text per line) or any data source ``--data`` accepts.

    Args:
        source: A ``.txt`` file, a CSV/JSON/Parquet file, a saved dataset or a built-in dataset name
            (its ``train`` split).
        text_column: The text column of a table; detected when None.
        encoding: Text encoding of text files.

    Returns:
        The non-blank texts, in file order.

    Raises:
        DataError: The source is missing, unreadable or holds no text.
    """
    from .data import read_source, resolve_text_columns
    from .data.splits import TRAIN_SPLITS, pick_split

    path = Path(source).expanduser()
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise DataError(f"text file not found: {source} (check --data)")
        try:
            lines = path.read_text(encoding=encoding).splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{source} is not {encoding} text ({exc.reason}); pass --encoding") from None
        texts = [line.strip() for line in lines if line.strip()]
    else:
        table = pick_split(
            read_source(source, encoding), TRAIN_SPLITS, source, "--data", any_split=True
        ).dataset
        column, _ = resolve_text_columns(table.column_names, text_column, None, where=source)
        texts = [str(t).strip() for t in table[column] if t is not None and str(t).strip()]
    if not texts:
        raise DataError(f"{source} holds no text to pretrain on")
    return texts


def pretrain(
    data: str, model: str, output: str | Path, *, progress: bool = True, **options: Any
) -> PretrainResult:
    """Continue masked-LM pretraining of ``model`` on the texts of ``data``; write a model folder to ``output``.

    Args:
        data: Unlabelled texts (see :func:`read_texts`).
        model: A built-in name, a model folder or a hub id of a masked-LM model (BERT, RoBERTa, ...).
        output: The folder to write (model, config and tokenizer).
        progress: Show a progress bar.
        **options: Any other field of :class:`~texttune.config.PretrainConfig` (``epochs``,
            ``learning_rate``, ``batch_size``, ``max_length``, ``mlm_probability``, ``whole_word_mask``,
            ``max_train_samples``, ``seed``, ``text_column``, ``encoding``, ``precision``, ``use_cpu``, ``overwrite``,
            ``trust_remote_code``), validated as on the command line.

    Returns:
        A :class:`PretrainResult`.

    Example:
        >>> pretrain("reviews.txt", "minilm", "models/minilm-reviews", epochs=1)  # doctest: +SKIP
    """
    from .artifacts import CHECKPOINT_DIR, AtomicDir, check_output_dir
    from .config import PretrainConfig
    from .modeling import copy_pooling_record
    from .trainer import make_trainer

    config = PretrainConfig(data=data, model=model, output=str(output), **options)
    output = check_output_dir(config.output, config.overwrite)
    texts = read_texts(data, text_column=config.text_column, encoding=config.encoding)
    if config.max_train_samples and len(texts) > config.max_train_samples:
        texts = random.Random(config.seed).sample(texts, config.max_train_samples)
    model_path, tokenizer, mlm = _masked_lm(config)
    dataset, collator = _masked_batches(texts, tokenizer, config)
    hooks = logits_at_masked_positions_only(mlm)
    with AtomicDir(output, overwrite=config.overwrite) as tmp:
        args = _arguments(config, tmp / CHECKPOINT_DIR, progress)
        trainer = make_trainer(
            mlm,
            args,
            train_dataset=dataset,
            collator=collator,
            tokenizer=tokenizer,
            micro_batch_tokens=config.micro_batch_tokens,
            progress=progress,
        )
        started = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - started
        for hook in hooks:
            hook.remove()
        mlm.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        copy_pooling_record(model_path, tmp)  # fine-tuning then pools the way the model was trained
        shutil.rmtree(tmp / CHECKPOINT_DIR, ignore_errors=True)
    logger.info("masked-LM model written to %s (loss %.3f)", output, result.training_loss)
    return PretrainResult(output=output, texts=len(texts), train_seconds=seconds, loss=result.training_loss)


def _masked_lm(config):
    """The resolved path, tokenizer and masked-LM model of ``config.model``; refuses models that cannot do
    masked LM."""
    from transformers import AutoModelForMaskedLM

    from .modeling import check_safetensors, resolve_model_path
    from .tokenization import load_tokenizer

    model_path = resolve_model_path(config.model)
    tokenizer = load_tokenizer(model_path, trust_remote_code=config.trust_remote_code)
    if tokenizer.mask_token is None:
        raise ModelError(
            f"{config.model!r} has no mask token, so it cannot do masked-LM pretraining (decoder models such "
            "as GPT-2 cannot); use a BERT-style model"
        )
    if config.whole_word_mask and not tokenizer.is_fast:
        raise ModelError("--whole-word-mask needs a fast tokenizer (tokenizer.json) to find word boundaries")
    check_safetensors(model_path)
    try:
        mlm = AutoModelForMaskedLM.from_pretrained(
            model_path, use_safetensors=True, trust_remote_code=config.trust_remote_code
        )
    except ValueError as exc:
        raise ModelError(
            f"{config.model!r} cannot be loaded as a masked-LM model ({str(exc).splitlines()[0]}); use a "
            "BERT-style model"
        ) from exc
    return model_path, tokenizer, mlm


def logits_at_masked_positions_only(mlm) -> list[Any]:
    """Make ``mlm``'s output layer score the masked positions only; returns the hooks (``.remove()``).

    A masked-LM model scores every position against the whole vocabulary, though only the masked ~15% have
    labels. With a large vocabulary that layer is most of the work: for ``multilingual-e5-small`` (384
    wide, 250,002 pieces) it is about 4.5x the twelve transformer layers per position. The hooks take the
    labels out of the call, give the output layer only the rows of the masked positions, and add the same
    loss the model computes (cross-entropy averaged over the masked tokens). A model whose output layer is
    not a plain ``Linear`` is left as it is (empty list).
    """
    import torch
    from torch.nn import functional as F

    decoder = mlm.get_output_embeddings()
    if not isinstance(decoder, torch.nn.Linear):
        return []
    masked: dict[str, torch.Tensor] = {}

    def take_labels(module, args, kwargs):
        labels = kwargs.pop("labels", None)
        if labels is not None:
            masked["positions"] = labels != -100
            masked["labels"] = labels[masked["positions"]]
        return args, kwargs

    def keep_masked_rows(module, args):
        if "positions" in masked:
            return (args[0][masked.pop("positions")],)
        return None

    def add_loss(module, args, kwargs, output):
        if "labels" in masked:
            labels, logits = masked.pop("labels"), output["logits"].float()
            output["loss"] = F.cross_entropy(logits, labels) if len(labels) else logits.sum() * 0.0
        return output

    return [
        mlm.register_forward_pre_hook(take_labels, with_kwargs=True),
        decoder.register_forward_pre_hook(keep_masked_rows),
        mlm.register_forward_hook(add_loss, with_kwargs=True),
    ]


def _masked_batches(texts: list[str], tokenizer, config):
    """The tokenized texts and the collator that masks them (whole words with ``whole_word_mask``)."""
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling

    from .tokenization import resolve_max_length

    length = resolve_max_length(tokenizer, config.max_length)
    wwm = config.whole_word_mask
    extra = {"return_offsets_mapping": True, "return_special_tokens_mask": True} if wwm else {}
    dataset = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=length, **extra),
        batched=True,
        remove_columns=["text"],
        desc="Tokenizing",
    )
    collator = DataCollatorForLanguageModeling(
        tokenizer, mlm_probability=config.mlm_probability, whole_word_mask=wwm, seed=config.seed
    )
    return dataset, _whole_word_collator(collator, tokenizer) if wwm else collator


def _arguments(config, checkpoints: Path, progress: bool):
    """``TrainingArguments`` of the BERT masked-LM recipe: linear decay after a 6% warmup, no checkpoints."""
    from transformers import TrainingArguments

    from .training import device_arguments

    return TrainingArguments(
        output_dir=str(checkpoints),
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        weight_decay=0.01,
        warmup_steps=0.06,  # a float below 1 is a ratio in transformers 5
        seed=config.seed,
        save_strategy="no",
        logging_steps=50,
        disable_tqdm=not progress,
        report_to="none",
        **device_arguments(config.precision, config.use_cpu),
        remove_unused_columns=False,  # the collator needs offset_mapping for whole-word masking
    )


def _whole_word_collator(collator, tokenizer):
    """Pad the offset mappings that whole-word masking needs (``tokenizer.pad`` cannot), then mask."""
    import torch

    def collate(features):
        features = [dict(f) for f in features]
        offsets = [f.pop("offset_mapping") for f in features]
        batch = tokenizer.pad(features, return_tensors="pt")
        width = batch["input_ids"].shape[1]
        padding = [[[0, 0]] * (width - len(o)) for o in offsets]
        if tokenizer.padding_side == "left":
            rows = [pad + list(o) for pad, o in zip(padding, offsets)]
        else:
            rows = [list(o) + pad for pad, o in zip(padding, offsets)]
        batch["input_ids"], batch["labels"] = collator.torch_mask_tokens(
            batch["input_ids"],
            special_tokens_mask=batch.pop("special_tokens_mask"),
            offset_mapping=torch.tensor(rows),
        )
        return batch

    return collate
