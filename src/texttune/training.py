"""The one place a ``Trainer`` is built and run, and a finished run is written."""

from __future__ import annotations

import copy
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import (
    CONFUSION_MATRIX_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    MLM_MODEL_DIR,
    REPORT_FILE,
    TEST_METRICS_FILE,
    TRAINING_LOG_FILE,
    VALIDATION_DATA_FILE,
    RunManifest,
    check_output_dir,
    partial_dir,
    write_json,
    write_manifest,
)
from .assets import default_learning_rate
from .checkpoints import (
    CHECKPOINT_DIR,
    check_resume_config,
    clear_for_resume,
    find_resume_checkpoint,
    has_checkpoint,
    record_resume_config,
)
from .config import RunConfig
from .data import LABELS, MULTI_LABEL, REGRESSION, TEXT, TEXT_PAIR, PreparedData, load_training_data
from .distributed import (
    SHARD_LOG_ENV,
    check_engine_options,
    gathered_state_dict,
    needs_cpu_backend,
    run_folder,
    shard_logging_collator,
)
from .errors import ConfigError
from .hardware import cpu_has_native_bf16
from .imbalance import make_weighted_loss, resolve_class_weights, tune_thresholds
from .long_text import DOCUMENT_ID, SLIDING, check_long_text, document_compute_metrics, tokenize_splits
from .metrics import (
    DEFAULT_THRESHOLD,
    default_best_metric,
    format_report,
    make_compute_metrics,
    metric_direction,
    plot_confusion_matrix,
    scalar_metrics,
)
from .modeling import build_model, check_model_folder, count_parameters, resolve_model_path
from .strategies import get_strategy
from .tokenization import load_tokenizer, make_collator, resolve_max_length

logger = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"


@dataclass
class TrainResult:
    """What :func:`train` returns: where the run is and how it did."""

    output: Path
    metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None
    train_seconds: float
    train_samples: int
    trainable_parameters: int
    total_parameters: int
    log_history: list[dict[str, Any]] = field(default_factory=list)
    model: Any = field(default=None, repr=False)  # the trained model, still in memory
    #: Global rank in a multi-process run; only process 0 wrote the run and holds the metrics.
    process_index: int = 0

    @property
    def train_samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else 0.0


def _on_gpu(use_cpu: bool) -> bool:
    import torch

    return torch.cuda.is_available() and not use_cpu


def precision_flags(precision: str, use_cpu: bool) -> dict[str, bool]:
    """Mixed precision where the hardware has it.

    ``auto`` picks bf16 autocast on GPUs and CPUs with native bf16, fp16 on older GPUs and fp32 on other
    CPUs. Weights, optimizer state and the saved model stay fp32 either way.
    """
    import torch

    on_gpu = _on_gpu(use_cpu)
    if precision == "auto":
        if not on_gpu:
            return {"bf16": True} if cpu_has_native_bf16() else {}
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    if precision == "fp32":
        return {}
    if precision == "fp16" and not on_gpu:
        raise ConfigError("--precision fp16 needs a CUDA GPU; use --precision fp32 or bf16 on CPU")
    return {precision: True}


def build_training_arguments(config: RunConfig, output_dir: Path, task: str, has_validation: bool):
    """Map our :class:`TrainConfig` onto ``TrainingArguments``."""
    from transformers import TrainingArguments

    train = config.train
    metric, greater = default_best_metric(task)
    if train.metric_for_best_model:
        metric = train.metric_for_best_model.removeprefix("eval_")
        greater = metric_direction(metric)
    # Checkpoints are always written (at least once per epoch) so that --resume has something to continue
    # from; evaluation follows the same schedule because the best checkpoint is picked among them.
    save = {"save_strategy": "steps", "save_steps": train.save_steps} if train.save_steps else {}
    save = save or {"save_strategy": "epoch"}
    evaluation = {"eval_strategy": "no"}
    precision = precision_flags(train.precision, train.use_cpu)
    if has_validation:
        evaluation = {"eval_strategy": save["save_strategy"]}
        if train.save_steps:
            evaluation["eval_steps"] = train.save_steps
    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=train.learning_rate,
        num_train_epochs=train.epochs,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.eval_batch_size,
        weight_decay=train.weight_decay,
        warmup_steps=train.warmup_ratio,  # a float below 1 is a ratio in transformers 5
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        lr_scheduler_type="linear",
        seed=train.seed,
        **evaluation,
        **save,
        save_total_limit=1,
        load_best_model_at_end=has_validation,
        metric_for_best_model=metric if has_validation else None,
        greater_is_better=greater if has_validation else None,
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
        logging_steps=train.logging_steps,
        logging_first_step=True,
        disable_tqdm=not train.progress,
        report_to=[t.strip() for t in train.report_to.split(",")] if train.report_to != "none" else "none",
        # TrainingArguments refuses bf16 without a GPU unless told the CPU is meant; DDP without CUDA needs it too.
        use_cpu=train.use_cpu or needs_cpu_backend() or (bool(precision) and not _on_gpu(train.use_cpu)),
        dataloader_pin_memory=_on_gpu(train.use_cpu),  # pinned memory only helps host-to-GPU copies
        fsdp=train.fsdp,
        deepspeed=train.deepspeed,
        **precision,
    )


def _check_metric_name(config: RunConfig, report: dict[str, Any]) -> None:
    name = config.train.metric_for_best_model
    if (
        name
        and name.removeprefix("eval_") not in scalar_metrics(report)
        and name.removeprefix("eval_") != "loss"
    ):
        known = ", ".join(sorted(scalar_metrics(report)) + ["loss"])
        raise ConfigError(
            f"--metric-for-best-model {name!r} is not a metric of this task; choose one of {known}"
        )


def train(config: RunConfig, *, callbacks: list | None = None) -> TrainResult:
    """Fine-tune, evaluate and save a run into ``config.train.output``.

    ``config.strategy`` picks what trains (see :mod:`texttune.strategies`); ``callbacks`` are extra
    ``TrainerCallback`` objects passed to the ``Trainer`` (e.g. the hyperparameter search's pruning).
    Started by ``torchrun``/``accelerate launch`` it trains with DDP (or FSDP/DeepSpeed) over all
    processes; only process 0 writes the run (see :mod:`texttune.distributed`).

    Example:
        >>> from texttune import RunConfig, DataConfig, TrainConfig, train
        >>> cfg = RunConfig(data=DataConfig(data="rotten_tomatoes"), train=TrainConfig(output="runs/rt"))
        >>> result = train(cfg)  # doctest: +SKIP
        >>> result.metrics["accuracy"]  # doctest: +SKIP
    """
    from accelerate.utils import extract_model_from_parallel
    from transformers import EarlyStoppingCallback, PrinterCallback, set_seed

    from .trainer import TexttuneTrainer

    if not config.train.output:
        raise ConfigError("no output folder given; pass --output DIR")
    config = with_defaults_resolved(config)
    if not config.data.data:
        raise ConfigError(
            "no training data given; pass --data FILE or a built-in name (see `texttune datasets`)"
        )
    if config.train.resume:
        _check_resumable(config)
    output = check_output_dir(config.train.output, config.train.overwrite)
    check_engine_options(config.train.fsdp, config.train.deepspeed)
    _check_trackers(config.train.report_to)
    strategy = get_strategy(config.strategy.strategy)
    data = load_training_data(config.data)
    if config.train.metric_for_best_model:
        _check_metric_name(config, _dummy_report(data))

    model_path = resolve_model_path(config.model.model)
    check_model_folder(
        model_path, allow_pickle=config.model.allow_pickle, trust_remote_code=config.model.trust_remote_code
    )
    tokenizer = load_tokenizer(model_path, trust_remote_code=config.model.trust_remote_code)
    max_length = resolve_max_length(tokenizer, config.model.max_length)
    long_text = config.model.long_text
    stride = check_long_text(long_text, max_length, config.model.stride, data.text_pair_column is not None)
    encoded = tokenize_splits(data.splits, tokenizer, max_length, long_text, stride)
    class_weights = resolve_class_weights(
        config.train.class_weights, data.task, data.label_names, data.splits["train"][LABELS]
    )
    mlm_folder = None
    if config.strategy.mlm_first:
        mlm_folder = _continue_pretraining(config, model_path, output)
        model_path = str(mlm_folder)
    # Seed before the new classification head is initialised (Trainer seeds only later, in its __init__).
    set_seed(config.train.seed)
    model = build_model(
        model_path,
        task=data.task,
        label_names=data.label_names,
        tokenizer=tokenizer,
        trust_remote_code=config.model.trust_remote_code,
        allow_pickle=config.model.allow_pickle,
    )
    model = strategy.prepare(model, config.strategy)
    trainable, total = count_parameters(model)
    logger.info(
        "%s: %s trainable parameters of %s (%.2f%%)",
        strategy.name,
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / total,
    )

    resume = config.train.resume
    if not resume and has_checkpoint(partial_dir(output)):
        logger.warning(
            "discarding the checkpoints of an unfinished run in %s (pass --resume to continue it)",
            partial_dir(output),
        )
    has_validation = "validation" in encoded
    args = build_training_arguments(config, partial_dir(output) / CHECKPOINT_DIR, data.task, has_validation)
    main_process = args.process_index == 0
    # A failed run keeps its work folder when it holds a checkpoint: `--resume` continues from there.
    with run_folder(
        output, config.train.overwrite, args, keep_partial=resume, keep_on_error=has_checkpoint
    ) as tmp:
        checkpoint = None
        if resume:
            if main_process:
                clear_for_resume(tmp)
            checkpoint = find_resume_checkpoint(tmp)
            if checkpoint is None:
                logger.warning("--resume: no complete checkpoint in %s; training from the start", tmp)
            else:
                logger.info("resuming from %s", checkpoint)
        if main_process:
            record_resume_config(tmp, config.to_dict())
        callbacks = list(callbacks or [])
        if config.train.early_stopping_patience and has_validation:
            callbacks.append(
                EarlyStoppingCallback(early_stopping_patience=config.train.early_stopping_patience)
            )
        started = time.perf_counter()
        inputs = strategy.training_inputs(
            model,
            {name: encoded[name] for name in ("train", "validation") if name in encoded},
            make_collator(tokenizer),
            batch_size=config.train.eval_batch_size,
            device=args.device,
        )
        for name, value in inputs.argument_overrides.items():
            setattr(args, name, value)
        compute_metrics = make_compute_metrics(data.task, data.label_names)
        if long_text == SLIDING and has_validation:
            compute_metrics = document_compute_metrics(compute_metrics, encoded["validation"][DOCUMENT_ID])
        collator = inputs.collator
        if os.environ.get(SHARD_LOG_ENV):
            collator = shard_logging_collator(
                collator, inputs.datasets["train"], os.environ[SHARD_LOG_ENV], args.process_index
            )
        trainer_class, extra = TexttuneTrainer, {}
        if config.train.max_tokens_per_batch:
            from .batching import make_token_budget_trainer_class

            trainer_class = make_token_budget_trainer_class(TexttuneTrainer)
            extra = {"max_tokens_per_batch": config.train.max_tokens_per_batch}
        trainer = trainer_class(
            model=inputs.model,
            args=args,
            train_dataset=inputs.datasets["train"],
            eval_dataset=inputs.datasets.get("validation"),
            processing_class=tokenizer,
            data_collator=collator,
            compute_metrics=compute_metrics,
            compute_loss_func=make_weighted_loss(data.task, class_weights) if class_weights else None,
            callbacks=callbacks,
            **extra,
        )
        _point_trackers_at(trainer, tmp)
        if not config.train.progress:  # without bars the Trainer prints every log dict; the log file has them
            trainer.remove_callback(PrinterCallback)
        train_output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        train_seconds = time.perf_counter() - started
        # Mixed precision wrapped the trained module's forward in autocast; this restores it in place, so
        # the model handed back computes in fp32 like the saved one.
        extract_model_from_parallel(trainer.model, keep_fp32_wrapper=False)
        state_dict = gathered_state_dict(trainer)  # every process takes part under FSDP/DeepSpeed
        if not trainer.is_world_process_zero():
            logger.info(
                "process %d of %d: the run is written by process 0", args.process_index, args.world_size
            )
            return TrainResult(
                output=output,
                metrics={},
                test_metrics=None,
                train_seconds=train_seconds,
                train_samples=len(encoded["train"]),
                trainable_parameters=trainable,
                total_parameters=total,
                process_index=args.process_index,
            )

        # The strategy saves with save_pretrained, never trainer.save_model (it adds a pickled
        # training_args.bin); ``model`` is the whole prepared model, which holds what the Trainer trained.
        strategy.save(model, tmp)
        if state_dict is not None:  # FSDP/DeepSpeed: the full weights were gathered from the shards
            model.save_pretrained(str(tmp), state_dict=state_dict)
        tokenizer.save_pretrained(str(tmp))
        if mlm_folder is not None:
            shutil.move(str(mlm_folder), str(tmp / MLM_MODEL_DIR))
        manifest = RunManifest(
            task=data.task,
            label_names=data.label_names,
            text_column=data.text_column,
            text_pair_column=data.text_pair_column,
            label_column=data.label_column,
            max_length=max_length,
            base_model=config.model.model,
            strategy=strategy.name,
            threshold=DEFAULT_THRESHOLD,
            trainable_parameters=trainable,
            total_parameters=total,
            config=config.to_dict(),
            long_text=long_text,
            stride=stride if long_text == SLIDING else None,
        )
        write_manifest(tmp, manifest)
        log_history = list(trainer.state.log_history)
        write_json(tmp / TRAINING_LOG_FILE, log_history)

        if data.task == MULTI_LABEL and config.train.tune_thresholds and has_validation:
            _tune_thresholds(tmp, manifest, data)
        metrics, test_metrics = _final_evaluation(tmp, data)
        metrics["train_seconds"] = round(train_seconds, 2)
        metrics["train_samples_per_second"] = round(
            float(train_output.metrics.get("train_samples_per_second", 0)), 3
        )
        if inputs.feature_seconds:
            metrics["feature_seconds"] = round(inputs.feature_seconds, 2)
        metrics["trainable_parameters"] = trainable
        metrics["total_parameters"] = total
        write_json(tmp / METRICS_FILE, metrics)
        if test_metrics is not None:
            write_json(tmp / TEST_METRICS_FILE, test_metrics)
        if config.train.report:
            from .report import report_for_run

            report_for_run(tmp, manifest, data, metrics, test_metrics, log_history, train_seconds)
        # Checkpoints go last: until the run is complete they are what --resume continues from.
        trash = _stash_checkpoints(tmp)
    _remove_folder(trash)

    logger.info("run written to %s", output)
    return TrainResult(
        output=output,
        metrics=metrics,
        test_metrics=test_metrics,
        train_seconds=train_seconds,
        train_samples=len(encoded["train"]),
        trainable_parameters=trainable,
        total_parameters=total,
        log_history=log_history,
        model=model,
    )


def _dummy_report(data: PreparedData) -> dict[str, Any]:
    """A report with every metric name of the task, to validate ``--metric-for-best-model`` before training."""
    import numpy as np

    from .metrics import evaluate_predictions

    n = max(1, len(data.label_names))
    if data.task == REGRESSION:
        return evaluate_predictions(data.task, [], np.zeros((2, 1)), np.zeros(2))
    labels = np.zeros((2, n)) if data.task == MULTI_LABEL else np.zeros(2)
    return evaluate_predictions(data.task, data.label_names, np.zeros((2, n)), labels)


def _final_evaluation(run: Path, data: PreparedData) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Evaluate through the saved run, exactly as ``texttune evaluate`` will, and keep the validation split."""
    from .inference import Predictor

    predictor = Predictor.load(run)
    metrics: dict[str, Any] = {}
    if "validation" in data.splits:
        validation = data.splits["validation"]
        validation.to_parquet(str(run / VALIDATION_DATA_FILE))
        metrics = predictor.evaluate(validation)
        (run / REPORT_FILE).write_text(format_report(metrics) + "\n", encoding="utf-8")
        if "confusion_matrix" in metrics:
            plot_confusion_matrix(
                metrics["confusion_matrix"], data.label_names, run / CONFUSION_MATRIX_FILE, "validation"
            )
    test_metrics = predictor.evaluate(data.splits["test"]) if "test" in data.splits else None
    return metrics, test_metrics


def _tune_thresholds(run: Path, manifest: RunManifest, data: PreparedData) -> None:
    """Store per-label thresholds that maximise each label's F1 on the validation split."""
    import numpy as np

    from .inference import Predictor
    from .metrics import sigmoid

    validation = data.splits["validation"]
    pairs = validation[TEXT_PAIR] if TEXT_PAIR in validation.column_names else None
    logits = Predictor.load(run).logits(validation[TEXT], pairs)
    manifest.thresholds = tune_thresholds(sigmoid(logits), np.asarray(validation[LABELS]))
    logger.info(
        "multi-label thresholds: %s",
        ", ".join(f"{n}={t:g}" for n, t in zip(data.label_names, manifest.thresholds)),
    )
    write_manifest(run, manifest)


def _check_trackers(report_to: str) -> None:
    if "tensorboard" in report_to:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--report-to tensorboard needs the tensorboard package: pip install 'texttune[tensorboard]'"
            ) from None


def _point_trackers_at(trainer, run: Path) -> None:
    """TensorBoard writes under the checkpoint folder by default, which is deleted: log into RUN/tensorboard."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(run / TENSORBOARD_DIR)


def _stash_checkpoints(work: Path) -> Path:
    """Move the checkpoints of a finished run out of its work folder (a rename: instant) and return where.

    They are deleted only after the run is in place, so a crash at any moment leaves either a checkpoint
    to resume from or the finished run.
    """
    import os

    from .checkpoints import RESUME_CONFIG_FILE

    trash = _checkpoint_trash(work)
    _remove_folder(trash)
    if (work / CHECKPOINT_DIR).exists():
        os.replace(work / CHECKPOINT_DIR, trash)
    (work / RESUME_CONFIG_FILE).unlink(missing_ok=True)
    return trash


def _checkpoint_trash(work: Path) -> Path:
    return work.parent / f"{work.name}.old-checkpoints"


def _remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def with_defaults_resolved(config: RunConfig) -> RunConfig:
    """A copy of ``config`` with the model-dependent defaults filled in, as the run folder records them."""
    if config.train.learning_rate is not None:
        return config
    resolved = copy.deepcopy(config)
    resolved.train.learning_rate = default_learning_rate(config.model.model)
    return resolved


def _check_resumable(config: RunConfig) -> None:
    """Before any work: a finished run has nothing to resume, and a resumed run must keep its options."""
    output = Path(config.train.output or "")
    if (output / MANIFEST_FILE).is_file():
        raise ConfigError(
            f"--resume: {output} is already a finished run, there is nothing to resume; "
            "choose another --output, or pass --overwrite instead of --resume to train it again"
        )
    work = partial_dir(output)
    if work.is_dir():
        check_resume_config(work, config.to_dict())


def _continue_pretraining(config: RunConfig, model_path: str, output: Path) -> Path:
    """``--mlm-first``: masked-LM training on unlabelled text, into a folder beside the run's work folder.

    The folder moves into the finished run (``mlm_model/``); adapter runs load their base model from it.
    If training fails after this step, the hidden ``.NAME.mlm`` folder stays until the next run to NAME.
    """
    from .pretraining import pretrain

    folder = output.parent / f".{output.name}.mlm"
    shutil.rmtree(folder, ignore_errors=True)
    options = config.strategy
    pretrain(
        options.mlm_first,
        model_path,
        folder,
        epochs=options.mlm_epochs,
        learning_rate=options.mlm_learning_rate,
        batch_size=config.train.batch_size,
        max_length=config.model.max_length,
        mlm_probability=options.mlm_probability,
        whole_word_mask=options.whole_word_mask,
        seed=config.train.seed,
        progress=config.train.progress,
        use_cpu=config.train.use_cpu,
        overwrite=True,
        trust_remote_code=config.model.trust_remote_code,
    )
    return folder
