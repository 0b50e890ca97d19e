"""The run report: ``report.html`` (self-contained), its plots as PNG files, and a model card ``README.md``.

Written after training from what the run already holds (training log, metrics, manifest) plus the label
counts of the data, so it needs nothing from the Trainer and can be rebuilt for any run.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .artifacts import (
    CONFUSION_MATRIX_FILE,
    LABEL_DISTRIBUTION_FILE,
    LEARNING_CURVES_FILE,
    MODEL_CARD_FILE,
    PER_CLASS_F1_FILE,
    RELIABILITY_FILE,
    REPORT_HTML_FILE,
    RISK_COVERAGE_FILE,
    TEST_CONFUSION_MATRIX_FILE,
    RunManifest,
    read_analysis,
    read_audit_summary,
)
from .metrics import (
    default_best_metric,
    format_report,
    one_class_advice,
    plot_confusion_matrix,
    scalar_metrics,
)
from .tasks import LABELS, MULTI_LABEL, REGRESSION

if TYPE_CHECKING:  # annotations only: the data package loads pandas and datasets
    from .data import PreparedData

logger = logging.getLogger(__name__)


@dataclass
class ReportInputs:
    """Everything the report shows. ``label_counts`` maps a split name to counts per label (in label order),
    or for regression to the split's values."""

    manifest: RunManifest
    metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None
    log_history: list[dict[str, Any]]
    label_counts: dict[str, list[float]] = field(default_factory=dict)
    data_source: str = ""
    train_seconds: float = 0.0
    #: The error analysis of the test split (else validation), see :mod:`texttune.analysis`.
    analysis: dict[str, Any] | None = None
    #: ``train --audit``: the audit's summary (``audit/audit.json``), see :mod:`texttune.audit`.
    audit: dict[str, Any] | None = None


def label_counts(data: PreparedData) -> dict[str, list[float]]:
    """Per split, how many rows carry each label (regression: the label values themselves)."""
    counts: dict[str, list[float]] = {}
    for name, split in data.splits.items():
        labels = np.asarray(split[LABELS])
        if data.task == REGRESSION:
            counts[name] = labels.astype(float).reshape(-1).tolist()
        elif data.task == MULTI_LABEL:
            counts[name] = labels.sum(axis=0).astype(int).tolist() if len(labels) else []
        else:
            counts[name] = np.bincount(labels.astype(int), minlength=len(data.label_names)).tolist()
    return counts


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(log_history: list[dict[str, Any]], metric: str, path: Path) -> Path | None:
    """Training and validation loss, and the validation ``metric``, against the epoch. None without a log."""
    train = [(row["epoch"], row["loss"]) for row in log_history if "loss" in row and "epoch" in row]
    evals = [row for row in log_history if "eval_loss" in row]
    if not train and not evals:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    loss_ax, metric_ax = axes
    if train:
        loss_ax.plot(*zip(*train), label="training loss", color="tab:blue", alpha=0.8)
    if evals:
        loss_ax.plot(
            [r["epoch"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="validation loss",
            color="tab:orange",
        )  # fmt: skip
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("loss")
    loss_ax.legend()
    key = "eval_" + metric
    points = [(r["epoch"], r[key]) for r in evals if key in r]
    if points:
        metric_ax.plot(*zip(*points), "o-", color="tab:green")
        metric_ax.set_title(f"validation {metric}")
    else:
        metric_ax.set_title("no validation metric logged")
    metric_ax.set_xlabel("epoch")
    metric_ax.set_ylabel(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_per_class_f1(per_class: dict[str, dict[str, float]], path: Path) -> Path:
    """Horizontal bars of each class's F1 (validation)."""
    plt = _pyplot()
    names = list(per_class)
    values = [per_class[n]["f1"] for n in names]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.35 * len(names) + 1.2)))
    ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)), labels=names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (validation)")
    for i, v in enumerate(values):
        ax.text(min(v + 0.01, 0.9), i, f"{v:.3f}", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_label_distribution(
    counts: dict[str, list[float]], label_names: Sequence[str], task: str, path: Path
) -> Path | None:
    """Rows per label and split (grouped bars); a histogram per split for regression."""
    if not counts:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(label_names) + 3), 3.6))
    if task == REGRESSION:
        for split, values in counts.items():
            ax.hist(values, bins=20, alpha=0.5, label=split)
        ax.set_xlabel("label value")
    else:
        width = 0.8 / len(counts)
        x = np.arange(len(label_names))
        for i, (split, values) in enumerate(counts.items()):
            ax.bar(x + i * width - 0.4 + width / 2, values, width, label=split)
        rotate = len(label_names) > 4
        ax.set_xticks(
            x, labels=list(label_names), rotation=30 if rotate else 0, ha="right" if rotate else "center"
        )
    ax.set_ylabel("rows")
    ax.set_title("label distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


#: Accuracies the report suggests a ``--min-confidence`` for.
TARGET_ACCURACIES = (0.9, 0.95, 0.99)


def plot_reliability(splits: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """The reliability diagram of each split: accuracy against mean confidence per bin (the diagonal is
    perfect calibration). None when no split has one."""
    curves = {name: m["reliability"] for name, m in splits.items() if m and m.get("reliability")}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfectly calibrated")
    for name, curve in curves.items():
        ax.plot(curve["confidence"], curve["accuracy"], "o-", label=f"{name} (ECE {splits[name]['ece']:.3f})")
    return _save_curves(
        fig, ax, ("confidence (mean per bin)", "share right", "reliability"), "upper left", path
    )


def plot_risk_coverage(splits: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Accuracy on the answered rows against the share answered, as ``--min-confidence`` rises."""
    curves = {name: m["risk_coverage"] for name, m in splits.items() if m and m.get("risk_coverage")}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for name, curve in curves.items():
        ax.plot(curve["coverage"], curve["accuracy"], label=name)
    titles = (
        "share of rows answered (coverage)",
        "accuracy on the answered rows",
        "abstaining below a confidence",
    )
    return _save_curves(fig, ax, titles, "lower left", path)


def _save_curves(fig, ax, titles: tuple[str, str, str], legend: str, path: Path) -> Path:
    """Label the axes (x, y, title), add the legend, write the PNG and free the figure."""
    ax.set_xlabel(titles[0])
    ax.set_ylabel(titles[1])
    ax.set_title(titles[2])
    ax.legend(loc=legend)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def abstention_rows(validation: dict[str, Any], test: dict[str, Any] | None) -> list[tuple[Any, ...]]:
    """Per target accuracy: the lowest ``--min-confidence`` that reaches it on validation (from the sampled
    risk-coverage curve), and the coverage and accuracy it gives on validation and, when present, test."""
    rows = []
    for target in TARGET_ACCURACIES:
        found = _at_target(validation["risk_coverage"], target)
        if found is None:
            rows.append((target, "not reached", "", "", "", ""))
            continue
        threshold, coverage, accuracy = found
        on_test = _at_threshold((test or {}).get("risk_coverage"), threshold)
        rows.append((target, threshold, coverage, accuracy, *(on_test or ("", ""))))
    return rows


def _at_target(curve: dict[str, list[float]], target: float) -> tuple[float, float, float] | None:
    reached = [i for i, accuracy in enumerate(curve["accuracy"]) if accuracy >= target]
    if not reached:
        return None
    i = reached[-1]
    return curve["threshold"][i], curve["coverage"][i], curve["accuracy"][i]


def _at_threshold(curve: dict[str, list[float]] | None, threshold: float) -> tuple[float, float] | None:
    """Coverage and accuracy of the last sampled point still at or above ``threshold``."""
    if not curve:
        return None
    kept = [i for i, t in enumerate(curve["threshold"]) if t >= threshold]
    return (curve["coverage"][kept[-1]], curve["accuracy"][kept[-1]]) if kept else (0.0, 0.0)


def write_report(run: str | Path, inputs: ReportInputs) -> list[Path]:
    """Write the plots, ``report.html`` and the model card ``README.md`` into ``run``; returns the files.

    Example:
        >>> write_report("runs/demo", ReportInputs(manifest, metrics, None, log_history))  # doctest: +SKIP
    """
    run = Path(run)
    manifest = inputs.manifest
    metric = _best_metric(manifest)
    plots: dict[str, Path] = {}
    curves = plot_learning_curves(inputs.log_history, metric, run / LEARNING_CURVES_FILE)
    if curves:
        plots["Learning curves"] = curves
    if "confusion_matrix" in inputs.metrics:
        confusion = run / CONFUSION_MATRIX_FILE
        if not confusion.is_file():
            plot_confusion_matrix(
                inputs.metrics["confusion_matrix"], manifest.label_names, confusion, "validation"
            )
        plots["Confusion matrix (validation; rows: true, columns: predicted)"] = confusion
    if (inputs.test_metrics or {}).get("confusion_matrix"):
        plots["Confusion matrix (test; rows: true, columns: predicted)"] = plot_confusion_matrix(
            inputs.test_metrics["confusion_matrix"],
            manifest.label_names,
            run / TEST_CONFUSION_MATRIX_FILE,
            "test",
        )
    if inputs.metrics.get("per_class"):
        plots["F1 per class (validation)"] = plot_per_class_f1(
            inputs.metrics["per_class"], run / PER_CLASS_F1_FILE
        )
    distribution = plot_label_distribution(
        inputs.label_counts, manifest.label_names, manifest.task, run / LABEL_DISTRIBUTION_FILE
    )
    if distribution:
        plots["Label distribution"] = distribution
    splits = {"validation": inputs.metrics, "test": inputs.test_metrics}
    for title, plot in (
        ("Reliability of the predicted probabilities", plot_reliability(splits, run / RELIABILITY_FILE)),
        ("Accuracy against coverage when abstaining", plot_risk_coverage(splits, run / RISK_COVERAGE_FILE)),
    ):
        if plot:
            plots[title] = plot
    (run / REPORT_HTML_FILE).write_text(render_html(inputs, plots), encoding="utf-8")
    (run / MODEL_CARD_FILE).write_text(render_model_card(inputs), encoding="utf-8")
    logger.info("report written to %s", run / REPORT_HTML_FILE)
    return [*plots.values(), run / REPORT_HTML_FILE, run / MODEL_CARD_FILE]


def report_for_run(
    run: Path,
    manifest: RunManifest,
    data: PreparedData,
    metrics: dict[str, Any],
    test_metrics: dict[str, Any] | None,
    log_history: list[dict[str, Any]],
    train_seconds: float,
) -> list[Path]:
    """The report of a run that has just been trained on ``data`` (called by :func:`texttune.train`)."""
    inputs = ReportInputs(
        manifest=manifest,
        metrics=metrics,
        test_metrics=test_metrics,
        log_history=log_history,
        label_counts=label_counts(data),
        data_source=(manifest.config.get("data") or {}).get("data") or "",
        train_seconds=train_seconds,
        analysis=read_analysis(run),
        audit=read_audit_summary(run),
    )
    return write_report(run, inputs)


def _best_metric(manifest: RunManifest) -> str:
    chosen = (manifest.config.get("train") or {}).get("metric_for_best_model")
    return chosen.removeprefix("eval_") if chosen else default_best_metric(manifest.task)[0]


def _flat_config(manifest: RunManifest) -> list[tuple[str, Any]]:
    rows = []
    for section in manifest.config.values():
        if isinstance(section, dict):
            rows.extend(section.items())
    return rows


def _hyperparameters(manifest: RunManifest) -> dict[str, Any]:
    train = manifest.config.get("train") or {}
    keys = ("learning_rate", "epochs", "batch_size", "weight_decay", "warmup_ratio", "seed", "class_weights")
    return {k: train[k] for k in keys if k in train}


def html_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _metric_rows(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in scalar_metrics(metrics).items()]


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;"
    "text-align:left}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}"
    "h2{border-bottom:1px solid #ddd;padding-bottom:.2em}code{background:#f3f3f3;padding:0 .2em}"
    ".warning{background:#fff3cd;border:1px solid #e0a800;padding:.6em;font-weight:bold}"
)


def render_html(inputs: ReportInputs, plots: dict[str, Path]) -> str:
    """The report as one HTML page with the plots inlined (base64 PNG): it opens offline, from anywhere."""
    m = inputs.manifest
    parts = [
        page_head(f"texttune run report: {m.base_model}"),
        "<h1>texttune run report</h1>",
        html_table(
            [
                ("task", m.task),
                ("base model", m.base_model),
                ("strategy", m.strategy),
                ("labels", ", ".join(m.label_names) or "(regression)"),
                ("data", inputs.data_source),
                ("max length", f"{m.max_length} tokens ({m.long_text})"),
                ("trainable parameters", f"{m.trainable_parameters:,} of {m.total_parameters:,}"),
                ("training time", f"{inputs.train_seconds:.1f} s"),
                ("created", m.created),
            ],
            ("", ""),
        ),
    ]
    for title, metrics in (("validation", inputs.metrics), ("test", inputs.test_metrics)):
        advice = one_class_advice(metrics or {})
        if advice:
            parts.append(f"<p class='warning'>Warning ({title} split): {html.escape(advice)}.</p>")
    if inputs.metrics:
        parts += [
            "<h2>Validation metrics</h2>",
            html_table(_metric_rows(inputs.metrics), ("metric", "value")),
        ]
        per_class = inputs.metrics.get("per_class")
        if per_class:
            rows = [(n, r["precision"], r["recall"], r["f1"], r["support"]) for n, r in per_class.items()]
            parts.append(html_table(rows, ("class", "precision", "recall", "f1", "support")))
    if inputs.test_metrics:
        parts += ["<h2>Test metrics</h2>", html_table(_metric_rows(inputs.test_metrics), ("metric", "value"))]
    if inputs.metrics.get("risk_coverage"):
        parts += _calibration_section(inputs)
    if inputs.analysis:
        parts += analysis_section(inputs.analysis)
    if inputs.audit:
        parts += audit_section(inputs.audit)
    if m.thresholds:
        parts += [
            "<h2>Decision thresholds (tuned on validation)</h2>",
            html_table(list(zip(m.label_names, m.thresholds)), ("label", "threshold")),
        ]
    parts += _plot_parts(plots)
    parts += ["<h2>Configuration</h2>", html_table(_flat_config(m), ("option", "value"))]
    versions = ", ".join(f"{k} {v}" for k, v in m.versions.items())
    parts.append(f"<p><small>{html.escape(versions)}</small></p></body></html>")
    return "\n".join(parts) + "\n"


def write_evaluation_report(
    folder: str | Path,
    run: str,
    name: str,
    label_names: Sequence[str],
    metrics: dict[str, Any],
    analysis: dict[str, Any] | None,
) -> Path:
    """``texttune evaluate --report DIR``: one page (``DIR/report.html``, plots inlined) on one evaluation.

    Args:
        folder: Where the page and its PNG plots go.
        run: The run evaluated (shown on the page).
        name: The data evaluated.
        label_names: The run's class names, in id order.
        metrics: The evaluation's report (see :meth:`texttune.inference.Predictor.evaluate`).
        analysis: Its error analysis, or None (multi-label, regression).

    Returns:
        The page's path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}
    if metrics.get("confusion_matrix"):
        plots["Confusion matrix (rows: true, columns: predicted)"] = plot_confusion_matrix(
            metrics["confusion_matrix"], list(label_names), folder / CONFUSION_MATRIX_FILE, name
        )
    for title, plot in (
        (
            "Reliability of the predicted probabilities",
            plot_reliability({name: metrics}, folder / RELIABILITY_FILE),
        ),
        (
            "Accuracy against coverage when abstaining",
            plot_risk_coverage({name: metrics}, folder / RISK_COVERAGE_FILE),
        ),
    ):
        if plot:
            plots[title] = plot
    parts = [
        page_head(f"texttune evaluation: {name}"),
        f"<h1>Evaluation of {html.escape(str(run))} on {html.escape(name)}</h1>",
        html_table(_metric_rows(metrics), ("metric", "value")),
    ]
    per_class = metrics.get("per_class")
    if per_class:
        rows = [(n, r["precision"], r["recall"], r["f1"], r["support"]) for n, r in per_class.items()]
        parts.append(html_table(rows, ("class", "precision", "recall", "f1", "support")))
    if analysis:
        parts += analysis_section({"split": name, **analysis})
    parts += _plot_parts(plots)
    page = folder / REPORT_HTML_FILE
    page.write_text("\n".join([*parts, "</body></html>"]) + "\n", encoding="utf-8")
    return page


def page_head(title: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
    )


def _plot_parts(plots: dict[str, Path]) -> list[str]:
    """Each plot under its title, inlined as base64 PNG so the page opens offline."""
    parts = []
    for title, path in plots.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
        )
    return parts


def analysis_section(analysis: dict[str, Any]) -> list[str]:
    """HTML of an error analysis: the most confident mistakes, the most confused pairs, accuracy by length."""
    split = analysis.get("split", "")
    mistakes = [
        (m["row"], shorten(m["text"]), m["label"], m["predicted"], m["confidence"])
        for m in analysis["confident_mistakes"]
    ]
    pairs = [
        (p["label"], p["predicted"], p["count"], p["share_of_label"]) for p in analysis["confused_pairs"]
    ]
    lengths = [(b["characters"], b["rows"], b["accuracy"]) for b in analysis["accuracy_by_length"]]
    return [
        f"<h2>Error analysis ({html.escape(split)} split)</h2>",
        "<h3>Most confident mistakes</h3><p>Read these first: a confident mistake is often a wrong label.</p>",
        html_table(mistakes, ("row", "text", "label", "predicted", "confidence"))
        if mistakes
        else "<p>none</p>",
        "<h3>Most confused pairs</h3>",
        html_table(pairs, ("label", "predicted as", "rows", "share of the label"))
        if pairs
        else "<p>none</p>",
        "<h3>Accuracy by text length</h3>",
        html_table(lengths, ("characters", "rows", "accuracy")),
    ]


def audit_section(summary: dict[str, Any]) -> list[str]:
    """HTML of a ``--audit`` summary: the count of each finding and the worst label findings."""
    from .audit import AUDIT_HTML, KINDS, LABEL

    worst = [
        (f["row"], shorten(f["text"]), f["given_label"], f["suggested_label"], f["score"])
        for f in summary["worst"][LABEL]
    ]
    return [
        "<h2>Data audit (training data)</h2>",
        f"<p>{summary['audited_rows']:,} rows audited with {html.escape(summary['model'])}; every finding is in "
        f"<a href='audit/{AUDIT_HTML}'>audit/{AUDIT_HTML}</a> and audit/issues.csv.</p>",
        html_table([(kind, summary["counts"][kind]) for kind in KINDS], ("finding", "rows")),
        "<h3>Likely wrong labels, worst first</h3>",
        html_table(worst, ("row", "text", "given", "suggested", "score")) if worst else "<p>none</p>",
    ]


def shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _calibration_section(inputs: ReportInputs) -> list[str]:
    m, metrics = inputs.manifest, inputs.metrics
    if m.temperature is None:
        how = "Probabilities are the model's own (trained with --no-calibrate)."
    else:
        before, after = metrics.get("ece_uncalibrated"), metrics.get("ece")
        how = (
            f"Probabilities are calibrated by temperature scaling (temperature {m.temperature:.4g}, fitted on "
            f"validation): expected calibration error {before:.4f} before, {after:.4f} after on validation"
        )
        if inputs.test_metrics and "ece_uncalibrated" in inputs.test_metrics:
            t = inputs.test_metrics
            how += f", {t['ece_uncalibrated']:.4f} before and {t['ece']:.4f} after on test"
        how += "."
    return [
        "<h2>Confidence and abstention</h2>",
        f"<p>{html.escape(how)} With <code>--min-confidence P</code> (predict, evaluate, serve) a text whose top "
        "probability is below P gets no label. The lowest P that reaches each accuracy on the validation "
        "split, and what it gives on the test split (read from the sampled curve; <code>texttune evaluate "
        "RUN --target-accuracy A</code> gives exact values for any data):</p>",
        html_table(
            abstention_rows(metrics, inputs.test_metrics),
            (
                "target accuracy",
                "--min-confidence",
                "validation coverage",
                "validation accuracy",
                "test coverage",
                "test accuracy",
            ),
        ),  # fmt: skip
    ]


def render_model_card(inputs: ReportInputs) -> str:
    """A model card in Markdown: data, labels, strategy, hyperparameters, metrics, intended use and limits."""
    m = inputs.manifest
    train_counts = inputs.label_counts.get("train", [])
    lines = [
        f"# Text classifier fine-tuned from `{m.base_model}`",
        "",
        f"Trained with texttune. Task: **{m.task}**; strategy: **{m.strategy}**.",
        "",
        "## Data",
        "",
        f"- source: `{inputs.data_source}` (text column `{m.text_column}`"
        + (f", pair column `{m.text_pair_column}`" if m.text_pair_column else "")
        + f", label column `{m.label_column}`)",
        f"- texts longer than {m.max_length} tokens: {m.long_text}"
        + (f" (stride {m.stride})" if m.long_text == "sliding" else ""),
    ]
    for split, values in inputs.label_counts.items():
        if m.task == REGRESSION:
            lines.append(f"- {split}: {len(values)} rows")
        elif m.task == MULTI_LABEL:
            lines.append(f"- {split}: {int(sum(values))} label assignments")
        else:
            lines.append(f"- {split}: {int(sum(values))} rows")
    lines += ["", "## Labels", ""]
    if m.task == REGRESSION:
        lines.append("A single regression value.")
    else:
        lines += ["| label | training rows |", "| --- | --- |"]
        for i, name in enumerate(m.label_names):
            count = int(train_counts[i]) if i < len(train_counts) else ""
            lines.append(f"| {name} | {count} |")
    lines += ["", "## Hyperparameters", "", "| option | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in _hyperparameters(m).items()]
    lines += [f"| trainable parameters | {m.trainable_parameters:,} of {m.total_parameters:,} |"]
    if m.thresholds:
        lines.append(
            "| decision thresholds | "
            + ", ".join(f"{n}={t:g}" for n, t in zip(m.label_names, m.thresholds))
            + " |"
        )
    lines += ["", "## Metrics", ""]
    for title, metrics in (("Validation", inputs.metrics), ("Test", inputs.test_metrics)):
        if metrics:
            lines += [f"{title}:", "", "```", format_report(metrics), "```", ""]
    lines += [
        "## Intended use",
        "",
        f"Classifying texts like those in `{inputs.data_source}` into the labels above. Load it with "
        '`texttune predict RUN "a text"` or `texttune.Predictor.load(RUN)`; it is also a plain '
        "`transformers` sequence-classification model (`id2label` is in `config.json`).",
        "",
        "## Limits",
        "",
        "- Scores hold for data like the validation/test split above; other domains, time periods or "
        "languages can score much worse. Check on your own labelled sample before relying on it.",
        f"- Texts are cut to {m.max_length} tokens ({m.long_text}); information beyond that is not seen.",
        "- The model inherits the biases of its base model and of the training data; do not use it alone "
        "for decisions about people.",
    ]
    if m.thresholds:
        lines.append(
            "- The multi-label thresholds were tuned on the validation split, so validation scores are "
            "optimistic; trust the test split."
        )
    return "\n".join(lines) + "\n"
