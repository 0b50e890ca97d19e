"""Audit labelled data: likely label errors, duplicates, conflicts, leakage between splits, outliers, balance.

:func:`run_audit` is a short sequence of steps:

1. read ``--data`` (and ``--validation`` / ``--test``) as training would, each row keeping its position in
   its file;
2. embed every text once with the frozen base model (its own pooling, as ``--strategy freeze`` caches it);
3. out-of-fold class probabilities for every row: k-fold cross-validation of a logistic regression on the
   embeddings (scikit-learn), or with ``--strategy full`` k fine-tuned runs (slower, stronger);
4. findings, each with a score in [0, 1] (higher is worse): ``label`` (cleanlab's confident learning:
   ``find_label_issues``, ranked by ``get_label_quality_scores``, with the suggested label), ``duplicate``
   (same normalised text, or embeddings closer than ``--near-duplicate``), ``conflict`` (duplicates whose
   labels disagree), ``leak`` (training rows repeated in the validation/test data), ``outlier`` (empty,
   truncated or very short texts);
5. :func:`write_audit` writes ``issues.csv``, ``audit.json`` and ``audit.html``; :func:`clean_copy` makes
   the ``--fix`` copy of the input (the input itself is never changed).

Example:
    >>> from texttune.config import AuditConfig, DataConfig
    >>> result = run_audit(DataConfig(data="sms_spam"), AuditConfig(output="audit"))  # doctest: +SKIP
    >>> result.counts["label"]  # doctest: +SKIP
    41
"""

from __future__ import annotations

import html
import logging
import os
import re
import tempfile
import time
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .artifacts import AtomicDir, write_json
from .config import AuditConfig, DataConfig
from .data.labels import is_missing
from .data.prepare import ROW, LabelledData, read_labelled
from .errors import ConfigError, DataError
from .tasks import LABELS, MULTI_LABEL, REGRESSION, SINGLE_LABEL, TEXT, TEXT_PAIR

logger = logging.getLogger(__name__)

LABEL, CONFLICT, LEAK, DUPLICATE, OUTLIER = "label", "conflict", "leak", "duplicate", "outlier"
#: Finding kinds, in the order files and summaries list them.
KINDS = (LABEL, CONFLICT, LEAK, DUPLICATE, OUTLIER)
ISSUES_FILE, AUDIT_JSON, AUDIT_HTML = "issues.csv", "audit.json", "audit.html"
#: Texts with fewer tokens than this (special tokens aside) are reported as very short.
SHORT_TOKENS = 3
#: Findings of each kind listed in ``audit.json`` (``issues.csv`` has them all).
TOP = 10
_WHAT = {
    LABEL: "likely wrong labels (confident learning on out-of-fold probabilities)",
    CONFLICT: "duplicates whose labels disagree",
    LEAK: "training rows repeated in the validation or test data",
    DUPLICATE: "repeated rows (same normalised text, or near-identical embeddings)",
    OUTLIER: "empty, truncated or very short texts",
}
_COLUMNS = ("row", "issue", "score", TEXT, TEXT_PAIR, "given_label", "suggested_label", "detail")
_MULTI_LABEL_JOIN = "|"


@dataclass
class AuditResult:
    """What an audit found. ``findings`` has the columns of ``issues.csv``, worst first within each kind;
    ``label_quality`` holds cleanlab's label quality score of every audited row (in ``rows`` order)."""

    source: str
    task: str
    label_names: list[str]
    rows: pd.DataFrame
    findings: pd.DataFrame
    summary: dict[str, Any]
    label_quality: np.ndarray | None = field(default=None, repr=False)
    labelled: LabelledData | None = field(default=None, repr=False)

    @property
    def counts(self) -> dict[str, int]:
        return self.summary["counts"]


def run_audit(data: DataConfig, options: AuditConfig) -> AuditResult:
    """Audit ``--data``; see the module docstring for the steps.

    Raises:
        DataError / ConfigError: As training does for bad data; ``--fix relabel`` on data without classes.
    """
    started = time.perf_counter()
    labelled = read_labelled(data)
    check_fix(options, labelled.task)
    rows = labelled.frames["train"].reset_index(drop=True)
    others = {name: frame for name, frame in labelled.frames.items() if name != "train"}
    encoder = _Encoder(options, labelled)
    features = {name: encoder.features(frame) for name, frame in {"train": rows, **others}.items()}
    probabilities = _out_of_fold(rows, features["train"], labelled, options)
    given = [_label_text(value, labelled) for value in rows[LABELS]]
    suggested = _suggestions(probabilities, labelled) if probabilities is not None else [None] * len(rows)
    quality, label_findings = _label_findings(rows, probabilities, labelled)
    duplicates, conflicts = _duplicate_findings(rows, features["train"], given, options.near_duplicate)
    findings = [
        label_findings,
        conflicts,
        _leak_findings(rows, features, others, options.near_duplicate),
        duplicates,
        _outlier_findings(rows, labelled, encoder),
    ]
    table = _findings_table(findings, rows, given, suggested)
    summary = _summary(labelled, options, rows, table, probabilities, others, time.perf_counter() - started)
    logger.info("audit of %d rows done in %.1fs", len(rows), summary["seconds"])
    return AuditResult(
        data.data or "", labelled.task, labelled.label_names, rows, table, summary, quality, labelled
    )


def check_fix(options: AuditConfig, task: str) -> None:
    """``--fix relabel`` needs classes to move a row to; multi-label sets are not relabelled either."""
    if options.fix == "relabel" and task != SINGLE_LABEL:
        raise ConfigError(f"--fix relabel needs single-label data, this is {task}; use --fix drop")


# --------------------------------------------------------------------------------------------------
# Embeddings and out-of-fold probabilities
# --------------------------------------------------------------------------------------------------


class _Encoder:
    """The frozen base model: pooled embeddings and token counts of the texts of a frame."""

    def __init__(self, options: AuditConfig, labelled: LabelledData):
        from .modeling import build_model, resolve_model_path, resolve_pooling
        from .strategies import get_strategy
        from .tokenization import load_tokenizer, resolve_max_length

        path = resolve_model_path(options.model)
        self.tokenizer = load_tokenizer(path)
        self.max_length = resolve_max_length(self.tokenizer, options.max_length)
        pooling = resolve_pooling("auto", path, get_strategy("freeze"))
        self.model = build_model(
            path,
            task=labelled.task,
            label_names=labelled.label_names,
            tokenizer=self.tokenizer,
            pooling=pooling,
        )
        self.batch_size = options.batch_size

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """L2-normalised pooled embeddings, one row per text (pairs embedded together)."""
        from .heads import text_features

        started = time.perf_counter()
        pairs = frame[TEXT_PAIR].tolist() if TEXT_PAIR in frame else None
        vectors = text_features(
            self.model, self.tokenizer, frame[TEXT].tolist(), pairs, self.max_length, self.batch_size
        ).numpy()
        logger.info("audit: %d texts embedded in %.1fs", len(frame), time.perf_counter() - started)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def token_counts(self, frame: pd.DataFrame) -> np.ndarray:
        """Tokens per row without truncation, special tokens left out (both texts of a pair)."""
        from transformers.utils import logging as transformers_logging

        level = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # "longer than the maximum": counting them is the point
        try:
            counts = np.zeros(len(frame), dtype=np.int64)
            for column in (c for c in (TEXT, TEXT_PAIR) if c in frame):
                ids = self.tokenizer(frame[column].tolist(), add_special_tokens=False)["input_ids"]
                counts += np.array([len(row) for row in ids], dtype=np.int64)
            return counts
        finally:
            transformers_logging.set_verbosity(level)


def _out_of_fold(
    rows: pd.DataFrame, features: np.ndarray, labelled: LabelledData, options: AuditConfig
) -> np.ndarray | None:
    """Each row's class probabilities from a model that never saw it; None for regression (no classes)."""
    if labelled.task == REGRESSION:
        logger.info("audit: regression data have no classes; label findings are skipped")
        return None
    folds = _folds(rows, labelled.task, options)
    if options.strategy == "full":
        return _fine_tuned_out_of_fold(rows, folds, labelled, options)
    return _linear_out_of_fold(
        features, _targets(rows, labelled.task), folds, len(labelled.label_names), options
    )


def _targets(rows: pd.DataFrame, task: str) -> np.ndarray:
    values = rows[LABELS].tolist()
    return np.array(values, dtype=np.float32 if task == MULTI_LABEL else np.int64)


def _folds(rows: pd.DataFrame, task: str, options: AuditConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds for single-label data (shuffled, seeded), plain shuffled folds otherwise."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(rows) < 2 * options.folds:
        raise DataError(
            f"--data has {len(rows)} usable rows; an audit with --folds {options.folds} needs at least "
            f"{2 * options.folds} (pass fewer --folds)"
        )
    if task == SINGLE_LABEL:
        labels = rows[LABELS].to_numpy()
        smallest = int(np.bincount(labels).min())
        splitter = StratifiedKFold(options.folds, shuffle=True, random_state=options.seed)
        if smallest < options.folds:  # sklearn warns; every class still trains in most folds
            logger.warning("audit: a class has only %d rows, fewer than --folds %d", smallest, options.folds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return list(splitter.split(np.zeros(len(labels)), labels))
    return list(KFold(options.folds, shuffle=True, random_state=options.seed).split(np.zeros(len(rows))))


def _linear_out_of_fold(
    features: np.ndarray, targets: np.ndarray, folds, classes: int, options: AuditConfig
) -> np.ndarray:
    """Logistic regression per fold on the frozen embeddings (one per label for multi-label data)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    started = time.perf_counter()
    probabilities = np.zeros((len(features), classes))
    for train, held_out in folds:
        model = LogisticRegression(C=options.regularization, max_iter=2000)
        if targets.ndim == 2:
            model = OneVsRestClassifier(model)
            model.fit(features[train], targets[train].astype(np.int64))
            probabilities[held_out] = model.predict_proba(features[held_out])
            continue
        model.fit(features[train], targets[train])
        probabilities[np.ix_(held_out, model.classes_)] = model.predict_proba(features[held_out])
    logger.info("audit: %d-fold logistic regression in %.1fs", len(folds), time.perf_counter() - started)
    return probabilities


def _fine_tuned_out_of_fold(
    rows: pd.DataFrame, folds, labelled: LabelledData, options: AuditConfig
) -> np.ndarray:
    """``--strategy full``: fine-tune the model on each k-1 folds and predict the held-out fold."""
    from .config import ModelConfig, RunConfig, StrategyConfig, TrainConfig
    from .inference import Predictor
    from .training import train

    probabilities = np.zeros((len(rows), len(labelled.label_names)))
    frame = _named_labels(rows, labelled)
    with tempfile.TemporaryDirectory(prefix="texttune-audit-") as scratch:
        for number, (train_rows, held_out) in enumerate(folds, start=1):
            logger.info("audit: fine-tuning fold %d of %d", number, len(folds))
            data_file = Path(scratch) / f"fold{number}.parquet"
            frame.iloc[train_rows].to_parquet(data_file, index=False)
            config = RunConfig(
                data=DataConfig(data=str(data_file), task=labelled.task, data_seed=options.seed),
                model=ModelConfig(model=options.model),
                train=TrainConfig(
                    output=str(Path(scratch) / f"run{number}"), seed=options.seed, progress=False
                ),
                strategy=StrategyConfig(strategy="full"),
            )
            train(config)
            predictor = Predictor.load(config.train.output, batch_size=options.batch_size)
            part = rows.iloc[held_out]
            pairs = part[TEXT_PAIR].tolist() if TEXT_PAIR in part else None
            logits = predictor.logits(part[TEXT].tolist(), pairs)
            # A class missing from a fold's training rows is missing from its run: place columns by name.
            columns = [labelled.label_names.index(name) for name in predictor.label_names]
            probabilities[np.ix_(held_out, columns)] = predictor.probabilities(logits)
    return probabilities


def _named_labels(rows: pd.DataFrame, labelled: LabelledData) -> pd.DataFrame:
    """The rows with labels as class names (lists of names for multi-label), as a training file has them."""
    names = labelled.label_names
    frame = rows[[c for c in (TEXT, TEXT_PAIR) if c in rows]].copy()
    if labelled.task == MULTI_LABEL:
        frame["label"] = [[names[i] for i, on in enumerate(v) if on > 0.5] for v in rows[LABELS]]
    else:
        frame["label"] = [names[int(v)] for v in rows[LABELS]]
    return frame


# --------------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------------


def _finding(row: int, issue: str, score: float, detail: str = "") -> dict[str, Any]:
    return {"index": row, "issue": issue, "score": round(float(score), 4), "detail": detail}


def _label_text(value: Any, labelled: LabelledData) -> str:
    if labelled.task == REGRESSION:
        return f"{float(value):g}"
    if labelled.task == MULTI_LABEL:
        return _MULTI_LABEL_JOIN.join(n for n, on in zip(labelled.label_names, value) if on > 0.5)
    return labelled.label_names[int(value)]


def _suggestions(probabilities: np.ndarray, labelled: LabelledData) -> list[str]:
    """The out-of-fold prediction of each row: the likeliest class, or the labels above 0.5."""
    if labelled.task == MULTI_LABEL:
        return [_label_text(p > 0.5, labelled) for p in probabilities]
    return [labelled.label_names[i] for i in probabilities.argmax(axis=1)]


def _label_findings(
    rows: pd.DataFrame, probabilities: np.ndarray | None, labelled: LabelledData
) -> tuple[np.ndarray | None, list[dict[str, Any]]]:
    """cleanlab's label issues, worst (lowest label quality) first; score = 1 - label quality."""
    if probabilities is None:
        return None, []
    from cleanlab.filter import find_label_issues

    if labelled.task == MULTI_LABEL:
        from cleanlab.multilabel_classification.rank import get_label_quality_scores

        labels: Any = [[i for i, on in enumerate(v) if on > 0.5] for v in rows[LABELS]]
        quality = get_label_quality_scores(labels, probabilities)
        flagged = find_label_issues(labels, probabilities, multi_label=True)
    else:
        from cleanlab.rank import get_label_quality_scores

        labels = rows[LABELS].to_numpy()
        quality = get_label_quality_scores(labels, probabilities)
        flagged = find_label_issues(labels, probabilities)
    rows_flagged = np.flatnonzero(flagged)
    detail = "out-of-fold label quality {:.3f} (cleanlab)"
    return quality, [_finding(i, LABEL, 1 - quality[i], detail.format(quality[i])) for i in rows_flagged]


def normalise(text: str) -> str:
    """Text as duplicates are compared: Unicode-normalised (NFKC), case-folded, whitespace collapsed.

    Example:
        >>> normalise("  Great\\u00a0FILM!\\n") == normalise("great film!")
        True
    """
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _keys(frame: pd.DataFrame) -> list[str]:
    texts = [normalise(t) for t in frame[TEXT]]
    if TEXT_PAIR in frame:
        texts = [f"{a}\x1f{normalise(b)}" for a, b in zip(texts, frame[TEXT_PAIR])]
    return texts


def _nearest(queries: np.ndarray, keys: np.ndarray, *, earlier_only: bool, chunk: int = 2048):
    """For each query row, the most similar key row (cosine of normalised vectors) and the similarity.

    With ``earlier_only`` (queries and keys the same rows) only keys before the query count; rows with no
    such key get index -1.
    """
    best = np.full(len(queries), -1, dtype=np.int64)
    similarity = np.full(len(queries), -np.inf, dtype=np.float32)
    for start in range(0, len(queries), chunk):
        block = queries[start : start + chunk] @ keys.T
        if earlier_only:
            rows = np.arange(start, start + len(block))[:, None]
            block[np.arange(block.shape[1])[None, :] >= rows] = -np.inf
        if block.shape[1]:
            best[start : start + len(block)] = block.argmax(axis=1)
            similarity[start : start + len(block)] = block.max(axis=1)
    best[~np.isfinite(similarity)] = -1
    return best, similarity


def _near_matches(queries: np.ndarray, keys: np.ndarray, threshold: float, *, earlier_only: bool):
    """Each query's most similar key where the cosine reaches ``threshold`` (else -1), and the cosine.

    A threshold of 1 turns the embedding comparison off: only exact repeats of the text count then.
    """
    if threshold >= 1.0 or not len(keys):
        return np.full(len(queries), -1, dtype=np.int64), np.zeros(len(queries), dtype=np.float32)
    best, similarity = _nearest(queries, keys, earlier_only=earlier_only)
    best[similarity < threshold] = -1
    return best, similarity


def _duplicate_findings(
    rows: pd.DataFrame, features: np.ndarray, given: list[str], threshold: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows repeating an earlier row (same normalised text, else cosine >= ``threshold``), and the
    duplicate pairs whose labels disagree (both rows listed)."""
    first: dict[str, int] = {}
    near, similarity = _near_matches(features, features, threshold, earlier_only=True)
    duplicates, conflicts = [], {}
    for index, key in enumerate(_keys(rows)):
        other = first.setdefault(key, index)
        if other != index:
            score, how = 1.0, "same text as"
        elif near[index] >= 0:
            other, score = int(near[index]), float(similarity[index])
            how = f"cosine {score:.3f} to"
        else:
            continue
        duplicates.append(_finding(index, DUPLICATE, score, f"{how} row {_row(rows, other)}"))
        if given[index] != given[other]:
            for a, b in ((index, other), (other, index)):
                detail = f"{how} row {_row(rows, b)} labelled {given[b]!r}"
                conflicts.setdefault(a, _finding(a, CONFLICT, score, detail))
    return duplicates, list(conflicts.values())


def _row(frame: pd.DataFrame, index: int) -> int:
    """A row's position in its source file."""
    return int(frame[ROW].iloc[index])


def _leak_findings(
    rows: pd.DataFrame, features: dict[str, np.ndarray], others: dict[str, pd.DataFrame], threshold: float
) -> list[dict[str, Any]]:
    """Training rows whose text is in the validation/test data (same normalised text, or cosine >=
    ``threshold``), with the row they match."""
    found: dict[int, dict[str, Any]] = {}
    train_keys = _keys(rows)
    for name, frame in others.items():
        positions = {key: i for i, key in reversed(list(enumerate(_keys(frame))))}
        near, similarity = _near_matches(features["train"], features[name], threshold, earlier_only=False)
        for index, key in enumerate(train_keys):
            if index in found:
                continue
            if key in positions:
                detail = f"same text as {name} row {_row(frame, positions[key])}"
                found[index] = _finding(index, LEAK, 1.0, detail)
            elif near[index] >= 0:
                detail = f"cosine {similarity[index]:.3f} to {name} row {_row(frame, int(near[index]))}"
                found[index] = _finding(index, LEAK, similarity[index], detail)
    return list(found.values())


def _outlier_findings(rows: pd.DataFrame, labelled: LabelledData, encoder: _Encoder) -> list[dict[str, Any]]:
    """Rows training skips (empty text, missing label), texts longer than the model reads, very short ones."""
    found = _skipped_rows(labelled)
    tokens = encoder.token_counts(rows)
    limit = encoder.max_length
    for index, count in enumerate(tokens):
        if count > limit:
            detail = f"{count} tokens, truncated to {limit} (see --long-text)"
            found.append(_finding(index, OUTLIER, 1 - limit / count, detail))
        elif count < SHORT_TOKENS:
            found.append(_finding(index, OUTLIER, 1 - count / SHORT_TOKENS, f"very short: {count} tokens"))
    return found


def _skipped_rows(labelled: LabelledData) -> list[dict[str, Any]]:
    """Findings for the rows of the file that training drops; their index is -1 - the file row."""
    kept = set(labelled.frames["train"][ROW].tolist())
    columns = labelled.columns
    skipped = [i for i in range(len(labelled.source)) if i not in kept]
    if not skipped:
        return []
    source = labelled.source.select(skipped).to_pandas()
    found = []
    for row, (_, values) in zip(skipped, source.iterrows()):
        empty = is_missing(values[columns.text]) or (
            columns.pair is not None and is_missing(values[columns.pair])
        )
        what = "empty or missing text" if empty else "missing label"
        found.append(_finding(-1 - row, OUTLIER, 1.0, f"{what}: training skips this row"))
    return found


def _findings_table(
    findings: list[list[dict[str, Any]]], rows: pd.DataFrame, given: list[str], suggested: list[Any]
) -> pd.DataFrame:
    """All findings as ``issues.csv`` rows, kinds in :data:`KINDS` order, worst first within a kind."""
    records = []
    for kind_findings in findings:
        for f in sorted(kind_findings, key=lambda f: -f["score"]):
            index = f["index"]
            skipped = index < 0  # a row training drops: not in ``rows``
            record = {
                "row": -1 - index if skipped else _row(rows, index),
                "issue": f["issue"],
                "score": f["score"],
                TEXT: "" if skipped else rows[TEXT].iloc[index],
                "given_label": "" if skipped else given[index],
                "suggested_label": "" if skipped or suggested[index] is None else suggested[index],
                "detail": f["detail"],
            }
            if TEXT_PAIR in rows:
                record[TEXT_PAIR] = "" if skipped else rows[TEXT_PAIR].iloc[index]
            records.append(record)
    columns = [c for c in _COLUMNS if c != TEXT_PAIR or TEXT_PAIR in rows]
    return pd.DataFrame(records, columns=columns)


def _summary(
    labelled: LabelledData,
    options: AuditConfig,
    rows: pd.DataFrame,
    table: pd.DataFrame,
    probabilities: np.ndarray | None,
    others: dict[str, pd.DataFrame],
    seconds: float,
) -> dict[str, Any]:
    """``audit.json``: what was audited and how, the count of each kind, the worst of each, class balance."""
    counts = {kind: int((table["issue"] == kind).sum()) for kind in KINDS}
    summary: dict[str, Any] = {
        "data": labelled.where,
        "rows": len(labelled.source),
        "audited_rows": len(rows),
        "task": labelled.task,
        "model": options.model,
        "strategy": options.strategy,
        "folds": options.folds,
        "near_duplicate": options.near_duplicate,
        "compared_with": sorted(others),
        "counts": counts,
        "class_balance": _class_balance(rows, labelled),
        "seconds": round(seconds, 1),
    }
    if probabilities is not None and labelled.task == SINGLE_LABEL:
        summary["out_of_fold_accuracy"] = round(float((probabilities.argmax(1) == rows[LABELS]).mean()), 4)
    records = table.replace({np.nan: None}).to_dict("records")
    summary["worst"] = {kind: [r for r in records if r["issue"] == kind][:TOP] for kind in KINDS}
    return summary


def _class_balance(rows: pd.DataFrame, labelled: LabelledData) -> dict[str, Any]:
    """Rows per class (multi-label: per label) and the ratio of the largest count to the smallest."""
    if labelled.task == REGRESSION:
        values = rows[LABELS].astype(float)
        return {
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": round(float(values.mean()), 4),
        }
    names = labelled.label_names
    if labelled.task == MULTI_LABEL:
        counts = np.array(rows[LABELS].tolist()).sum(axis=0).astype(int)
    else:
        counts = np.bincount(rows[LABELS].to_numpy(), minlength=len(names))
    smallest = int(counts.min())
    return {
        "counts": {name: int(c) for name, c in zip(names, counts)},
        "imbalance_ratio": round(float(counts.max() / smallest), 2) if smallest else None,
    }


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def write_audit(folder: str | Path, result: AuditResult, overwrite: bool = False) -> Path:
    """Write ``issues.csv``, ``audit.json`` and ``audit.html`` into ``folder``, which appears only complete."""
    with AtomicDir(folder, overwrite) as work:
        result.findings.to_csv(work / ISSUES_FILE, index=False)
        write_json(work / AUDIT_JSON, result.summary)
        (work / AUDIT_HTML).write_text(render_html(result.summary, result.findings), encoding="utf-8")
    return Path(folder)


def audit(data: DataConfig, options: AuditConfig) -> AuditResult:
    """``texttune audit``: check the outputs, run the audit, write its folder and the ``--fix`` copy."""
    from .artifacts import check_output_dir
    from .inference import write_chunks

    if not options.output:
        raise ConfigError("give the folder for the audit's files with --output DIR")
    check_output_dir(options.output, options.overwrite)
    if options.output_data:
        check_output_data(options, data.data)
    result = run_audit(data, options)
    if options.fix:
        frame, fixed = clean_copy(result, options.fix)
        result.summary["fix"] = {**fixed, "output_data": options.output_data}
    write_audit(options.output, result, options.overwrite)
    if options.fix:
        write_chunks([frame], options.output_data)
    return result


def clean_copy(result: AuditResult, fix: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The input's rows and columns without the rows ``--fix`` removes, and with relabelled labels.

    ``drop`` removes rows with a ``label`` finding, repeats (``duplicate``: the first of each group stays),
    training rows that ``leak`` into validation/test, and the rows of a ``conflict`` whose label differs
    from the out-of-fold suggestion. ``relabel`` gives ``label`` and such ``conflict`` rows the suggested
    label instead of removing them. Rows training skips stay as they are.
    """
    assert result.labelled is not None
    findings = result.findings
    disagree = findings["given_label"] != findings["suggested_label"]
    fixable = (findings["issue"] == LABEL) | ((findings["issue"] == CONFLICT) & disagree)
    removed = set(findings.loc[findings["issue"].isin((DUPLICATE, LEAK)), "row"])
    relabel = dict(zip(findings.loc[fixable, "row"], findings.loc[fixable, "suggested_label"]))
    if fix == "drop":
        removed |= set(relabel)
        relabel = {}
    relabel = {row: label for row, label in relabel.items() if row not in removed}
    frame = result.labelled.source.to_pandas()
    label_column = result.labelled.columns.label
    if relabel:
        frame[label_column] = frame[label_column].astype(object)
        by_name = _raw_label_values(frame[label_column], result)
        for row, label in relabel.items():
            frame.at[row, label_column] = by_name[label]
    kept = frame.drop(index=sorted(removed)).reset_index(drop=True)
    return kept, {"fix": fix, "rows": len(kept), "dropped": len(removed), "relabelled": len(relabel)}


def _raw_label_values(column: pd.Series, result: AuditResult) -> dict[str, Any]:
    """Class name -> the value the input file uses for it (``1`` for class ``"1"``, ids of a ClassLabel)."""
    by_name: dict[str, Any] = {}
    for row, label in zip(result.rows[ROW], result.rows[LABELS]):
        by_name.setdefault(result.label_names[int(label)], column.iloc[int(row)])
    return by_name


def format_summary(summary: dict[str, Any]) -> str:
    """The terminal summary: what was audited, one line per kind with its worst finding, class balance."""
    lines = [
        f"audited {summary['audited_rows']:,} rows of {summary['data']} with {summary['model']} "
        f"({summary['folds']}-fold, {summary['strategy']}) in {summary['seconds']:.0f}s"
        + (
            f"; out-of-fold accuracy {summary['out_of_fold_accuracy']:.3f}"
            if "out_of_fold_accuracy" in summary
            else ""
        )
    ]
    for kind in KINDS:
        count = summary["counts"][kind]
        line = f"  {kind:<10}{count:>7,}  {_WHAT[kind]}"
        if count:
            worst = summary["worst"][kind][0]
            line += f"; worst: row {worst['row']} ({_describe(worst)})"
        lines.append(line)
    if not summary["compared_with"]:
        lines.append("  (no --validation/--test data: leakage not checked)")
    balance = summary["class_balance"]
    if "counts" in balance:
        total = sum(balance["counts"].values()) or 1
        shares = ", ".join(
            f"{name} {count:,} ({100 * count / total:.1f}%)" for name, count in balance["counts"].items()
        )
        lines.append(f"class balance: {shares}")
        ratio = balance["imbalance_ratio"]
        if ratio is None or ratio >= 5:
            lines.append("  imbalanced: consider `texttune train --class-weights auto`")
    return "\n".join(lines)


def _describe(finding: dict[str, Any]) -> str:
    if finding["issue"] == LABEL:
        return f"given {finding['given_label']!r}, suggested {finding['suggested_label']!r}, score {finding['score']:.3f}"
    return finding["detail"]


def render_html(summary: dict[str, Any], findings: pd.DataFrame, limit: int = 200) -> str:
    """``audit.html``: the summary, then a section per kind with its worst ``limit`` findings."""
    from .report import html_table, page_head, shorten

    parts = [
        page_head(f"texttune audit: {summary['data']}"),
        f"<h1>Data audit: {html.escape(str(summary['data']))}</h1>",
        html_table(
            [
                (k, summary[k])
                for k in ("rows", "audited_rows", "task", "model", "strategy", "folds", "seconds")
            ]
            + [("out-of-fold accuracy", summary.get("out_of_fold_accuracy"))],
            ("", ""),
        ),
        html_table(
            [(kind, summary["counts"][kind], _WHAT[kind]) for kind in KINDS], ("finding", "rows", "what")
        ),
    ]
    balance = summary["class_balance"]
    if "counts" in balance:
        parts += ["<h2>Class balance</h2>", html_table(list(balance["counts"].items()), ("class", "rows"))]
    columns = [c for c in findings.columns if c != "issue"]
    for kind in KINDS:
        part = findings[findings["issue"] == kind]
        parts.append(f"<h2>{kind} ({len(part):,}): {html.escape(_WHAT[kind])}</h2>")
        if part.empty:
            parts.append("<p>none</p>")
            continue
        shown = [
            [shorten(v) if isinstance(v, str) else v for v in r]
            for r in part[columns].head(limit).itertuples(index=False)
        ]
        parts.append(html_table(shown, columns))
        if len(part) > limit:
            parts.append(f"<p>{len(part) - limit:,} more in {ISSUES_FILE}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def check_output_data(options: AuditConfig, data: str | None) -> None:
    """``--output-data``: a supported file type, never the input, not overwritten without ``--overwrite``."""
    from .inference import OUTPUT_FORMATS

    target = Path(options.output_data)
    if target.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"--output-data {target} must end in one of {', '.join(OUTPUT_FORMATS)}")
    if data and Path(data).exists() and os.path.realpath(data) == os.path.realpath(target):
        raise ConfigError("--output-data must not be the input file: the audit never changes its input")
    if target.exists() and not options.overwrite:
        raise ConfigError(f"{target} exists; pass --overwrite to replace it")
