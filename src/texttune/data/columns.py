"""Which source columns hold the text, the second text of a pair, and the label.

The ``--text-column`` / ``--text-pair-column`` / ``--label-column`` flags win; without them, columns are
detected by name (case-insensitively) from the lists below.

Example:
    >>> resolve_text_columns(["id", "Review", "label"], None, None)
    ('Review', None)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import DataConfig
from ..errors import DataError

logger = logging.getLogger(__name__)

#: Column names recognised as the text, in lower case. Exactly one may be present.
TEXT_COLUMN_NAMES = (
    "text",
    "texts",
    "sentence",
    "review",
    "review_text",
    "content",
    "body",
    "document",
    "doc",
    "comment",
    "message",
    "msg",
    "tweet",
    "post",
    "sms",
    "utterance",
    "question",
    "query",
    "passage",
    "paragraph",
    "abstract",
    "description",
)
#: Sentence-pair layouts (first text, second text), tried in this order when no --text-column is set.
PAIR_COLUMN_NAMES = (
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
    ("text_a", "text_b"),
    ("text1", "text2"),
    ("sentence_a", "sentence_b"),
    ("question", "sentence"),
    ("question", "passage"),
    ("query", "passage"),
    ("query", "document"),
)
#: Column names recognised as the label, in lower case, by priority (the first present one is used).
LABEL_COLUMN_NAMES = (
    "label",
    "labels",
    "category",
    "categories",
    "class",
    "target",
    "sentiment",
    "topic",
    "topics",
    "intent",
    "emotion",
    "emotions",
    "tag",
    "tags",
    "polarity",
    "stance",
    "gold_label",
    "y",
    "score",
    "rating",
)


def _find(columns: list[str], name: str) -> str | None:
    """The column called ``name``: exact match first, else the only case-insensitive match."""
    if name in columns:
        return name
    matches = [c for c in columns if c.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _listing(columns: Iterable[str]) -> str:
    return ", ".join(sorted(columns)) or "(none)"


def _require(columns: list[str], name: str, flag: str, where: str) -> str:
    found = _find(columns, name)
    if found is None:
        raise DataError(f"{flag} {name!r} is not a column of {where}; its columns are: {_listing(columns)}")
    return found


def _detect_text(columns: list[str], exclude: set[str | None], where: str) -> str:
    matches = [c for c in columns if c.lower() in TEXT_COLUMN_NAMES and c not in exclude]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DataError(
            f"no text column found in {where} (looked for {', '.join(TEXT_COLUMN_NAMES[:8])}, ...); its columns "
            f"are: {_listing(columns)}; set --text-column"
        )
    raise DataError(
        f"several possible text columns in {where}: {', '.join(matches)}; set --text-column to one of them "
        f"(its columns are: {_listing(columns)})"
    )


def _detect_pair(columns: list[str]) -> tuple[str, str] | None:
    for first, second in PAIR_COLUMN_NAMES:
        found_first, found_second = _find(columns, first), _find(columns, second)
        if found_first and found_second:
            return found_first, found_second
    return None


def resolve_text_columns(
    columns: list[str], text_column: str | None, text_pair_column: str | None, *, where: str = "the data"
) -> tuple[str, str | None]:
    """Pick the text column (and the second text of a pair) among ``columns``.

    Given names must exist (matched exactly, else case-insensitively). Without ``text_column``, a
    sentence-pair layout (``sentence1``/``sentence2``, ``premise``/``hypothesis``, ...; see
    ``PAIR_COLUMN_NAMES``) is used when present, else the one column named like a text (``text``,
    ``sentence``, ``review``, ...; see ``TEXT_COLUMN_NAMES``).

    Args:
        columns: The source's column names.
        text_column: ``--text-column``, or None to detect.
        text_pair_column: ``--text-pair-column``, or None (detected only together with the text column).
        where: The source, for error messages.

    Returns:
        (text column, pair column or None).

    Raises:
        DataError: A given column is missing, or no single text column can be detected; the message
            lists the columns.

    Example:
        >>> resolve_text_columns(["id", "Review", "label"], None, None)
        ('Review', None)
        >>> resolve_text_columns(["premise", "hypothesis", "label"], None, None)
        ('premise', 'hypothesis')
    """
    columns = [str(c) for c in columns]
    if text_column is not None:
        text = _require(columns, text_column, "--text-column", where)
        pair = _require(columns, text_pair_column, "--text-pair-column", where) if text_pair_column else None
    elif text_pair_column is not None:
        pair = _require(columns, text_pair_column, "--text-pair-column", where)
        partners = [
            first for first, second in PAIR_COLUMN_NAMES if second == pair.lower() and _find(columns, first)
        ]
        text = _find(columns, partners[0]) if partners else None
        text = text or _detect_text(columns, {pair}, where)
    else:
        layout = _detect_pair(columns)
        if layout is not None:
            logger.info("%s: using the text pair columns %r and %r", where, *layout)
            return layout
        text, pair = _detect_text(columns, set(), where), None
    if pair == text:
        raise DataError(f"--text-pair-column {pair!r} must differ from the text column {text!r}")
    return text, pair


def _resolve_label_column(
    columns: list[str], label_column: str | None, exclude: set[str | None], where: str
) -> str:
    if label_column is not None:
        return _require(columns, label_column, "--label-column", where)
    candidates = [c for name in LABEL_COLUMN_NAMES for c in columns if c.lower() == name and c not in exclude]
    if not candidates:
        raise DataError(
            f"no label column found in {where} (looked for {', '.join(LABEL_COLUMN_NAMES[:8])}, ...); its columns "
            f"are: {_listing(columns)}; set --label-column"
        )
    if len(candidates) > 1:
        logger.info(
            "%s: using %r as the label column (also label-like: %s; set --label-column to choose)",
            where,
            candidates[0],
            ", ".join(candidates[1:]),
        )
    return candidates[0]


@dataclass
class Columns:
    """The source columns used: the text, the second text of a pair (or None), the label."""

    text: str
    pair: str | None
    label: str


def resolve_columns(columns: list[str], cfg: DataConfig, preferred: Columns | None, where: str) -> Columns:
    """Columns of one source: the --*-column flags, else the preferred (training) names, else detected.

    With ``preferred``, whether texts come in pairs is fixed by it.
    """
    if preferred is None:
        text, pair = resolve_text_columns(columns, cfg.text_column, cfg.text_pair_column, where=where)
        return Columns(text, pair, _resolve_label_column(columns, cfg.label_column, {text, pair}, where))

    def pick(flag_value: str | None, name: str | None) -> str | None:
        if flag_value is not None:
            return flag_value
        return _find(columns, name) if name is not None else None

    text = pick(cfg.text_column, preferred.text)
    pair = pick(cfg.text_pair_column, preferred.pair)
    if preferred.pair is None and pair is None:
        text = text or _detect_text(columns, set(), where)
    elif pair is None:
        layout = None if text is not None else _detect_pair(columns)
        if layout is None:
            raise DataError(
                f"the text pairs' second column {preferred.pair!r} is not a column of {where}; its columns are: "
                f"{_listing(columns)}; set --text-pair-column"
            )
        text, pair = layout
    text, pair = resolve_text_columns(columns, text, pair, where=where)
    label = _resolve_label_column(columns, pick(cfg.label_column, preferred.label), {text, pair}, where)
    return Columns(text, pair, label)
