"""Hyperparameter search with Optuna: a sampled space (TPE) or a fixed grid, with pruning of bad trials.

Each trial is an ordinary :func:`texttune.train` run into a scratch folder that is deleted when the trial
ends, so the best trial's configuration, written as ``best.yaml``, reproduces it with
``texttune train --config best.yaml``. A callback reports the validation metric after every epoch so the
pruner can stop trials that trail the others.

The search space maps option names of ``texttune train`` to ranges or choices; any option can be
searched (strategy knobs such as ``lora_rank`` included), given in a YAML file with ``--space``::

    learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}
    batch_size: [16, 32]
    epochs: {low: 2, high: 4}
"""

from __future__ import annotations

import csv
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig, field_owners, run_field
from .errors import ConfigError
from .options import field_kind, require_at_least

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
BEST_CONFIG_FILE = "best.yaml"
TRIALS_DIR = "trials"
PRUNERS = ("median", "none")

#: Options that describe where a run goes or how it is shown, not how it trains: never searched and not
#: copied into ``best.yaml`` (``output``) or set per trial (``report``, ``progress``).
_NOT_SEARCHABLE = ("output", "overwrite", "report", "progress", "report_to")

#: The default space: the BERT paper's knobs, widened to ranges.
DEFAULT_SPACE: dict[str, Any] = {
    "learning_rate": {"low": 1e-5, "high": 1e-4, "log": True},
    "batch_size": [16, 32],
    "epochs": {"low": 2, "high": 4},
    "warmup_ratio": {"low": 0.0, "high": 0.2},
    "weight_decay": {"low": 0.0, "high": 0.1},
}

#: Named grids for ``--grid``. ``bert``: Devlin et al. (2019), appendix A.3.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "bert": {"learning_rate": [5e-5, 3e-5, 2e-5], "batch_size": [16, 32], "epochs": [2, 3, 4]},
}


@dataclass
class SearchConfig:
    """How to search. The run options (data, model, fixed hyperparameters) come from the train flags."""

    n_trials: int | None = field(
        default=None, metadata={"help": "Number of trials. Default: the grid's size with --grid, else 10."}
    )
    grid: str | None = field(
        default=None,
        metadata={"help": "Try every point of a named grid instead of sampling: bert (lr x batch x epochs)."},
    )
    space: str | None = field(
        default=None,
        metadata={
            "help": "YAML file mapping options to ranges ({low, high, log}) or lists of choices. "
            "Default: learning_rate, batch_size, epochs, warmup_ratio, weight_decay."
        },
    )
    pruner: str = field(
        default="median",
        metadata={
            "help": "median: stop a trial whose epoch score is below the median of earlier trials; none."
        },
    )
    search_seed: int = field(default=0, metadata={"help": "Seed of the sampler."})

    def __post_init__(self) -> None:
        require_at_least(self, "n_trials", 1)
        if self.grid is not None and self.grid not in GRIDS:
            raise ConfigError(f"--grid {self.grid!r} is not one of {', '.join(GRIDS)}")
        if self.grid is not None and self.space is not None:
            raise ConfigError("give --grid or --space, not both")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner {self.pruner!r} is not one of {', '.join(PRUNERS)}")


@dataclass
class SearchResult:
    """What :func:`search` returns."""

    output: Path
    metric: str
    greater_is_better: bool
    rows: list[dict[str, Any]]
    best_params: dict[str, Any]
    best_value: float
    results_file: Path
    best_config_file: Path


def _require_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("texttune search needs optuna: pip install 'texttune[search]'") from None
    return optuna


def load_space(path: str | Path) -> dict[str, Any]:
    """Read a ``--space`` YAML file (option name -> range or list of choices) and check it."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--space file not found: {path}")
    try:
        space = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"--space {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"--space {path} must map option names to ranges or lists of choices")
    check_space(space, str(path))
    return space


def check_space(space: dict[str, Any], source: str = "space") -> None:
    """Every key must be an option of ``texttune train`` and every value a range or a non-empty list."""
    owners = field_owners()
    unknown = sorted(set(space) - set(owners))
    if unknown:
        raise ConfigError(
            f"--space {source}: unknown option(s) {', '.join(unknown)}; searchable options are those of "
            "`texttune train --help` with underscores (learning_rate, batch_size, ...)"
        )
    fixed = sorted(set(space) & set(_NOT_SEARCHABLE))
    if fixed:
        raise ConfigError(f"--space {source}: {', '.join(fixed)} cannot be searched")
    for name, spec in space.items():
        if isinstance(spec, list) and spec:
            continue
        if isinstance(spec, dict) and {"low", "high"} <= set(spec) and set(spec) <= {"low", "high", "log"}:
            if float(spec["low"]) > float(spec["high"]):
                raise ConfigError(f"--space {source}: {name} has low above high")
            continue
        raise ConfigError(
            f"--space {source}: {name} must be a list of choices or {{low: ..., high: ..., log: true|false}}"
        )


def _suggest(trial, name: str, spec: Any) -> Any:
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if field_kind(run_field(name)) == "int" or (isinstance(low, int) and isinstance(high, int)):
        if field_kind(run_field(name)) == "float":
            return float(trial.suggest_int(name, int(low), int(high), log=log))
        return trial.suggest_int(name, int(low), int(high), log=log)
    return trial.suggest_float(name, float(low), float(high), log=log)


def make_pruning_callback(trial, metric: str):
    """A ``TrainerCallback`` that reports ``eval_<metric>`` to Optuna after each evaluation and stops the
    trial (raises ``optuna.TrialPruned``) when the pruner says so. ``reported`` maps epoch -> value."""
    import optuna
    from transformers import TrainerCallback

    class PruningCallback(TrainerCallback):
        def __init__(self) -> None:
            self.reported: dict[int, float] = {}

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            value = (metrics or {}).get("eval_" + metric)
            if value is None:
                return
            step = int(round(state.epoch or 0))
            self.reported[step] = float(value)
            trial.report(float(value), step=step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{metric} {value:.4f} after epoch {step}")

    return PruningCallback()


def search(config: RunConfig, search_config: SearchConfig | None = None, *, pruner=None) -> SearchResult:
    """Search hyperparameters for ``config`` and write ``results.csv`` and ``best.yaml`` into its output.

    Args:
        config: The base run; its ``output`` is the search folder, the searched options override it.
        search_config: Trials, grid or space, pruner, seed.
        pruner: An Optuna pruner to use instead of ``search_config.pruner`` (for experiments and tests).

    Returns:
        The trials, the best parameters and value, and the files written.

    Example:
        >>> cfg = RunConfig(data=DataConfig(data="sms_spam"), train=TrainConfig(output="runs/search"))
        >>> result = search(cfg, SearchConfig(n_trials=8))  # doctest: +SKIP
        >>> result.best_params  # doctest: +SKIP
    """
    from .data import load_training_data
    from .metrics import best_metric

    optuna = _require_optuna()
    search_config = search_config or SearchConfig()
    output, space = _check_search(config, search_config)
    task = load_training_data(config.data).task  # also fails early on bad data
    metric, greater = best_metric(task, config.train.metric_for_best_model)
    if output.exists() and config.train.overwrite:
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    base = {k: v for section in config.to_dict().values() for k, v in section.items()}
    optuna.logging.disable_default_handler()  # the library logs through `logging`, never to stderr
    optuna.logging.enable_propagation()
    study, n_trials = _study(optuna, search_config, space, greater, pruner)
    rows: list[dict[str, Any]] = []
    objective = _objective(base, space, output, metric, rows)
    study.optimize(objective, n_trials=n_trials, catch=())
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise ConfigError(
            f"all {len(study.trials)} trials were pruned; run more trials or pass --pruner none"
        )
    best = study.best_trial
    best_file = output / BEST_CONFIG_FILE
    write_best_config(best_file, dict(base, **best.params), metric, best.value)
    return SearchResult(
        output=output,
        metric=metric,
        greater_is_better=greater,
        rows=rows,
        best_params=dict(best.params),
        best_value=float(best.value),
        results_file=output / RESULTS_FILE,
        best_config_file=best_file,
    )


def _check_search(config: RunConfig, search_config: SearchConfig) -> tuple[Path, dict[str, Any]]:
    """Refuse a search that cannot run; returns the output folder and the checked search space."""
    from .artifacts import check_output_dir
    from .distributed import launched_world_size

    if launched_world_size() > 1:
        raise ConfigError("texttune search runs its trials in one process; start it without torchrun")
    if not config.train.output:
        raise ConfigError("no output folder given; pass --output DIR for the search results")
    if not config.data.data:
        raise ConfigError("no training data given; pass --data FILE or a built-in name")
    output = check_output_dir(config.train.output, config.train.overwrite)
    if search_config.grid:
        space: dict[str, Any] = {k: list(v) for k, v in GRIDS[search_config.grid].items()}
    else:
        space = load_space(search_config.space) if search_config.space else dict(DEFAULT_SPACE)
    check_space(space)
    return output, space


def _study(optuna, search_config: SearchConfig, space: dict[str, Any], greater: bool, pruner):
    """The Optuna study (grid or TPE sampler, median or no pruner) and how many trials it runs."""
    if search_config.grid:
        sampler = optuna.samplers.GridSampler(space, seed=search_config.search_seed)
        n_trials = search_config.n_trials or _grid_size(space)
    else:
        sampler = optuna.samplers.TPESampler(seed=search_config.search_seed)
        n_trials = search_config.n_trials or 10
    if pruner is None:
        pruner = (
            optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
            if search_config.pruner == "median"
            else optuna.pruners.NopPruner()
        )
    direction = "maximize" if greater else "minimize"
    return optuna.create_study(direction=direction, sampler=sampler, pruner=pruner), n_trials


def _objective(base: dict[str, Any], space: dict[str, Any], output: Path, metric: str, rows: list):
    """One trial: train with the suggested options into a scratch folder, record a row, return the score."""
    import optuna

    from .training import train

    def objective(trial) -> float:
        params = {name: _suggest(trial, name, spec) for name, spec in space.items()}
        trial_dir = output / TRIALS_DIR / f"trial-{trial.number}"
        settings = dict(base, **params, output=str(trial_dir), overwrite=True, report=False, progress=False)
        callback = make_pruning_callback(trial, metric)
        started = time.perf_counter()
        row: dict[str, Any] = {"trial": trial.number, "state": "failed", metric: None, **params}
        try:
            value = float(
                train(RunConfig.from_flat(settings, source="search"), callbacks=[callback]).metrics[metric]
            )
            row.update(state="complete", **{metric: value})
            return value
        except optuna.TrialPruned:
            row["state"] = "pruned"
            row[metric] = callback.reported[max(callback.reported)] if callback.reported else None
            raise
        finally:
            row["epochs_run"] = max(callback.reported, default=0)
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            _write_rows(output / RESULTS_FILE, rows)
            shutil.rmtree(output / TRIALS_DIR, ignore_errors=True)
            logger.info(
                "trial %d %s: %s=%s after %d epoch(s), %s", trial.number, row["state"], metric,
                _fmt(row[metric]), row["epochs_run"], ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()),
            )  # fmt: skip

    return objective


def _grid_size(space: dict[str, list[Any]]) -> int:
    size = 1
    for values in space.values():
        size *= len(values)
    return size


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_best_config(path: Path, settings: dict[str, Any], metric: str, value: float) -> None:
    """The best trial's full configuration, in sections, loadable by ``texttune train --config``."""
    import yaml

    owners = field_owners()
    sections: dict[str, dict[str, Any]] = {name: {} for name in RunConfig.SECTIONS}
    for key, val in settings.items():
        if key in ("output", "overwrite") or key not in owners:
            continue
        sections[owners[key]][key] = val
    header = (
        f"# Best trial of `texttune search`: validation {metric} = {value:.4f}.\n"
        f"# Reproduce: texttune train --config {path.name} --output runs/best\n"
    )
    path.write_text(header + yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")


def format_results(result: SearchResult) -> str:
    """The trials as a plain-text table, best first (pruned and failed trials last)."""
    rows = sorted(
        result.rows,
        key=lambda r: (
            r["state"] != "complete",
            -(r[result.metric] or 0) if result.greater_is_better else (r[result.metric] or 0),
        ),
    )
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
