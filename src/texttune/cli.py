"""The ``texttune`` command: thin subcommands over the library. The only module that prints or exits."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from .config import (
    AuditConfig,
    DataConfig,
    DemoConfig,
    DistillConfig,
    EvaluateConfig,
    ExplainConfig,
    ExportConfig,
    ModelConfig,
    PredictConfig,
    PretrainConfig,
    RunConfig,
    StrategyConfig,
    TrainConfig,
    load_yaml_config,
)
from .errors import ConfigError, TexttuneError
from .options import add_arguments, flag, from_args, given

logger = logging.getLogger("texttune")

#: The demo's recipe: chosen from a measured accuracy/time curve on 2 CPU cores (see README, "The demo").
DEMO_SETTINGS: dict[str, Any] = {
    "data": "rotten_tomatoes",
    "model": "minilm",
    "epochs": 2.0,
    "learning_rate": 1e-4,
    "batch_size": 32,
    "max_length": 128,
}
DEMO_EXAMPLES = [
    "A gripping, beautifully acted film that stays with you long after the credits.",
    "Two hours of my life I will never get back; the plot makes no sense.",
    "The effects are dazzling, but the story is thin and the jokes fall flat.",
    "Funny, warm and surprisingly moving.",
]
RUN_SECTIONS = (DataConfig, ModelConfig, TrainConfig, StrategyConfig)
RUN_HELP = "Run folder written by `texttune train`."


# --------------------------------------------------------------------------- argument plumbing


class _Parser(argparse.ArgumentParser):
    """Bad flags get one line naming the problem and the help to read, like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _run_config(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> RunConfig:
    """defaults < ``overrides`` (the demo's recipe) < ``--config`` file < command-line flags."""
    flat: dict[str, Any] = dict(overrides or {})
    if getattr(args, "config", None):
        flat.update(load_yaml_config(args.config))
    for klass in RUN_SECTIONS:
        flat.update(given(args, klass))
    return RunConfig.from_flat(flat, source="option")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="Show full tracebacks and library logs.")
    parser.add_argument("--quiet", action="store_true", help="Only print results and errors.")


def _subcommand(sub, name: str, help_text: str, description: str | None = None, *options, run: bool = False):
    """A subparser with ``options`` dataclasses as flags (their defaults filled in) and the common flags."""
    parser = sub.add_parser(name, help=help_text, description=description or help_text)
    if run:
        parser.add_argument("run", help=RUN_HELP)
    for klass in options:
        add_arguments(parser, klass, defaults=True, title=f"{name} options")
    return parser


def _add_run_options(parser: argparse.ArgumentParser, *extra) -> None:
    """``texttune train``'s flags: unset ones stay absent, so a ``--config`` file can fill them."""
    parser.add_argument(
        "--config", metavar="YAML", help="Options from a YAML file; flags given here override it."
    )
    for klass in (*extra, *RUN_SECTIONS):
        add_arguments(parser, klass)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="texttune", description="Fine-tune pretrained transformers for text classification."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_training_commands(sub)
    _add_audit_command(sub)
    _add_run_commands(sub)
    _subcommand(sub, "datasets", "List the built-in datasets.")
    _subcommand(sub, "models", "List the built-in models.")
    _subcommand(
        sub, "strategies", "List the fine-tuning strategies: what trains, what they export, their options."
    )
    for parser_ in sub.choices.values():
        _add_common(parser_)
    return parser


def _add_training_commands(sub) -> None:
    """``train``, ``search``, ``demo`` and ``pretrain``: the commands that train."""
    from .search import SearchConfig

    p = _subcommand(sub, "train", "Fine-tune a model and save the run.")
    _add_run_options(p)
    p = _subcommand(
        sub,
        "search",
        "Search hyperparameters (Optuna) and write the best config.",
        "Train several trials over a search space (or --grid bert), prune bad ones, print a results table "
        "and write results.csv and best.yaml (reproduce with `texttune train --config`) into --output. Needs "
        "`pip install 'texttune[search]'`.",
    )
    _add_run_options(p, SearchConfig)
    _subcommand(
        sub,
        "demo",
        "Fine-tune the built-in model on built-in movie reviews, evaluate, predict.",
        "The main job in one command: fine-tune `minilm` on `rotten_tomatoes`, evaluate on the held-out test "
        "split, and show example predictions.",
        DemoConfig,
    )
    _subcommand(
        sub,
        "pretrain",
        "Continue masked-LM pretraining on unlabelled text.",
        "Continue masked-LM pretraining of a BERT-style model on unlabelled domain text and write a model "
        "folder that `texttune train --model DIR` fine-tunes.",
        PretrainConfig,
    )


#: Data options that an audit, which reads every row and splits nothing off, has no use for.
_AUDIT_SKIPS = ("validation_split", "max_train_samples", "max_eval_samples", "data_seed")


def _add_audit_command(sub) -> None:
    p = _subcommand(
        sub,
        "audit",
        "Find likely label errors, duplicates, leakage and outliers in labelled data.",
        "Audit labelled data before training: out-of-fold probabilities from k-fold cross-validation on the "
        "frozen model's embeddings (or fine-tuned runs with --strategy full) give cleanlab's likely label "
        "errors with a suggested label; normalised text and embedding similarity give duplicates, conflicting "
        "duplicates and rows leaking into --validation/--test; token counts give empty, truncated and very "
        "short texts. Writes issues.csv, audit.json and audit.html into --output; --fix writes a cleaned copy.",
        AuditConfig,
    )
    add_arguments(p, DataConfig, defaults=True, skip=_AUDIT_SKIPS, title="data options")
    p.add_argument("--json", action="store_true", help="Print audit.json instead of the summary.")


def _add_run_commands(sub) -> None:
    """``evaluate``, ``predict``, ``export`` and ``serve``: the commands that use a saved run."""
    from .serve import ServeConfig

    p = _subcommand(
        sub,
        "evaluate",
        "Evaluate a saved run.",
        "Evaluate a saved run on new labelled data, or (without --data) on its own validation split.",
        EvaluateConfig,
        run=True,
    )
    p.add_argument("--json", action="store_true", help="Print one JSON object with the metrics.")
    p = _subcommand(
        sub,
        "predict",
        "Predict labels for texts, a file, or interactively.",
        "Predict with a saved run: texts as arguments, a file with --data, or (with neither) an interactive "
        "prompt.",
        PredictConfig,
        run=True,
    )
    p.add_argument("texts", nargs="*", help="Texts to classify.")
    p.add_argument("--json", action="store_true", help="Print JSON (one object per text).")
    p = _subcommand(
        sub,
        "explain",
        "Show which words made a saved run predict what it did.",
        "Explain a saved run's predictions: each word's attribution to the predicted class (captum's "
        "Layer Integrated Gradients on the input embeddings), coloured on a terminal, as JSON, or as an HTML "
        "page with --html.",
        ExplainConfig,
        run=True,
    )
    p.add_argument("texts", nargs="+", help="Texts to explain.")
    p.add_argument("--json", action="store_true", help="Print JSON (one object per text).")
    _subcommand(
        sub,
        "export",
        "Export a run: a plain transformers model (--merge for adapters), or ONNX (--onnx).",
        "Write a run's model as a plain transformers model folder (--output; --merge folds LoRA/IA3 adapters "
        "into the weights), or with --onnx as an ONNX model with fused attention (optionally int8-quantized), "
        "written to RUN/onnx/ (used by `texttune predict RUN` from then on) or to a stand-alone --output "
        "folder, followed by a parity check against the PyTorch model on the run's validation split (or "
        "--data). An int8 model is written only if it keeps accuracy within --max-accuracy-drop; the other "
        "weight type and keeping the most sensitive matrices in fp32 are tried first.",
        ExportConfig,
        run=True,
    )
    _subcommand(
        sub,
        "distill",
        "Distil a run into a much faster student run (static embeddings or fewer layers).",
        "Train a student on the run's predictions (soft labels at --temperature, mixed with the given labels "
        "by --alpha) over the run's training texts plus any --unlabelled texts, and write it as a run to "
        "--output: predict, evaluate, export and serve use it like any run. --student static (a vector per "
        "token: the run's average output at it in those texts, model2vec's for the rest; their mean and "
        "3-token filters, then a small head; needs pip install 'texttune[distill]') or layers:N (the run's "
        "first N transformer layers).",
        DistillConfig,
        run=True,
    )
    p = _subcommand(
        sub,
        "serve",
        "Serve a saved run over HTTP (POST /predict).",
        'Serve a saved run over HTTP: POST /predict with {"texts": [...]}, GET /health, GET /labels, docs at '
        "/docs. Binds 127.0.0.1 unless --host says otherwise. Needs pip install 'texttune[serve]'.",
        run=True,
    )
    p.add_argument("--device", help="cpu or cuda (default: cuda when available).")
    add_arguments(p, ServeConfig)


# --------------------------------------------------------------------------- subcommands


def cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    config = _run_config(args)
    result = train(config)
    if result.process_index == 0:  # under torchrun every process returns; one report is enough
        _print_result(result)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import AUDIT_HTML, ISSUES_FILE, audit, format_summary

    options = from_args(args, AuditConfig)
    result = audit(DataConfig(**given(args, DataConfig)), options)
    if args.json:
        print(json.dumps(result.summary, ensure_ascii=False))
        return 0
    print(format_summary(result.summary))
    fix = result.summary.get("fix")
    if fix:
        print(
            f"wrote {fix['output_data']}: {fix['rows']:,} rows ({fix['dropped']:,} dropped, "
            f"{fix['relabelled']:,} relabelled); the input is unchanged"
        )
    folder = Path(options.output or "")
    print(f"findings: {folder / ISSUES_FILE}; report: {folder / AUDIT_HTML}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .search import SearchConfig, format_results, search

    config = _run_config(args)
    result = search(config, from_args(args, SearchConfig))
    print(format_results(result))
    print(
        f"\nbest validation {result.metric}: {result.best_value:.4f} with "
        + ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items()
        )
    )
    print(f"results: {result.results_file}\nbest config: {result.best_config_file}")
    print(f"reproduce: texttune train --config {result.best_config_file} --output runs/best")
    return 0


def _print_result(result) -> None:
    from .metrics import format_report

    print(f"run saved to {result.output}")
    print(
        f"trained {result.train_samples} samples in {result.train_seconds:.1f}s "
        f"({result.train_samples_per_second:.1f} samples/s); "
        f"trainable parameters {result.trainable_parameters:,} of {result.total_parameters:,}"
    )
    if result.metrics:
        print("\nvalidation")
        print(format_report(result.metrics))
    if result.test_metrics:
        print("\ntest")
        print(format_report(result.test_metrics))


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .pretraining import pretrain

    options = dataclasses.asdict(from_args(args, PretrainConfig))
    result = pretrain(
        options.pop("data"), options.pop("model"), options.pop("output"), progress=not args.quiet, **options
    )
    print(
        f"model saved to {result.output} ({result.texts} texts, {result.train_seconds:.1f}s, "
        f"loss {result.loss:.3f}); fine-tune it with: texttune train --model {result.output} --data ..."
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .artifacts import read_manifest
    from .strategies import export_merged, get_strategy

    options = from_args(args, ExportConfig)
    if options.onnx:
        return _export_onnx(args.run, options)
    strategy = get_strategy(read_manifest(args.run).strategy)
    if strategy.mergeable and not options.merge:
        raise ConfigError(
            f"the run uses {strategy.name} adapters; pass --merge to fold them into the weights"
        )
    output = export_merged(args.run, options.output, overwrite=options.overwrite)
    print(f"plain transformers model written to {output} (load it with AutoModelForSequenceClassification)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_run
    from .metrics import format_report

    result = evaluate_run(args.run, **given(args, EvaluateConfig))
    if args.json:
        print(json.dumps(result.metrics, ensure_ascii=False))
    else:
        print(
            f"evaluated {result.name} ({result.metrics.get('samples', 0)} samples); files in {result.output}"
        )
        print(format_report(result.metrics))
        if "target_accuracy" in result.metrics:
            print(_target_line(result.metrics))
        if result.report:
            print(f"report: {result.report}")
    return 0


def _target_line(metrics: dict[str, Any]) -> str:
    target = metrics["target_accuracy"]
    if "suggested_min_confidence" not in metrics:
        return f"no --min-confidence reaches accuracy {target:g} on these rows"
    return (
        f"for accuracy >= {target:g}: --min-confidence {metrics['suggested_min_confidence']:.4f} answers "
        f"{100 * metrics['coverage_at_target']:.1f}% of these rows (accuracy {metrics['accuracy_at_target']:.4f})"
    )


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import Predictor

    options = from_args(args, PredictConfig)
    options.check_texts(args.texts)
    predictor = Predictor.load(
        args.run,
        batch_size=options.batch_size,
        backend=options.backend,
        min_confidence=options.min_confidence,
    )
    if options.data:
        started = time.perf_counter()
        rows = predictor.predict_file(
            options.data,
            options.output,
            text_column=options.text_column,
            text_pair_column=options.text_pair_column,
            encoding=options.encoding,
        )
        seconds = time.perf_counter() - started
        message = f"wrote {rows} predictions to {options.output} ({rows / max(seconds, 1e-9):.0f} rows/s)"
        print(json.dumps({"rows": rows, "output": options.output}) if args.json else message)
        return 0
    if args.texts:
        predictions = predictor.predict(args.texts, options.pair)
        for text, prediction in zip(args.texts, predictions):
            print(_format_prediction(text, prediction, predictor.task, args.json))
        return 0
    return _interactive(predictor, args.json)


def cmd_explain(args: argparse.Namespace) -> int:
    from .artifacts import read_manifest
    from .explain import check_label, to_html, to_terminal
    from .inference import Predictor

    options = from_args(args, ExplainConfig)
    check_label(options.label, read_manifest(args.run).label_names)  # before the model loads
    predictor = Predictor.load(args.run, backend="torch")
    explanations = predictor.explain(args.texts, options.label, options.steps)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for explanation in explanations:
        if args.json:
            print(json.dumps(explanation.to_dict(), ensure_ascii=False))
            continue
        print(f"{explanation.label} ({explanation.score:.3f}): {to_terminal(explanation, colour)}")
    if options.html:
        Path(options.html).parent.mkdir(parents=True, exist_ok=True)
        Path(options.html).write_text(to_html(explanations), encoding="utf-8")
        if not args.json:
            print(f"wrote {options.html}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from .distill import distill

    result = distill(args.run, from_args(args, DistillConfig))
    metric = "mse" if "mse" in result.metrics else "f1_micro" if "f1_micro" in result.metrics else "accuracy"
    labelled = result.train_rows - result.unlabelled_rows - result.augmented_rows
    extra = f" + {result.unlabelled_rows} unlabelled" if result.unlabelled_rows else ""
    extra += f" + {result.augmented_rows} variants" if result.augmented_rows else ""
    print(
        f"student run written to {result.output} ({labelled} training rows"
        f"{extra}, {result.train_seconds:.1f}s)"
    )
    splits = (
        ("validation", result.metrics, result.teacher_metrics),
        ("test", result.test_metrics, result.teacher_test_metrics),
    )
    for split, student, teacher in splits:
        if student and metric in student:
            versus = f", teacher {teacher[metric]:.4f}" if teacher and metric in teacher else ""
            print(f"  {split} {metric}: student {student[metric]:.4f}{versus}")
    return 0


def _export_onnx(run: str, options: ExportConfig) -> int:
    from .export import export_onnx

    result = export_onnx(
        run,
        options.output,
        quantize=options.quantize,
        overwrite=options.overwrite,
        max_accuracy_drop=options.max_accuracy_drop if options.accuracy_check else None,
        data=options.data,
    )
    kind = "int8" if result.quantize else "fp32"
    fused = "fused attention" if result.fused else "attention not fused"
    weights = f", {result.weight_type} weights" if result.weight_type else ""
    print(
        f"ONNX model ({kind}, {fused}, {result.size_bytes / 1e6:.1f} MB{weights}) written to {result.model_file}"
    )
    parity = result.parity
    if parity is None:
        print("parity check skipped: the run has no validation.parquet (check on labelled rows with --data)")
        return 0
    what = "value" if parity.label_agreement is None else "probability"
    rows = f"{parity.rows} {'validation rows' if parity.data == 'validation' else 'rows of ' + parity.data}"
    line = f"parity on {rows}: max abs {what} diff {parity.max_abs_diff:.2e}"
    if parity.label_agreement is not None:
        line += f", label agreement {100 * parity.label_agreement:.2f}%"
    line += f", {parity.metric} {parity.metric_torch:.4f} (torch) vs {parity.metric_onnx:.4f} (onnx)"
    print(line)
    if parity.variant is not None:
        print(_accuracy_check_line(parity))
    return 0


def _accuracy_check_line(parity) -> str:
    """``int8 accuracy check: kept VARIANT (drop ...); tried first: ...`` for a checked int8 export."""
    from .metrics import metric_direction

    kept = parity.tried[-1]
    loss = "drop" if metric_direction(parity.metric) else "relative rise"
    line = (
        f"int8 accuracy check: kept {parity.variant} ({loss} {kept['drop']:.4f} <= --max-accuracy-drop "
        f"{parity.max_drop:g})"
    )
    if len(parity.tried) > 1:
        line += "; tried first: " + ", ".join(
            f"{attempt['variant']} ({parity.metric} {attempt['value']:.4f})" for attempt in parity.tried[:-1]
        )
    return line


def _format_prediction(text: str, prediction, task: str, as_json: bool) -> str:
    from .tasks import MULTI_LABEL, REGRESSION

    if as_json:
        return json.dumps({"text": text, **prediction.to_dict()}, ensure_ascii=False)
    if task == REGRESSION:
        return f"{prediction.label:.4f}\t{text}"
    if task == MULTI_LABEL:
        chosen = (
            ", ".join(f"{n} ({prediction.probabilities[n]:.3f})" for n in prediction.label) or "(no label)"
        )
        return f"{chosen}\t{text}"
    label = "abstain" if prediction.abstained else prediction.label
    return f"{label} ({prediction.score:.3f})\t{text}"


def _interactive(predictor, as_json: bool) -> int:
    tty = sys.stdin.isatty()
    if tty:
        print(f"labels: {', '.join(predictor.label_names) or 'regression'}. Type a text; q or Ctrl-D quits.")
    while True:
        if tty:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if text in ("q", "quit", "exit"):
            break
        if not text:
            continue
        prediction = predictor.predict([text])[0]
        if as_json:
            print(_format_prediction(text, prediction, predictor.task, True))
            continue
        print(_format_prediction(text, prediction, predictor.task, False).split("\t")[0])
        if predictor.probabilities and prediction.probabilities:
            ranked = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])
            print("  " + "  ".join(f"{name}={p:.3f}" for name, p in ranked))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .inference import Predictor
    from .metrics import format_report
    from .training import train

    options = from_args(args, DemoConfig)
    settings = dict(DEMO_SETTINGS, epochs=options.epochs, output=options.output, overwrite=options.overwrite)
    if options.max_train_samples:
        settings["max_train_samples"] = options.max_train_samples
    settings["progress"] = not args.quiet
    config = RunConfig.from_flat(settings, source="demo option")
    print(
        f"texttune demo: fine-tuning {config.model.model} on {config.data.data} "
        f"({config.train.epochs:g} epochs, lr {config.train.learning_rate:g}, batch {config.train.batch_size})"
    )
    started = time.perf_counter()
    result = train(config)
    wall = time.perf_counter() - started
    print(f"\nrun saved to {result.output}; wall time {wall:.0f}s (training {result.train_seconds:.0f}s)")
    print("\ntest split (held out)")
    print(format_report(result.test_metrics or {}))
    predictor = Predictor.load(result.output)
    print("\nexample predictions")
    for text, prediction in zip(DEMO_EXAMPLES, predictor.predict(DEMO_EXAMPLES)):
        print(f"  {prediction.label:<7} {prediction.score:.3f}  {text}")
    print(f'\nnext: texttune predict {result.output} "your text"   |   texttune evaluate {result.output}')
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import ServeConfig, serve

    config = from_args(args, ServeConfig)
    print(f"serving {args.run} on http://{config.host}:{config.port} (docs: /docs); Ctrl-C stops", flush=True)
    serve(args.run, config, device=args.device)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from .assets import list_datasets

    rows = [("name", "task", "rows", "labels", "description")]
    for info in list_datasets():
        rows.append((info.name, info.task, str(info.rows), ", ".join(info.labels), info.description))
    _print_table(rows)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .assets import list_models

    rows = [("name", "installed", "languages", "size", "package", "description")]
    for info in list_models():
        installed = "yes" if info.installed else "no"
        rows.append((info.name, installed, info.languages, info.size, info.package, info.description))
    _print_table(rows)
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    from .strategies import AUTO, auto_summary, get_strategy, strategy_names

    rows = [("name", "export", "lr", "pooling", "options", "what trains")]
    for name in strategy_names():
        strategy = get_strategy(name)
        export = "onnx, plain" if strategy.plain_weights else "--merge" if strategy.mergeable else "-"
        rate = f"{strategy.learning_rate:g}" if strategy.learning_rate else "model's"
        pooling = "/".join(
            kind
            for kind, able in (("pooler", strategy.native_head), ("pooled", strategy.pooled_head))
            if able
        )
        options = (
            ", ".join(flag(f.name) for f in dataclasses.fields(strategy.options)) if strategy.options else "-"
        )
        rows.append((name, export, rate, pooling, options, strategy.summary))
    _print_table(rows)
    print(f"\n--strategy {AUTO} (the default): {auto_summary()}")
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


COMMANDS = {
    "train": cmd_train,
    "audit": cmd_audit,
    "search": cmd_search,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "explain": cmd_explain,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "pretrain": cmd_pretrain,
    "export": cmd_export,
    "distill": cmd_distill,
    "datasets": cmd_datasets,
    "models": cmd_models,
    "strategies": cmd_strategies,
}


def _configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("texttune").setLevel(level)
    if not debug:
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        import datasets

        datasets.logging.set_verbosity_error()
        if quiet:
            datasets.disable_progress_bars()
            hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``texttune`` command; returns the exit code (2 for bad input)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    debug = getattr(args, "debug", False)
    _configure_logging(debug, getattr(args, "quiet", False))
    try:
        return COMMANDS[args.command](args)
    except TexttuneError as exc:
        if debug:
            raise
        print(f"texttune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
