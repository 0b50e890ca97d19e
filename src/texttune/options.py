"""Options as dataclasses: one place that validates them and turns them into flags and YAML keys.

Every configuration of texttune (a run's :class:`~texttune.config.DataConfig`, ...; each strategy's
options; each subcommand's options) is a dataclass whose fields carry their help text. This module
holds the checks their ``__post_init__`` methods share, each naming the flag as the user types it, and
the one builder that turns a dataclass into ``argparse`` flags (``learning_rate`` -> ``--learning-rate``)
and a parsed namespace or a YAML mapping back into field values.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Options:
    ...     batch_size: int = field(default=64, metadata={"help": "Texts per batch."})
    ...     def __post_init__(self):
    ...         require_positive(self, ("batch_size",))
    >>> Options(batch_size=-1)
    Traceback (most recent call last):
    ...
    texttune.errors.ConfigError: --batch-size must be positive, got -1
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import ConfigError


def flag(name: str) -> str:
    """The command-line flag of a field: ``max_length`` -> ``--max-length``."""
    return "--" + name.replace("_", "-")


def require_positive(options: Any, names: Iterable[str], *, what: str = "positive") -> None:
    """Refuse options in ``names`` that are zero or negative; None (use the default) passes.

    ``what`` words the message: ``--NAME must be {what}, got VALUE``.
    """
    for name in names:
        value = getattr(options, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{flag(name)} must be {what}, got {value}")


def require_at_least(options: Any, name: str, minimum: float) -> None:
    """Refuse ``options.name`` below ``minimum``; None passes."""
    value = getattr(options, name)
    if value is not None and value < minimum:
        raise ConfigError(f"{flag(name)} must be at least {minimum}, got {value}")


def require_probability(options: Any, names: Iterable[str]) -> None:
    """Refuse values outside (0, 1]; None passes."""
    for name in names:
        value = getattr(options, name)
        if value is not None and not 0.0 < value <= 1.0:
            raise ConfigError(f"{flag(name)} must be above 0 and at most 1, got {value}")


def require_single_label(name: str, value: Any, task: str) -> None:
    """Refuse option ``name`` (given as ``value``; None passes) for a run whose task is not single-label."""
    if (
        value is not None and task != "single_label"
    ):  # texttune.tasks.SINGLE_LABEL; options imports no module listed below it
        raise ConfigError(f"{flag(name)} applies to single-label runs; this run is {task.replace('_', '-')}")


def require_non_negative(options: Any, names: Iterable[str]) -> None:
    """Refuse negative values in ``names``; None passes."""
    for name in names:
        value = getattr(options, name)
        if value is not None and value < 0:
            raise ConfigError(f"{flag(name)} must not be negative, got {value}")


def require_fraction(options: Any, names: Iterable[str], *, open_low: bool = False) -> None:
    """Refuse values outside [0, 1) (outside (0, 1) with ``open_low``)."""
    for name in names:
        value = getattr(options, name)
        low_ok = value > 0.0 if open_low else value >= 0.0
        if not (low_ok and value < 1.0):
            interval = "between 0 and 1" if open_low else "in [0, 1)"
            raise ConfigError(f"{flag(name)} must be {interval}, got {value}")


def require_choice(options: Any, name: str, choices: Sequence[str]) -> None:
    """Refuse a value that is not one of ``choices``."""
    value = getattr(options, name)
    if value not in choices:
        raise ConfigError(f"{flag(name)} {value!r} is not one of {', '.join(choices)}")


# --------------------------------------------------------------------------- dataclass <-> flags


def field_kind(f: dataclasses.Field) -> str:
    """``bool``, ``int``, ``float``, ``list`` (of strings) or ``str``: how a field is typed on the command line."""
    kind = str(f.type)
    for name in ("bool", "int", "float", "list"):
        if kind.startswith(name):
            return name
    return "str"


def add_arguments(
    parser: argparse.ArgumentParser,
    klass,
    *,
    title: str | None = None,
    skip: Iterable[str] = (),
    defaults: bool = False,
) -> None:
    """One flag per field of the dataclass ``klass``, in a group titled ``title``, help from the field.

    A field's metadata may add ``choices`` (shown and checked by argparse) and ``required``; a
    ``list[str]`` field is a flag given once per value.

    Args:
        parser: The (sub)command's parser.
        klass: The options dataclass.
        title: The group heading in ``--help`` (default: from the class name).
        skip: Fields that get no flag (e.g. positional arguments).
        defaults: Fill unset flags with the field defaults. Without it (``texttune train``) an unset flag
            is absent from the namespace, so a ``--config`` file can fill it.
    """
    heading = title or klass.__name__.removesuffix("Config").removesuffix("Options").lower() + " options"
    group = parser.add_argument_group(heading)
    skipped = set(skip)
    for f in dataclasses.fields(klass):
        if f.name in skipped:
            continue
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        default = f.default if f.default is not dataclasses.MISSING else None
        unset = default if defaults else argparse.SUPPRESS
        kind = field_kind(f)
        if kind == "bool":
            action = argparse.BooleanOptionalAction if f.default is True else "store_true"
            group.add_argument(flag(f.name), action=action, default=unset, help=help_text)
            continue
        extra: dict[str, Any] = {"metavar": f.name.upper()}
        if kind == "list":
            extra["action"] = "append"
        else:
            extra["type"] = {"int": int, "float": float}.get(kind, str)
        if "choices" in f.metadata:
            extra.update(choices=f.metadata["choices"], metavar="{" + ",".join(f.metadata["choices"]) + "}")
        if f.metadata.get("required"):
            extra["required"] = True
        suffix = f" (default: {default})" if default not in (None, "", False) else ""
        group.add_argument(flag(f.name), default=unset, help=help_text + suffix, **extra)


def given(args: argparse.Namespace, klass) -> dict[str, Any]:
    """The fields of ``klass`` present in a parsed namespace."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(klass) if hasattr(args, f.name)}


def from_args(args: argparse.Namespace, klass):
    """Build ``klass`` from a parsed namespace (its ``__post_init__`` validates)."""
    return klass(**given(args, klass))


def coerce(f: dataclasses.Field, value: Any, source: str) -> Any:
    """Check a YAML value against the field's declared type; YAML gives ints, floats and bools natively."""
    key = f.name
    if value is None:
        if "None" in str(f.type):
            return None
        raise ConfigError(f"{source} key {key!r} must not be empty")
    kind = field_kind(f)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source} key {key!r} must be true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source} key {key!r} must be a whole number, got {value!r}")
    if kind == "float":
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 2e-5 (no dot) as a string
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{source} key {key!r} must be a number, got {value!r}")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{source} key {key!r} must be a string, got {value!r}")
