"""Distil a fine-tuned run (the teacher) into a much faster student, itself a texttune run.

:func:`distill` reads the teacher's training data back from its manifest (and its kept validation split),
labels every training text (plus any ``--unlabelled`` texts, and the ``--augment`` variants of both that
:func:`augmented_texts` makes) with the teacher's logits, and trains a student on them with
:func:`distillation_loss`. Two students:

- ``static`` (model2vec): the teacher's fine-tuned encoder (:func:`vector_encoder`) distilled into one
  vector per token of the teacher's own tokenizer (:func:`static_embeddings`: the encoder's average output
  at the token in the training texts, model2vec's vector of the token alone where they lack it, reduced by
  model2vec's PCA); a text is the normalised mean of its token vectors beside 256 filters over windows of
  3 tokens, each max-pooled over the text (:class:`texttune.static_model.StaticEmbeddingModel`), and a
  head with one hidden layer classifies it; the vectors and filters train with the head, and a moving
  average of the weights is kept (:func:`weight_average`). No transformer runs at prediction time.
- ``layers:N``: the teacher's embeddings and first N transformer layers (and its pooling and head, as a
  starting point), fine-tuned with texttune's ``Trainer``.

The student is saved by :func:`texttune.artifacts.save_run` and finished (calibration, thresholds,
metrics, report) by :func:`texttune.training.finish_run`, so ``predict``, ``evaluate``, ``export`` and
``serve`` treat it as any run; its manifest's ``distillation`` says what it was distilled from.

Example:
    >>> from texttune.config import DistillConfig
    >>> distill("runs/teacher", DistillConfig(output="runs/student"))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .artifacts import (
    METRICS_FILE,
    TEST_METRICS_FILE,
    VALIDATION_DATA_FILE,
    AtomicDir,
    RunManifest,
    base_model_path,
    check_output_dir,
    read_json,
    read_manifest,
    read_validation_split,
    save_run,
)
from .config import DistillConfig, RunConfig
from .errors import ConfigError, DataError
from .tasks import LABELS, MULTI_LABEL, REGRESSION, TEXT, TEXT_PAIR

logger = logging.getLogger(__name__)

#: Defaults by student kind: a head on cached vectors takes large steps; transformer layers small ones.
#: The static student trains its token vectors with the filters and head (STATIC_DEFAULTS) or, with
#: --no-train-vectors, the filters and head alone. With the vectors, the best validation loss came at
#: epoch 1-3 of 10 on rotten_tomatoes and tweet_sentiment (5-7 on tweets with the filters), and 3e-3 beat
#: 1e-2 and 1e-3 there on validation loss (without the filters).
STATIC_DEFAULTS = {"epochs": 10.0, "learning_rate": 3e-3}
STATIC_HEAD_DEFAULTS = {"epochs": 30.0, "learning_rate": 1e-2}
#: Dropout before each of the static student's head layers when it has a hidden layer (--head-hidden).
STATIC_HEAD_DROPOUT = 0.1
LAYERS_DEFAULTS = {"epochs": 3.0, "learning_rate": 5e-5}
INSTALL_HINT = "pip install 'texttune[distill]'"


@dataclass
class DistillResult:
    """What :func:`distill` wrote: the student run, its and the teacher's metrics, the rows it learnt from.

    ``train_rows`` counts every row the student learnt from, ``unlabelled_rows`` of them from --unlabelled
    and ``augmented_rows`` from --augment; ``model`` is the trained student as saved.
    """

    output: Path
    metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None
    teacher_metrics: dict[str, Any] | None
    teacher_test_metrics: dict[str, Any] | None
    train_rows: int
    unlabelled_rows: int
    augmented_rows: int
    train_seconds: float
    model: Any = None


@dataclass
class Targets:
    """The student's training rows: texts, the teacher's logits, the given labels and which rows have one."""

    texts: list[str]
    pairs: list[str] | None
    teacher_logits: np.ndarray
    labels: np.ndarray
    labelled: np.ndarray


def distill(run: str | Path, options: DistillConfig) -> DistillResult:
    """Train a student run on the predictions of the run ``run`` and write it to ``options.output``.

    Args:
        run: The teacher run folder.
        options: The student kind, temperature, alpha, training options and output folder.

    Returns:
        A :class:`DistillResult`.

    Raises:
        ConfigError: Bad options, a missing optional dependency, an existing output.
        DataError: The teacher's training data cannot be rebuilt, or ``--unlabelled`` is unusable.

    Example:
        >>> distill("runs/teacher", DistillConfig(output="runs/student", alpha=0.0))  # doctest: +SKIP
    """
    from transformers import set_seed

    teacher_dir = Path(run)
    manifest = read_manifest(teacher_dir)
    check_student_options(teacher_dir, manifest, options)
    config = RunConfig.from_dict(manifest.config)
    data = teacher_data(teacher_dir, config)
    unlabelled = read_unlabelled(options.unlabelled, manifest) if options.unlabelled else []
    variants = augmented_texts(list(data.splits["train"][TEXT]) + unlabelled, options.augment, options.seed)
    set_seed(options.seed)
    started = time.perf_counter()
    predictor = load_teacher(teacher_dir)
    targets = teacher_targets(predictor, data.splits["train"], unlabelled + variants)
    validation = teacher_targets(predictor, data.splits["validation"], [])
    layers = options.student_layers()
    if layers is None:
        model, log_history = train_static_student(
            teacher_dir, manifest, predictor, targets, validation, options, len(targets.texts) - len(variants)
        )
    else:
        model, log_history = train_layer_student(
            teacher_dir, manifest, predictor, targets, validation, layers, options
        )
    seconds = time.perf_counter() - started
    student_manifest = student_run_manifest(
        teacher_dir, manifest, model, options, targets, len(unlabelled), len(variants)
    )
    prepared = student_as_prepared_run(config, data, predictor, model, student_manifest, options)
    with AtomicDir(options.output, overwrite=options.overwrite) as work:
        save_run(
            work,
            model=model,
            tokenizer=predictor.tokenizer,
            manifest=student_manifest,
            log_history=log_history,
        )
        metrics, test_metrics = _finish(
            work, prepared, student_manifest, log_history, seconds, len(targets.texts)
        )
    logger.info("student run written to %s", options.output)
    return DistillResult(
        output=Path(options.output),
        metrics=metrics,
        test_metrics=test_metrics,
        teacher_metrics=_read_metrics(teacher_dir / METRICS_FILE),
        teacher_test_metrics=_read_metrics(teacher_dir / TEST_METRICS_FILE),
        train_rows=len(targets.texts),
        unlabelled_rows=len(unlabelled),
        augmented_rows=len(variants),
        train_seconds=seconds,
        model=model,
    )


def _read_metrics(path: Path) -> dict[str, Any] | None:
    return read_json(path) if path.is_file() else None


# --------------------------------------------------------------------------- inputs


def check_student_options(teacher: Path, manifest: RunManifest, options: DistillConfig) -> None:
    """Everything that can be refused before any work: the output folder, the optional dependency."""
    output = check_output_dir(options.output, options.overwrite)
    if output.resolve() == teacher.resolve():
        raise ConfigError(f"--output {output} is the teacher run itself; give another folder for the student")
    if manifest.text_pair_column is not None:
        for flag in ("--unlabelled", "--augment"):
            if getattr(options, flag[2:]):
                raise ConfigError(
                    f"{flag} is for runs of single texts, but this run classifies text pairs; drop {flag}"
                )
    if options.unlabelled and Path(options.unlabelled).suffix and not Path(options.unlabelled).exists():
        raise DataError(f"--unlabelled {options.unlabelled}: file not found")
    layers = options.student_layers()
    if layers is None:
        _require_model2vec()
        return
    from transformers import AutoConfig

    total = getattr(AutoConfig.from_pretrained(str(teacher)), "num_hidden_layers", None)
    if total is not None and layers >= total:
        raise ConfigError(
            f"--student layers:{layers} keeps all of the teacher's {total} layers; give fewer "
            f"(e.g. layers:{max(1, total // 2)})"
        )


def _require_model2vec() -> None:
    try:
        import model2vec.distill  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--student static needs model2vec: {INSTALL_HINT} ({exc})") from None


def teacher_data(teacher: Path, config: RunConfig):
    """The teacher's splits, rebuilt from its manifest; validation is the split the run kept."""
    from .data import load_training_data

    try:
        data = load_training_data(config.data)
    except DataError as exc:
        raise DataError(
            f"cannot rebuild the training data of {teacher} from its texttune.json ({exc}); the student "
            "learns from the teacher's training texts"
        ) from None
    if (teacher / VALIDATION_DATA_FILE).is_file():
        data.splits["validation"] = read_validation_split(teacher)
    if "validation" not in data.splits:
        raise DataError(f"{teacher} has no validation split ({VALIDATION_DATA_FILE}); retrain it with one")
    return data


def read_unlabelled(source: str, manifest: RunManifest) -> list[str]:
    """``--unlabelled``: a ``.txt`` file (one text per line) or a data file with the run's text column."""
    from .pretraining import read_texts

    path = Path(source)
    column = None
    if path.suffix.lower() != ".txt":
        from .data import read_source

        try:
            columns = read_source(source).column_names
        except DataError:
            columns = []
        column = (
            manifest.text_column if isinstance(columns, list) and manifest.text_column in columns else None
        )
    try:
        return read_texts(source, text_column=column)
    except DataError as exc:
        raise DataError(f"--unlabelled: {exc}") from None


def load_teacher(teacher: Path):
    from .inference import Predictor

    return Predictor.load(teacher, backend="torch", batch_size=64)


def augmented_texts(texts: list[str], copies: int, seed: int) -> list[str]:
    """``--augment``: ``copies`` variants of every text of three words or more, for the teacher to label.

    Half of them keep a random span of a quarter to a half of the text's words, half drop each word with
    probability 0.15. The teacher's probabilities on such partial texts show the student what each
    phrase does to the prediction: Tang et al. (2019) grew a distilled student's transfer set with word
    masking and n-gram samples.
    """
    rng = np.random.default_rng(seed)
    variants = []
    for words in (text.split() for text in texts):
        if len(words) < 3:
            continue
        for _ in range(copies):
            if rng.random() < 0.5:
                size = int(rng.integers(max(1, len(words) // 4), len(words) // 2 + 2))
                start = int(rng.integers(0, len(words) - size + 1))
                kept = words[start : start + size]
            else:
                kept = [word for word, p in zip(words, rng.random(len(words))) if p >= 0.15] or words[:1]
            variants.append(" ".join(kept))
    return variants


def teacher_targets(predictor, dataset, unlabelled: list[str]) -> Targets:
    """The teacher's logits of a split's texts (with their labels) and of unlabelled texts (without)."""
    texts = list(dataset[TEXT]) + unlabelled
    pairs = list(dataset[TEXT_PAIR]) if TEXT_PAIR in dataset.column_names else None
    logits = predictor.logits(texts, pairs)
    labels = np.asarray(dataset[LABELS])
    if unlabelled:
        filler = np.zeros((len(unlabelled), *labels.shape[1:]), dtype=labels.dtype)
        labels = np.concatenate([labels, filler])
    labelled = np.r_[np.ones(len(dataset)), np.zeros(len(unlabelled))].astype(np.float32)
    return Targets(texts, pairs, logits, labels, labelled)


# --------------------------------------------------------------------------- the loss


def distillation_loss(logits, teacher_logits, labels, labelled, task: str, temperature: float, alpha: float):
    """``(1 - alpha) * soft + alpha * hard``, averaged over the rows; unlabelled rows (``labelled`` 0) add no hard loss.

    ``soft`` compares the student with the teacher at ``temperature`` (both logits divided by it; scaled
    by its square so gradients keep their size, as in Hinton et al. 2015): soft cross-entropy for
    single-label, per-label binary cross-entropy against the teacher's probabilities for multi-label, the
    squared difference to the teacher's value for regression (no temperature). ``hard`` is the run's usual
    loss on the given labels.
    """
    import torch
    from torch.nn import functional as F

    t = temperature
    if task == REGRESSION:
        soft = (logits[:, 0] - teacher_logits[:, 0]) ** 2
        hard = (logits[:, 0] - labels.to(logits.dtype).view(-1)) ** 2
    elif task == MULTI_LABEL:
        target = torch.sigmoid(teacher_logits / t)
        soft = F.binary_cross_entropy_with_logits(logits / t, target, reduction="none").mean(-1) * t * t
        hard = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none").mean(-1)
    else:
        target = torch.softmax(teacher_logits / t, dim=-1)
        soft = -(target * torch.log_softmax(logits / t, dim=-1)).sum(-1) * t * t
        hard = F.cross_entropy(logits, labels.long().view(-1), reduction="none")
    return ((1.0 - alpha) * soft + alpha * hard * labelled).mean()


# --------------------------------------------------------------------------- the static student


def static_embeddings(encoder, tokenizer, pca_dims: int, contexts: list[list[int]] | None = None):
    """Static vectors of ``encoder``, one row per token id of ``tokenizer`` (the teacher's).

    model2vec embeds each token alone (the encoder's mean output over ``[CLS] token [SEP]``). With
    ``contexts`` (token id lists: the texts the student learns from), a token's vector is instead its
    average output in those texts (:func:`contextual_sums`), with model2vec's vector counted as one more
    place it took, so tokens the texts lack keep model2vec's. The teacher mean-pools those outputs to
    classify, so the mean of a text's vectors starts near the teacher's own text vector. Both are then
    reduced to ``pca_dims`` with model2vec's PCA; model2vec's vectors alone also take its SIF weighting,
    which shrinks frequent tokens.

    model2vec distils over a cleaned copy of the tokenizer (special, added and ``[unusedN]`` tokens
    removed); its vectors are put back at the teacher tokenizer's ids, and the ids it has no vector for
    are returned as ignored (left out of a text's mean, as model2vec leaves them out of its tokens).

    Returns:
        ``(matrix, ignored_ids, normalize)``: a (vocabulary, width) float32 array, the ignored token ids,
        and whether model2vec normalises text vectors.
    """
    from model2vec.distill import distill_from_model
    from model2vec.distill.inference import apply_pca

    settings = {"pca_dims": pca_dims} if contexts is None else {"pca_dims": None, "sif_coefficient": None}
    static = distill_from_model(encoder, tokenizer, quantize_to="float32", **settings)
    vectors = np.asarray(static.embedding, dtype=np.float32)
    if static.token_mapping is not None or static.weights is not None:  # only with vocabulary quantization
        raise ConfigError(
            "model2vec returned quantized vocabulary vectors; texttune needs one vector per token"
        )
    student_ids = static.tokenizer.get_vocab()
    matrix = np.zeros((len(tokenizer), vectors.shape[1]), dtype=np.float32)
    ignored = set(tokenizer.all_special_ids)
    for token, index in tokenizer.get_vocab().items():
        row = student_ids.get(token)
        if row is None or index in ignored:
            ignored.add(index)
        else:
            matrix[index] = vectors[row]
    if contexts is not None:
        sums, counts = contextual_sums(encoder, tokenizer, contexts, len(matrix))
        kept = np.setdiff1d(np.arange(len(matrix)), sorted(ignored))
        averaged = (sums[kept] + matrix[kept]) / (counts[kept, None] + 1.0)
        reduced = apply_pca(averaged, pca_dims)
        matrix = np.zeros((len(matrix), reduced.shape[1]), dtype=np.float32)
        matrix[kept] = reduced
    return matrix, sorted(ignored), bool(static.normalize)


def contextual_sums(encoder, tokenizer, contexts: list[list[int]], rows: int, batch_size: int = 64):
    """The sum of ``encoder``'s outputs at every place each token id takes in ``contexts`` (token id
    lists), ``(rows, width)``, and the number of places, ``(rows,)``; texts of like length batched together."""
    import torch

    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
    sums, counts = None, torch.zeros(rows)
    encoder.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [{"input_ids": contexts[i]} for i in order[start : start + batch_size]]
            padded = tokenizer.pad(batch, return_tensors="pt")
            hidden = encoder(**padded).last_hidden_state.float()
            counted = padded["attention_mask"].bool()
            ids = padded["input_ids"][counted]
            if sums is None:
                sums = torch.zeros(rows, hidden.shape[-1])
            sums.index_add_(0, ids, hidden[counted])
            counts.index_add_(0, ids, torch.ones(len(ids)))
    logger.info("static student: token vectors averaged over %d texts", len(contexts))
    return sums.numpy(), counts.numpy()


def vector_source(manifest: RunManifest, requested: str) -> str:
    """``--static-vectors`` as it applies to the run: ``teacher`` needs a run that gives a plain model
    (prompt and prefix tuning do not: their students take the base's vectors)."""
    from .strategies import get_strategy

    strategy = get_strategy(manifest.strategy)
    return requested if strategy.plain_weights or strategy.mergeable else "base"


def vector_encoder(teacher: Path, manifest: RunManifest, requested: str):
    """The encoder model2vec embeds each token with (``--static-vectors``, see :func:`vector_source`).

    ``teacher``: the run's own encoder as fine-tuned (adapters merged), whose token vectors already lean
    towards the task. ``base``: the model the run was fine-tuned from (its ``--mlm-first`` model if any).
    """
    from .heads import PooledClassifier, load_base_model
    from .strategies import get_strategy

    source = vector_source(manifest, requested)
    logger.info("static student: token vectors from the %s's encoder", source)
    if source == "teacher":
        model = get_strategy(manifest.strategy).merged_model(teacher, manifest)
        return model.base if isinstance(model, PooledClassifier) else model.base_model
    fix = "restore it, or take the vectors from the run itself with --static-vectors teacher"
    return load_base_model(base_model_path(teacher, manifest, fix))


def static_student(
    teacher: Path, manifest: RunManifest, tokenizer, options: DistillConfig, contexts: list[list[int]] | None
):
    """A :class:`~texttune.heads.PooledClassifier` over the static vectors (:func:`static_embeddings`) of
    :func:`vector_encoder`, averaged over ``contexts`` if given: the text vector (the mean, plus the filters'
    windows), then a head with ``--head-hidden`` ReLU units (0: linear)."""
    import torch
    from transformers import AutoConfig

    from .heads import ClassifierHead, PooledClassifier
    from .static_model import StaticEmbeddingConfig, StaticEmbeddingModel

    encoder = vector_encoder(teacher, manifest, options.static_vectors)
    matrix, ignored, normalize = static_embeddings(encoder, tokenizer, options.pca_dims, contexts)
    labels = AutoConfig.from_pretrained(str(teacher))  # the label names and problem type
    config = StaticEmbeddingConfig(
        vocab_size=matrix.shape[0],
        hidden_size=matrix.shape[1],
        ignored_token_ids=ignored,
        normalize=normalize,
        conv_channels=options.conv_channels,
        id2label=labels.id2label,
        label2id=labels.label2id,
        problem_type=labels.problem_type,
        pad_token_id=tokenizer.pad_token_id,
    )
    base = StaticEmbeddingModel(config)
    with torch.no_grad():
        base.embeddings.weight.copy_(torch.from_numpy(matrix))
    base.requires_grad_(False)
    spec = {
        "head": "mlp" if options.head_hidden else "linear",
        "input_size": base.output_size,
        "hidden_size": options.head_hidden or base.output_size,
        "layers": 1 if options.head_hidden else 0,
        "dropout": STATIC_HEAD_DROPOUT if options.head_hidden else 0.0,
        "batchnorm": False,
        "num_labels": labels.num_labels,
        "problem_type": labels.problem_type,
    }
    # The base returns one text vector at position 0: "cls" pooling takes it.
    return PooledClassifier(base, ClassifierHead(spec), "cls").eval()


def text_vectors(model, predictor, texts: list[str], pairs: list[str] | None):
    """The static student's text vectors, computed once (when the token vectors do not train)."""
    from .heads import text_features

    return text_features(model, predictor.tokenizer, texts, pairs, predictor.manifest.max_length, 256)


class TokenRows:
    """A split's texts tokenized once, padded per mini-batch: the static student's input when its token
    vectors train with the head (the default). ``rows[idx]`` gives the model's keyword arguments."""

    def __init__(self, predictor, texts: list[str], pairs: list[str] | None):
        from .tasks import TEXT, TEXT_PAIR
        from .tokenization import encode

        self.tokenizer = predictor.tokenizer
        encoded = encode({TEXT: texts, TEXT_PAIR: pairs}, self.tokenizer, predictor.manifest.max_length)
        self.ids = encoded["input_ids"]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, idx) -> dict[str, Any]:
        padded = self.tokenizer.pad([{"input_ids": self.ids[i]} for i in idx.tolist()], return_tensors="pt")
        return {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"]}


def train_static_student(
    teacher, manifest, predictor, targets: Targets, validation: Targets, options, contexts: int
):
    """Build the static student (token vectors averaged over the first ``contexts`` training texts: those
    given, not the --augment variants) and train it, keeping the best epoch on validation: the token
    vectors with the filters and head (at a tenth of their rate), or with ``--no-train-vectors`` the
    filters and head alone (the head alone on cached text vectors when there are no filters)."""
    reads_tokens = options.train_vectors or options.conv_channels  # the convolution reads tokens
    rows = (
        TokenRows(predictor, targets.texts, targets.pairs)
        if reads_tokens or options.contextual_vectors
        else None
    )
    averaged_over = rows.ids[:contexts] if options.contextual_vectors else None
    model = static_student(teacher, manifest, predictor.tokenizer, options, averaged_over)
    if reads_tokens:  # else the head trains alone on text vectors, computed once
        model.base.requires_grad_(True)
        model.base.embeddings.requires_grad_(options.train_vectors)
        module, train = model, rows
        valid = TokenRows(predictor, validation.texts, validation.pairs)
    else:
        module = model.head
        train, valid = (text_vectors(model, predictor, t.texts, t.pairs) for t in (targets, validation))
    defaults = STATIC_DEFAULTS if options.train_vectors else STATIC_HEAD_DEFAULTS
    epochs = int(options.epochs or defaults["epochs"])
    rate = options.learning_rate or defaults["learning_rate"]
    log = fit_static(module, (train, targets), (valid, validation), manifest.task, options, epochs, rate)
    return model.eval(), log


def fit_static(
    module, train, validation, task: str, options, epochs: int, rate: float
) -> list[dict[str, Any]]:
    """Mini-batch AdamW on the distillation loss; ``module`` ends with the weights of the best validation loss.

    The weights validated and kept are a moving average of the trained ones (:func:`weight_average`;
    ``--ema-decay 0``: the trained ones). Training stops early after ``options.early_stopping_patience``
    epochs without a better validation loss.

    ``module`` is the head (inputs: text vectors) or the whole static student (inputs: :class:`TokenRows`).
    """
    import torch

    def tensors(x, t: Targets):
        return x, torch.as_tensor(t.teacher_logits), torch.as_tensor(t.labels), torch.as_tensor(t.labelled)

    def loss_of(model, batch) -> torch.Tensor:
        x, teacher_logits, labels, labelled = batch
        logits = (model(**x) if isinstance(x, dict) else model(x)).logits
        return distillation_loss(
            logits, teacher_logits, labels, labelled, task, options.temperature, options.alpha
        )

    train_t, valid_t = tensors(*train), tensors(*validation)
    every_validation_row = torch.arange(len(valid_t[0]))
    optimizer = static_optimizer(module, rate)
    average = weight_average(module, options.ema_decay)
    kept = module if average is None else average.module
    generator = torch.Generator().manual_seed(options.seed)
    rows = len(train_t[0])
    best, best_state, best_epoch, log, step = float("inf"), None, 0, [], 0
    for epoch in range(1, epochs + 1):
        module.train()
        total = 0.0
        for idx in torch.randperm(rows, generator=generator).split(options.batch_size):
            loss = loss_of(module, [t[idx] for t in train_t])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update_parameters(module)
            total += loss.item() * len(idx)
            step += 1
        kept.eval()
        with torch.no_grad():
            valid_loss = float(loss_of(kept, [t[every_validation_row] for t in valid_t]))
        log += [
            {"loss": round(total / rows, 6), "epoch": float(epoch), "step": step},
            {"eval_loss": round(valid_loss, 6), "epoch": float(epoch), "step": step},
        ]
        if valid_loss < best:
            best, best_state, best_epoch = valid_loss, copy.deepcopy(kept.state_dict()), epoch
        elif options.early_stopping_patience and epoch - best_epoch >= options.early_stopping_patience:
            break
    module.load_state_dict(best_state)
    logger.info(
        "static student: best validation distillation loss %.4f at epoch %d of %d", best, best_epoch, epoch
    )
    return log


def static_optimizer(module, rate: float):
    """AdamW over ``module``'s trained weights; the token vectors (when they train) at a tenth of ``rate``
    and without weight decay."""
    import torch

    trained = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    vectors = [p for name, p in trained if name.startswith("base.embeddings.")]
    head = [p for name, p in trained if not name.startswith("base.embeddings.")]
    groups = [{"params": head}] + (
        [{"params": vectors, "lr": rate / 10, "weight_decay": 0.0}] if vectors else []
    )
    return torch.optim.AdamW(groups, lr=rate, weight_decay=1e-4)


def weight_average(module, decay: float):
    """``--ema-decay``: an exponential moving average of ``module``'s weights (torch's ``AveragedModel``),
    updated after every optimizer step; None for 0.

    Trained at a constant rate, the static student's weights jump from step to step, and its validation
    loss from epoch to epoch; their average over the last hundred or so steps (decay 0.99) generalises
    better (measured on reviews; the README's benchmark section).
    """
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay))


# --------------------------------------------------------------------------- the layer student


def truncated_teacher(teacher: Path, manifest: RunManifest, layers: int):
    """The teacher's model (adapters merged) keeping its embeddings, first ``layers`` layers, pooling and head."""
    from torch import nn

    from .strategies import get_strategy

    model = get_strategy(manifest.strategy).merged_model(teacher, manifest)
    config = model.config
    total = getattr(config, "num_hidden_layers", None)
    blocks = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == total
    ]
    if not blocks:
        raise ConfigError(f"cannot find the transformer layers of {teacher}'s model; use --student static")
    if layers >= total:
        raise ConfigError(
            f"--student layers:{layers} keeps all of the teacher's {total} layers; give fewer (e.g. layers:{max(1, total // 2)})"
        )
    parent, _, attribute = blocks[0].rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    setattr(owner, attribute, nn.ModuleList(list(getattr(owner, attribute))[:layers]))
    config.num_hidden_layers = layers
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:layers]
    model.requires_grad_(True)
    return model.train()


def packed_dataset(targets: Targets, tokenizer, max_length: int):
    """Tokenized rows whose ``labels`` pack the teacher's logits, the given label(s) and the labelled flag.

    ``Trainer`` hands ``labels`` to the loss function (:func:`packed_loss`) and not to the model, so the
    teacher's logits reach the loss without a ``Trainer`` subclass.
    """
    from datasets import Dataset

    from .tokenization import encode

    encoded = encode({TEXT: targets.texts, TEXT_PAIR: targets.pairs}, tokenizer, max_length)
    hard = targets.labels.reshape(len(targets.texts), -1).astype(np.float32)
    packed = np.concatenate([targets.teacher_logits, hard, targets.labelled[:, None]], axis=1)
    return Dataset.from_dict({**encoded, LABELS: packed.tolist()})


def packed_loss(task: str, temperature: float, alpha: float):
    """``compute_loss_func`` for ``Trainer``: unpacks ``labels`` (see :func:`packed_dataset`)."""

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs.logits
        k = logits.shape[-1]
        hard = labels[:, k:-1] if task == MULTI_LABEL else labels[:, k]
        return distillation_loss(logits, labels[:, :k], hard, labels[:, -1], task, temperature, alpha)

    return loss


def train_layer_student(
    teacher, manifest, predictor, targets: Targets, validation: Targets, layers: int, options
):
    """The teacher's first ``layers`` layers, fine-tuned on the distillation loss by texttune's ``Trainer``."""
    import tempfile

    from .tokenization import make_collator
    from .trainer import make_trainer
    from .training import build_training_arguments

    model = truncated_teacher(teacher, manifest, layers)
    config = RunConfig.from_dict(manifest.config)
    config.train = dataclasses.replace(
        config.train,
        epochs=options.epochs or LAYERS_DEFAULTS["epochs"],
        learning_rate=options.learning_rate or LAYERS_DEFAULTS["learning_rate"],
        batch_size=options.batch_size,
        seed=options.seed,
        metric_for_best_model="loss",  # the distillation loss on validation picks the best epoch
        save_steps=None,
        report_to="none",
        resume=False,
    )
    tokenizer, max_length = predictor.tokenizer, manifest.max_length
    with tempfile.TemporaryDirectory(prefix="texttune-distill-") as checkpoints:
        args = build_training_arguments(config, Path(checkpoints), manifest.task, has_validation=True)
        trainer = make_trainer(
            model,
            args,
            train_dataset=packed_dataset(targets, tokenizer, max_length),
            eval_dataset=packed_dataset(validation, tokenizer, max_length),
            tokenizer=tokenizer,
            collator=make_collator(tokenizer),
            compute_loss=packed_loss(manifest.task, options.temperature, options.alpha),
            micro_batch_tokens=config.train.micro_batch_tokens,
            progress=config.train.progress,
        )
        trainer.train()
    return model.eval(), list(trainer.state.log_history)


# --------------------------------------------------------------------------- the student run


def student_run_manifest(
    teacher: Path,
    manifest: RunManifest,
    model,
    options: DistillConfig,
    targets: Targets,
    unlabelled: int,
    augmented: int,
) -> RunManifest:
    """The teacher's manifest with the student's strategy, parameter counts and ``distillation`` record."""
    from .modeling import count_parameters

    static = options.student_layers() is None
    strategy = "freeze" if static else "full"
    config = copy.deepcopy(manifest.config)
    config.setdefault("strategy", {})["strategy"] = strategy
    trainable, total = count_parameters(model)
    return dataclasses.replace(
        manifest,
        strategy=strategy,
        trainable_parameters=trainable,
        total_parameters=total,
        config=config,
        thresholds=None,
        temperature=None,
        versions={},
        created="",
        distillation={
            "teacher": str(teacher.resolve()),
            "student": options.student,
            "temperature": options.temperature,
            "alpha": options.alpha,
            "train_vectors": options.train_vectors and static,
            "static_vectors": vector_source(manifest, options.static_vectors) if static else None,
            "contextual_vectors": options.contextual_vectors and static,
            "conv_channels": options.conv_channels if static else None,
            "head_hidden": options.head_hidden if static else None,
            "ema_decay": options.ema_decay if static else None,
            "train_rows": len(targets.texts) - unlabelled - augmented,
            "unlabelled_rows": unlabelled,
            "augment": options.augment,
            "augmented_rows": augmented,
            "teacher_strategy": manifest.strategy,
        },
    )


def student_as_prepared_run(config: RunConfig, data, predictor, model, manifest: RunManifest, options):
    """What :func:`texttune.training.finish_run` reads, for the student (it never had a ``Trainer``)."""
    from .training import PreparedRun

    return PreparedRun(
        config=config,
        output=Path(options.output),
        strategy=None,
        data=data,
        tokenizer=predictor.tokenizer,
        max_length=manifest.max_length,
        stride=manifest.stride or 0,
        encoded={name: data.splits[name] for name in ("train", "validation")},
        model=model,
        class_weights=None,
        trainable_parameters=manifest.trainable_parameters,
        total_parameters=manifest.total_parameters,
    )


def _finish(work: Path, prepared, manifest: RunManifest, log_history, seconds: float, rows: int):
    from .training import finish_run

    train_output = SimpleNamespace(metrics={"train_samples_per_second": rows / max(seconds, 1e-9)})
    return finish_run(
        work, prepared, manifest, log_history, seconds, train_output, SimpleNamespace(feature_seconds=0)
    )
