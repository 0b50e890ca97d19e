"""Fine-tuning, as a short sequence of visible steps.

:func:`train` is ``prepare`` (check options, read and tokenize data, build the model) -> ``build_trainer``
(the strategy's inputs, metrics, callbacks; :func:`texttune.trainer.make_trainer` builds the ``Trainer``)
-> ``trainer.train()`` -> :func:`texttune.artifacts.save_run` -> ``finish_run`` (thresholds, the final
evaluation through the saved run, metrics, the report). Each step is public, so a custom loop can reuse
them (see ``examples/custom_loop.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import (
    AUDIT_DIR,
    CHECKPOINT_DIR,
    METRICS_FILE,
    TENSORBOARD_DIR,
    TEST_METRICS_FILE,
    RunManifest,
    check_output_dir,
    partial_dir,
    save_run,
    write_analysis,
    write_evaluation,
    write_json,
    write_manifest,
    write_validation_split,
)
from .checkpoints import (
    check_resumable,
    clear_for_resume,
    find_resume_checkpoint,
    has_checkpoint,
    record_resume_config,
    remove_folder,
    stash_checkpoints,
)
from .config import RunConfig
from .data import PreparedData, load_training_data
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
    best_metric,
    check_metric_name,
    make_compute_metrics,
    one_class_advice,
)
from .modeling import build_model, check_model_folder, count_parameters, resolve_model_path
from .recipe import choose_strategy, resolve_defaults
from .strategies import get_strategy
from .tasks import LABELS, MULTI_LABEL, REGRESSION, TEXT, TEXT_PAIR
from .tokenization import drop_untokenizable, load_tokenizer, make_collator, resolve_max_length

logger = logging.getLogger(__name__)


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


def device_arguments(precision: str, use_cpu: bool) -> dict[str, bool]:
    """The ``TrainingArguments`` that place training: device, mixed precision, pinned memory.

    Shared by fine-tuning and masked-LM pretraining, so ``--precision`` means the same in both.
    """
    flags = precision_flags(precision, use_cpu)
    on_gpu = _on_gpu(use_cpu)
    return {
        # TrainingArguments refuses bf16 without a GPU unless told the CPU is meant; DDP without CUDA needs it.
        "use_cpu": use_cpu or needs_cpu_backend() or (bool(flags) and not on_gpu),
        "dataloader_pin_memory": on_gpu,  # pinned memory only helps host-to-GPU copies
        **flags,
    }


def build_training_arguments(config: RunConfig, output_dir: Path, task: str, has_validation: bool):
    """Map our :class:`TrainConfig` onto ``TrainingArguments``."""
    from transformers import TrainingArguments

    train = config.train
    metric, greater = best_metric(task, train.metric_for_best_model)
    # Checkpoints are always written (at least once per epoch) so that --resume has something to continue
    # from; evaluation follows the same schedule because the best checkpoint is picked among them.
    save = {"save_strategy": "steps", "save_steps": train.save_steps} if train.save_steps else {}
    save = save or {"save_strategy": "epoch"}
    evaluation = {"eval_strategy": "no"}
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
        fsdp=train.fsdp,
        deepspeed=train.deepspeed,
        **device_arguments(train.precision, train.use_cpu),
    )


@dataclass
class PreparedRun:
    """Everything a run needs before its ``Trainer`` is built (see :func:`prepare`).

    ``encoded`` holds the tokenized ``train`` (and ``validation``) splits; ``model`` is the classifier
    after :meth:`Strategy.prepare <texttune.strategies.Strategy.prepare>`.
    """

    config: RunConfig
    output: Path
    strategy: Any
    data: PreparedData
    tokenizer: Any
    max_length: int
    stride: int
    encoded: dict[str, Any]
    model: Any
    class_weights: list[float] | None
    trainable_parameters: int
    total_parameters: int
    mlm_folder: Path | None = None
    #: ``--audit``: the audit of the training data (:class:`texttune.audit.AuditResult`).
    audit: Any = None

    @property
    def has_validation(self) -> bool:
        return "validation" in self.encoded


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
    prepared = prepare(config)
    config = prepared.config
    args = build_training_arguments(
        config, partial_dir(prepared.output) / CHECKPOINT_DIR, prepared.data.task, prepared.has_validation
    )
    # A failed run keeps its work folder when it holds a checkpoint: `--resume` continues from there.
    with run_folder(
        prepared.output,
        config.train.overwrite,
        args,
        keep_partial=config.train.resume,
        keep_on_error=has_checkpoint,
    ) as work:
        checkpoint = resume_point(prepared, work, args.process_index == 0)
        started = time.perf_counter()
        trainer, inputs = build_trainer(prepared, args, work, callbacks)
        train_output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        state_dict = _trained_state(trainer)
        prepared.strategy.finish(
            prepared.model,
            prepared.encoded,
            make_collator(prepared.tokenizer),
            batch_size=config.train.eval_batch_size,
        )
        seconds = time.perf_counter() - started
        if not trainer.is_world_process_zero():
            logger.info(
                "process %d of %d: the run is written by process 0", args.process_index, args.world_size
            )
            return _result(prepared, seconds, process_index=args.process_index)
        log_history = list(trainer.state.log_history)
        manifest = run_manifest(prepared)
        save_run(
            work,
            model=prepared.model,
            tokenizer=prepared.tokenizer,
            manifest=manifest,
            log_history=log_history,
            state_dict=state_dict,
            mlm_folder=prepared.mlm_folder,
        )
        metrics, test_metrics = finish_run(
            work, prepared, manifest, log_history, seconds, train_output, inputs
        )
        trash = stash_checkpoints(work)  # last: until the run is complete they are what --resume uses
    remove_folder(trash)
    logger.info("run written to %s", prepared.output)
    return _result(prepared, seconds, metrics, test_metrics, log_history, model=prepared.model)


def prepare(config: RunConfig) -> PreparedRun:
    """Check the options, read and tokenize the data, and build the model the strategy will train.

    Everything that can fail on bad input fails here, before the run folder is created.
    """
    from transformers import set_seed

    if not config.train.output:
        raise ConfigError("no output folder given; pass --output DIR")
    if not config.data.data:
        raise ConfigError(
            "no training data given; pass --data FILE or a built-in name (see `texttune datasets`)"
        )
    if config.train.resume:
        check_resumable(Path(config.train.output))
    output = check_output_dir(config.train.output, config.train.overwrite)
    check_engine_options(config.train.fsdp, config.train.deepspeed)
    _check_trackers(config.train.report_to)
    if not config.train.resume and has_checkpoint(partial_dir(output)):
        logger.warning(
            "discarding the checkpoints of an unfinished run in %s (pass --resume to continue it)",
            partial_dir(output),
        )
    data = load_training_data(config.data)
    audit = _audit_data(config) if config.train.audit else None
    if config.train.metric_for_best_model:
        check_metric_name(config.train.metric_for_best_model, data.task, data.label_names)
    model_path = resolve_model_path(config.model.model)
    check_model_folder(
        model_path, allow_pickle=config.model.allow_pickle, trust_remote_code=config.model.trust_remote_code
    )
    train_rows = len(data.splits["train"])
    config = choose_strategy(config, data.task, train_rows, len(data.label_names))
    strategy = get_strategy(config.strategy.strategy)
    config = resolve_defaults(config, strategy, train_rows, model_path)
    if config.train.resume:
        check_resumable(output, config.to_dict())
    tokenizer = load_tokenizer(model_path, trust_remote_code=config.model.trust_remote_code)
    data.splits = drop_untokenizable(
        data.splits,
        tokenizer,
        text_column=data.text_column,
        text_pair_column=data.text_pair_column,
        strict=config.data.strict,
    )
    max_length = resolve_max_length(tokenizer, config.model.max_length)
    long_text = config.model.long_text
    stride = check_long_text(long_text, max_length, config.model.stride, data.text_pair_column is not None)
    encoded = tokenize_splits(data.splits, tokenizer, max_length, long_text, stride)
    class_weights = resolve_class_weights(
        config.train.class_weights, data.task, data.label_names, data.splits["train"][LABELS]
    )
    mlm_folder = _continue_pretraining(config, model_path, output) if config.strategy.mlm_first else None
    # Seed before the new classification head is initialised (Trainer seeds only later, in its __init__).
    set_seed(config.train.seed)
    model = build_model(
        str(mlm_folder or model_path),
        task=data.task,
        label_names=data.label_names,
        tokenizer=tokenizer,
        trust_remote_code=config.model.trust_remote_code,
        allow_pickle=config.model.allow_pickle,
        pooling=config.model.pooling,
    )
    model = strategy.prepare(model, config.strategy.options_for())
    trainable, total = count_parameters(model)
    logger.info(
        "%s: %s trainable parameters of %s (%.2f%%)", strategy.name, f"{trainable:,}", f"{total:,}",
        100 * trainable / total,
    )  # fmt: skip
    return PreparedRun(
        config=config,
        output=output,
        strategy=strategy,
        data=data,
        tokenizer=tokenizer,
        max_length=max_length,
        stride=stride,
        encoded=encoded,
        model=model,
        class_weights=class_weights,
        trainable_parameters=trainable,
        total_parameters=total,
        mlm_folder=mlm_folder,
        audit=audit,
    )


def _audit_data(config: RunConfig):
    """``--audit``: the cheap audit (k-fold over the frozen model's embeddings) of the training data."""
    from .audit import format_summary, run_audit
    from .config import AuditConfig

    result = run_audit(config.data, AuditConfig(model=config.model.model, max_length=config.model.max_length))
    logger.info("audit of the training data:\n%s", format_summary(result.summary))
    return result


def resume_point(prepared: PreparedRun, work: Path, main_process: bool) -> Path | None:
    """The checkpoint ``--resume`` continues from (None: start afresh); records the options it must keep."""
    checkpoint = None
    if prepared.config.train.resume:
        if main_process:
            clear_for_resume(work)
        checkpoint = find_resume_checkpoint(work)
        if checkpoint is None:
            logger.warning("--resume: no complete checkpoint in %s; training from the start", work)
        else:
            logger.info("resuming from %s", checkpoint)
    if main_process:
        record_resume_config(work, prepared.config.to_dict())
    return checkpoint


def build_trainer(prepared: PreparedRun, args, work: Path, callbacks: list | None = None):
    """The ``Trainer`` of a prepared run, and the :class:`TrainingInputs` its strategy handed it."""
    from transformers import EarlyStoppingCallback

    from .trainer import make_trainer

    train_config = prepared.config.train
    callbacks = list(callbacks or [])
    if train_config.early_stopping_patience and prepared.has_validation:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=train_config.early_stopping_patience))
    inputs = prepared.strategy.training_inputs(
        prepared.model,
        dict(prepared.encoded),
        make_collator(prepared.tokenizer),
        batch_size=train_config.eval_batch_size,
        device=args.device,
    )
    for name, value in inputs.argument_overrides.items():
        setattr(args, name, value)
    data = prepared.data
    compute_metrics = make_compute_metrics(data.task, data.label_names)
    if prepared.config.model.long_text == SLIDING and prepared.has_validation:
        compute_metrics = document_compute_metrics(
            compute_metrics, prepared.encoded["validation"][DOCUMENT_ID]
        )
    collator = inputs.collator
    if os.environ.get(SHARD_LOG_ENV):
        collator = shard_logging_collator(
            collator, inputs.datasets["train"], os.environ[SHARD_LOG_ENV], args.process_index
        )
    trainer = make_trainer(
        inputs.model,
        args,
        train_dataset=inputs.datasets["train"],
        eval_dataset=inputs.datasets.get("validation"),
        tokenizer=prepared.tokenizer,
        collator=collator,
        compute_metrics=compute_metrics,
        compute_loss=make_weighted_loss(data.task, prepared.class_weights)
        if prepared.class_weights
        else None,
        callbacks=callbacks,
        max_tokens_per_batch=train_config.max_tokens_per_batch,
        micro_batch_tokens=train_config.micro_batch_tokens,
        progress=train_config.progress,
    )
    _point_trackers_at(trainer, work)
    return trainer, inputs


def _trained_state(trainer) -> dict[str, Any] | None:
    """Undo mixed precision's wrapper and gather sharded weights (every process must call this)."""
    from accelerate.utils import extract_model_from_parallel

    # Mixed precision wrapped the trained module's forward in autocast; this restores it in place, so the
    # model handed back computes in fp32 like the saved one.
    extract_model_from_parallel(trainer.model, keep_fp32_wrapper=False)
    return gathered_state_dict(trainer)  # FSDP/DeepSpeed: the full weights; else None


def run_manifest(prepared: PreparedRun) -> RunManifest:
    """What the run is: task, labels, columns, encoding, strategy, parameter counts and resolved config."""
    config = prepared.config
    long_text = config.model.long_text
    return RunManifest.for_data(
        prepared.data,
        max_length=prepared.max_length,
        base_model=config.model.model,
        strategy=prepared.strategy.name,
        threshold=DEFAULT_THRESHOLD,
        trainable_parameters=prepared.trainable_parameters,
        total_parameters=prepared.total_parameters,
        config=config.to_dict(),
        long_text=long_text,
        stride=prepared.stride if long_text == SLIDING else None,
    )


def finish_run(
    work: Path,
    prepared: PreparedRun,
    manifest: RunManifest,
    log_history: list[dict[str, Any]],
    train_seconds: float,
    train_output,
    inputs,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """After-save steps on the saved run: calibration, thresholds, the final evaluation, metrics, report."""
    from .inference import Predictor

    data, config = prepared.data, prepared.config
    if prepared.audit is not None:
        from .audit import write_audit

        write_audit(work / AUDIT_DIR, prepared.audit)
    predictor = Predictor.load(
        work
    )  # everything below goes through the saved run, as `texttune evaluate` does
    validation_logits = None
    if prepared.has_validation:
        validation = data.splits["validation"]
        pairs = validation[TEXT_PAIR] if TEXT_PAIR in validation.column_names else None
        validation_logits = predictor.logits(validation[TEXT], pairs)
        _fit_on_validation(work, manifest, data, config, validation_logits)
        predictor.manifest = manifest
    metrics, test_metrics = _final_evaluation(work, data, predictor, validation_logits)
    advice = one_class_advice(metrics) or one_class_advice(test_metrics or {})
    if advice:
        logger.warning("WARNING: %s", advice)
    metrics["train_seconds"] = round(train_seconds, 2)
    metrics["train_samples_per_second"] = round(
        float(train_output.metrics.get("train_samples_per_second", 0)), 3
    )
    if inputs.feature_seconds:
        metrics["feature_seconds"] = round(inputs.feature_seconds, 2)
    metrics["trainable_parameters"] = prepared.trainable_parameters
    metrics["total_parameters"] = prepared.total_parameters
    write_json(work / METRICS_FILE, metrics)
    if test_metrics is not None:
        write_json(work / TEST_METRICS_FILE, test_metrics)
    if config.train.report:
        from .report import report_for_run

        report_for_run(work, manifest, data, metrics, test_metrics, log_history, train_seconds)
    return metrics, test_metrics


def _result(
    prepared: PreparedRun,
    seconds: float,
    metrics: dict[str, Any] | None = None,
    test_metrics: dict[str, Any] | None = None,
    log_history: list[dict[str, Any]] | None = None,
    *,
    model: Any = None,
    process_index: int = 0,
) -> TrainResult:
    return TrainResult(
        output=prepared.output,
        metrics=metrics or {},
        test_metrics=test_metrics,
        train_seconds=seconds,
        train_samples=len(prepared.encoded["train"]),
        trainable_parameters=prepared.trainable_parameters,
        total_parameters=prepared.total_parameters,
        log_history=log_history or [],
        model=model,
        process_index=process_index,
    )


def _final_evaluation(
    run: Path, data: PreparedData, predictor, validation_logits
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Evaluate the saved run's ``predictor``, exactly as ``texttune evaluate`` will, and keep the validation
    split (whose logits the caller already has)."""
    metrics: dict[str, Any] = {}
    has_test = "test" in data.splits
    if "validation" in data.splits:
        write_validation_split(run, data.splits["validation"])
        metrics = predictor.evaluate(
            data.splits["validation"], analysis=not has_test, logits=validation_logits
        )
        write_analysis(run, metrics.pop("analysis", None), "validation")
        write_evaluation(run, metrics, data.label_names, "validation")
    test_metrics = predictor.evaluate(data.splits["test"], analysis=True) if has_test else None
    if test_metrics is not None:
        write_analysis(run, test_metrics.pop("analysis", None), "test")
    return metrics, test_metrics


def _fit_on_validation(
    run: Path, manifest: RunManifest, data: PreparedData, config: RunConfig, logits
) -> None:
    """Store what the saved run fits on its validation ``logits``: the temperature (``--calibrate``), then
    the multi-label thresholds (``--tune-thresholds``) on the calibrated probabilities."""
    import numpy as np

    from .calibration import apply_temperature, fit_temperature
    from .metrics import sigmoid

    calibrate = config.train.calibrate and data.task != REGRESSION
    tune = config.train.tune_thresholds and data.task == MULTI_LABEL
    if not (calibrate or tune):
        return
    labels = np.asarray(data.splits["validation"][LABELS])
    if calibrate:
        manifest.temperature = fit_temperature(data.task, logits, labels)
        logger.info(
            "calibration: temperature %s (fitted on %d validation rows)", manifest.temperature, len(labels)
        )
    if tune:
        probabilities = sigmoid(apply_temperature(logits, manifest.temperature))
        manifest.thresholds = tune_thresholds(probabilities, labels)
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
        micro_batch_tokens=config.train.micro_batch_tokens,
        precision=config.train.precision,
        seed=config.train.seed,
        progress=config.train.progress,
        use_cpu=config.train.use_cpu,
        overwrite=True,
        trust_remote_code=config.model.trust_remote_code,
    )
    return folder
