"""Defaults that adapt to the data and the strategy: what a run does when a flag is not given.

The BERT recipe (batch 32, 3 epochs, 10% warm-up) assumes thousands of rows. On 600 rows it is 57
optimizer steps, and on 16 rows one step per epoch: the model never leaves its initialisation and
predicts the majority class. :func:`resolve_defaults` keeps that recipe where it works and, for smaller
data, picks a smaller batch and more epochs so that every run takes at least :data:`MIN_STEPS` optimizer
steps, with at most :data:`MAX_EVALUATIONS` evaluations. The learning rate comes from the strategy (an
adapter or a head learns at ~1e-3, a whole model at 5e-5..1e-4) or the built-in model's tuned rate.
Warm-up stays a share (``--warmup-ratio``) of the real number of steps. ``--strategy auto`` (the
default) is :func:`choose_strategy`: a few-shot strategy (SetFit) for single-label data with few examples
per class, full fine-tuning otherwise. Every flag the user gives wins.

Example:
    >>> from texttune.recipe import batch_and_epochs
    >>> batch_and_epochs(600), batch_and_epochs(16), batch_and_epochs(10_000)
    ((16, 3.0), (8, 50.0), (32, 3.0))
"""

from __future__ import annotations

import copy
import logging
import math
import os

from .config import RunConfig

logger = logging.getLogger(__name__)

#: The fewest optimizer steps a run with default epochs takes.
MIN_STEPS = 100
#: Epochs of the BERT recipe, used when they already give MIN_STEPS steps.
DEFAULT_EPOCHS = 3.0
#: Batch sizes tried, largest first: the largest that gives MIN_STEPS in DEFAULT_EPOCHS epochs is used.
BATCH_SIZES = (32, 16, 8)
#: Most evaluations (and checkpoints) of a run whose epochs the recipe raised.
MAX_EVALUATIONS = 5


def choose_strategy(config: RunConfig, task: str, train_rows: int, classes: int) -> RunConfig:
    """``config`` with ``--strategy auto`` replaced by the strategy this data calls for.

    Args:
        config: The run's configuration, as given.
        task: The data's task (``single_label``, ``multi_label``, ``regression``).
        train_rows: Rows of the training split.
        classes: Number of classes (0 for regression).

    Returns:
        ``config`` itself when it names a strategy, else a copy naming the chosen one.

    Example:
        >>> from texttune import RunConfig
        >>> choose_strategy(RunConfig(), "single_label", 64, 2).strategy.strategy
        'setfit'
    """
    from .strategies import AUTO, BASE_STRATEGY, get_strategy, strategy_names

    if config.strategy.strategy != AUTO:
        return config
    per_class = train_rows / max(classes, 1)
    suited = [
        strategy
        for strategy in map(get_strategy, strategy_names())
        if per_class <= (strategy.auto_max_per_class or 0)
        and task in strategy.tasks
        and (strategy.native_head if config.model.pooling == "pooler" else strategy.pooled_head)
    ]
    chosen = min(suited, key=lambda s: s.auto_max_per_class).name if suited else BASE_STRATEGY
    resolved = copy.deepcopy(config)
    resolved.strategy.strategy = chosen
    logger.info("--strategy auto: %s (%s, %.0f training rows per class)", chosen, task, per_class)
    return resolved


def batch_and_epochs(
    rows: int,
    batch_size: int | None = None,
    epochs: float | None = None,
    *,
    per_step: int = 1,
    default_epochs: float = DEFAULT_EPOCHS,
    default_batch_size: int | None = None,
    min_steps: int = MIN_STEPS,
):
    """The batch size and epochs for ``rows`` training examples; given values are kept.

    Args:
        rows: Examples the ``Trainer`` iterates per epoch.
        batch_size: ``--batch-size`` if given.
        epochs: ``--epochs`` if given.
        per_step: Batches per optimizer step (gradient accumulation x processes).
        default_epochs: The epochs when they already give ``min_steps`` steps.
        default_batch_size: The batch size when none is given; None: the largest of :data:`BATCH_SIZES`
            that gives ``min_steps`` steps in ``default_epochs`` epochs.
        min_steps: The fewest optimizer steps.

    Returns:
        ``(batch_size, epochs)``.
    """
    if batch_size is None:
        wanted = min_steps / default_epochs
        batch_size = default_batch_size or next(
            (b for b in BATCH_SIZES if rows / (b * per_step) >= wanted), BATCH_SIZES[-1]
        )
    if epochs is None:
        steps_per_epoch = max(1, math.ceil(rows / (batch_size * per_step)))
        epochs = max(default_epochs, float(math.ceil(min_steps / steps_per_epoch)))
    return batch_size, epochs


def resolve_defaults(config: RunConfig, strategy, train_rows: int, model_path: str) -> RunConfig:
    """A copy of ``config`` with every data-, model- and strategy-dependent default filled in.

    The run folder records the result (``run.json``'s config), and one log line says what was chosen.

    Args:
        config: The run's configuration, as given.
        strategy: The run's :class:`~texttune.strategies.Strategy`.
        train_rows: Rows of the training split.
        model_path: The resolved ``--model`` (for the checkpoint's pooling).
    """
    from .assets import default_learning_rate
    from .modeling import resolve_pooling

    resolved = copy.deepcopy(config)
    train = resolved.train
    chosen = []
    resolved.model.pooling = resolve_pooling(config.model.pooling, model_path, strategy)
    if config.model.pooling == "auto":
        chosen.append(f"pooling {resolved.model.pooling}")
    if train.learning_rate is None:
        train.learning_rate = strategy.learning_rate or default_learning_rate(config.model.model)
        chosen.append(f"learning rate {train.learning_rate:g} ({strategy.name})")
    rows = strategy.trainer_rows(train_rows, config.strategy.options_for())
    per_step = train.gradient_accumulation_steps * int(os.environ.get("WORLD_SIZE", "1"))
    batch_size, epochs = batch_and_epochs(
        rows,
        train.batch_size,
        train.epochs,
        per_step=per_step,
        default_epochs=strategy.default_epochs,
        default_batch_size=strategy.default_batch_size,
        min_steps=MIN_STEPS if strategy.min_steps is None else strategy.min_steps,
    )
    if train.batch_size is None:
        chosen.append(f"batch {batch_size}")
    if train.epochs is None:
        chosen.append(f"{epochs:g} epochs")
        steps = math.ceil(rows / (batch_size * per_step)) * epochs
        if epochs > strategy.default_epochs and train.save_steps is None:
            train.save_steps = max(1, math.ceil(steps / MAX_EVALUATIONS))
            chosen.append(f"evaluation every {train.save_steps} steps")
        chosen.append(f"{steps:g} optimizer steps")
    train.batch_size, train.epochs = batch_size, epochs
    if chosen:
        logger.info("recipe for %d training rows (%d per epoch): %s", train_rows, rows, ", ".join(chosen))
    return resolved
