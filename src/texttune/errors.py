"""User-facing errors. Each message names what was wrong and the flag or fix."""

from __future__ import annotations


class TexttuneError(Exception):
    """Base class for errors caused by user input; the CLI prints them on one line and exits 2."""


class ConfigError(TexttuneError):
    """An invalid option, option combination or config file."""


class DataError(TexttuneError):
    """A data source that cannot be read or does not hold what the run needs."""


class ModelError(TexttuneError):
    """A model path or run folder that cannot be loaded."""


class AccuracyError(TexttuneError):
    """A model that would lose more accuracy than allowed (an int8 export beyond ``--max-accuracy-drop``)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line errors.

    Example:
        >>> first_line(ValueError("bad value\\ndetails")), first_line(KeyError())
        ('bad value', 'KeyError')
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
