"""Continued masked-LM pretraining on unlabelled domain text (``texttune pretrain``, ``--mlm-first``).

The masked-LM counterpart of :mod:`texttune.training`: 15% of the tokens (``mlm_probability``) are
selected, of which 80% become ``[MASK]``, 10% a random token and 10% stay (the BERT recipe), optionally
whole words at a time. The result is a plain model folder (safetensors, tokenizer included) that
``texttune train --model DIR`` fine-tunes.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

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
    data: str,
    model: str,
    output: str | Path,
    *,
    text_column: str | None = None,
    epochs: float = 1.0,
    learning_rate: float = 5e-5,
    batch_size: int = 32,
    max_length: int | None = None,
    mlm_probability: float = 0.15,
    whole_word_mask: bool = False,
    max_train_samples: int | None = None,
    seed: int = 42,
    progress: bool = True,
    use_cpu: bool = False,
    overwrite: bool = False,
    encoding: str = "utf-8",
    trust_remote_code: bool = False,
) -> PretrainResult:
    """Continue masked-LM pretraining of ``model`` on the texts of ``data``; write a model folder to ``output``.

    Args:
        data: Unlabelled texts (see :func:`read_texts`).
        model: A built-in name, a model folder or a hub id of a masked-LM model (BERT, RoBERTa, ...).
        output: The folder to write (model, config and tokenizer).
        text_column: Text column of a table source.
        epochs: Passes over the texts.
        learning_rate: Peak AdamW learning rate (linear decay, 6% warmup).
        batch_size: Texts per batch.
        max_length: Truncate texts to this many tokens (default: the model's limit, at most 512).
        mlm_probability: Share of tokens selected for prediction.
        whole_word_mask: Select whole words (all their word pieces) instead of single tokens.
        max_train_samples: Use at most this many texts (a seeded random subset).
        seed: Random seed (masking, order, subset).
        progress: Show a progress bar.
        use_cpu: Train on the CPU even when a GPU is present.
        overwrite: Replace ``output`` if it holds files.
        encoding: Text encoding of text files.
        trust_remote_code: Allow models whose code lives in the checkpoint.

    Returns:
        A :class:`PretrainResult`.

    Example:
        >>> pretrain("reviews.txt", "minilm", "models/minilm-reviews", epochs=1)  # doctest: +SKIP
    """
    import random

    from datasets import Dataset
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling, TrainingArguments

    from .artifacts import CHECKPOINT_DIR, AtomicDir, check_output_dir
    from .config import PretrainConfig
    from .modeling import check_safetensors, resolve_model_path
    from .tokenization import load_tokenizer, resolve_max_length
    from .trainer import make_trainer

    PretrainConfig(  # validates every option, as the command line does
        data=data,
        output=str(output),
        model=model,
        overwrite=overwrite,
        text_column=text_column,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_length=max_length,
        mlm_probability=mlm_probability,
        whole_word_mask=whole_word_mask,
        max_train_samples=max_train_samples,
        seed=seed,
        encoding=encoding,
        use_cpu=use_cpu,
        trust_remote_code=trust_remote_code,
    )
    output = check_output_dir(output, overwrite)
    texts = read_texts(data, text_column=text_column, encoding=encoding)
    if max_train_samples and len(texts) > max_train_samples:
        texts = random.Random(seed).sample(texts, max_train_samples)
    model_path = resolve_model_path(model)
    tokenizer = load_tokenizer(model_path, trust_remote_code=trust_remote_code)
    if tokenizer.mask_token is None:
        raise ModelError(
            f"{model!r} has no mask token, so it cannot do masked-LM pretraining (decoder models such as "
            "GPT-2 cannot); use a BERT-style model"
        )
    if whole_word_mask and not tokenizer.is_fast:
        raise ModelError("--whole-word-mask needs a fast tokenizer (tokenizer.json) to find word boundaries")
    check_safetensors(model_path)
    try:
        mlm = AutoModelForMaskedLM.from_pretrained(
            model_path, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except ValueError as exc:
        raise ModelError(
            f"{model!r} cannot be loaded as a masked-LM model ({str(exc).splitlines()[0]}); use a BERT-style model"
        ) from exc
    length = resolve_max_length(tokenizer, max_length)
    extra = {"return_offsets_mapping": True, "return_special_tokens_mask": True} if whole_word_mask else {}
    dataset = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=length, **extra),
        batched=True,
        remove_columns=["text"],
        desc="Tokenizing",
    )
    collator = DataCollatorForLanguageModeling(
        tokenizer, mlm_probability=mlm_probability, whole_word_mask=whole_word_mask, seed=seed
    )
    if whole_word_mask:
        collator = _whole_word_collator(collator, tokenizer)
    with AtomicDir(output, overwrite=overwrite) as tmp:
        args = TrainingArguments(
            output_dir=str(tmp / CHECKPOINT_DIR),
            learning_rate=learning_rate,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            weight_decay=0.01,
            warmup_steps=0.06,  # a float below 1 is a ratio in transformers 5
            seed=seed,
            save_strategy="no",
            logging_steps=50,
            disable_tqdm=not progress,
            report_to="none",
            use_cpu=use_cpu,
            remove_unused_columns=False,  # the collator needs offset_mapping for whole-word masking
        )
        trainer = make_trainer(
            mlm, args, train_dataset=dataset, collator=collator, tokenizer=tokenizer, progress=progress
        )
        started = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - started
        mlm.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(tmp / CHECKPOINT_DIR, ignore_errors=True)
    logger.info("masked-LM model written to %s (loss %.3f)", output, result.training_loss)
    return PretrainResult(output=output, texts=len(texts), train_seconds=seconds, loss=result.training_loss)


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
