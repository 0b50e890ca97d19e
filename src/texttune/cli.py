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
    DataConfig,
    ModelConfig,
    RunConfig,
    StrategyConfig,
    TrainConfig,
    load_yaml_config,
    require_positive,
)
from .errors import ConfigError, TexttuneError

logger = logging.getLogger("texttune")

DEMO_OUTPUT = "runs/demo"
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


# --------------------------------------------------------------------------- argument plumbing


def _add_dataclass_arguments(parser: argparse.ArgumentParser, klass, skip: tuple[str, ...] = ()) -> None:
    """One flag per dataclass field, help text from the field; defaults suppressed so YAML can fill gaps."""
    group = parser.add_argument_group(klass.__name__.replace("Config", "").lower() + " options")
    for f in dataclasses.fields(klass):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        kind = str(f.type)
        if kind.startswith("bool"):
            if f.default is True:
                group.add_argument(
                    flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
                )
            else:
                group.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=help_text)
            continue
        caster = int if kind.startswith("int") else float if kind.startswith("float") else str
        default = f.default if f.default is not dataclasses.MISSING else None
        suffix = f" (default: {default})" if default is not None else ""
        group.add_argument(
            flag, type=caster, default=argparse.SUPPRESS, help=help_text + suffix, metavar=f.name.upper()
        )


def _given(args: argparse.Namespace, klass) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(klass) if hasattr(args, f.name)}


def _run_config(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> RunConfig:
    """defaults < ``overrides`` (the demo's recipe) < ``--config`` file < command-line flags."""
    flat: dict[str, Any] = dict(overrides or {})
    if getattr(args, "config", None):
        flat.update(load_yaml_config(args.config))
    for klass in (DataConfig, ModelConfig, TrainConfig, StrategyConfig):
        flat.update(_given(args, klass))
    return RunConfig.from_flat(flat, source="option")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="Show full tracebacks and library logs.")
    parser.add_argument("--quiet", action="store_true", help="Only print results and errors.")


def _add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="What runs the model: the run's ONNX export (`texttune export RUN --onnx`), PyTorch, or auto "
        "(ONNX when the run has one; default).",
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="texttune",
        description="Fine-tune pretrained transformers for text classification.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train", help="Fine-tune a model and save the run.", description="Fine-tune a model and save the run."
    )
    p.add_argument("--config", metavar="YAML", help="Options from a YAML file; flags given here override it.")
    _add_dataclass_arguments(p, DataConfig)
    _add_dataclass_arguments(p, ModelConfig)
    _add_dataclass_arguments(p, TrainConfig)
    _add_dataclass_arguments(p, StrategyConfig)
    _add_common(p)

    from .search import SearchConfig

    p = sub.add_parser(
        "search",
        help="Search hyperparameters (Optuna) and write the best config.",
        description="Train several trials over a search space (or --grid bert), prune bad ones, print a "
        "results table and write results.csv and best.yaml (reproduce with `texttune train --config`) "
        "into --output. Needs `pip install 'texttune[search]'`.",
    )
    p.add_argument("--config", metavar="YAML", help="Base options from a YAML file; flags override it.")
    _add_dataclass_arguments(p, SearchConfig)
    _add_dataclass_arguments(p, DataConfig)
    _add_dataclass_arguments(p, ModelConfig)
    _add_dataclass_arguments(p, TrainConfig)
    _add_dataclass_arguments(p, StrategyConfig)
    _add_common(p)

    p = sub.add_parser(
        "evaluate",
        help="Evaluate a saved run.",
        description="Evaluate a saved run on new labelled data, or (without --data) on its own validation split.",
    )
    p.add_argument("run", help="Run folder written by `texttune train`.")
    p.add_argument(
        "--data", help="Labelled data: a file, a saved dataset folder or a built-in name (its test split)."
    )
    p.add_argument("--text-column", help="Text column (default: the run's, or detected).")
    p.add_argument("--text-pair-column", help="Second text column for pairs (default: the run's).")
    p.add_argument("--label-column", help="Label column (default: the run's, or detected).")
    p.add_argument("--label-delimiter", help="Delimiter of multi-label strings.")
    p.add_argument("--max-eval-samples", type=int, help="Evaluate on a seeded random subset of this size.")
    p.add_argument("--encoding", default="utf-8", help="Text encoding of the data file (default: utf-8).")
    p.add_argument(
        "--output",
        help="Folder for metrics.json, report.txt and confusion_matrix.png (default: RUN/evaluations/NAME).",
    )
    p.add_argument("--batch-size", type=int, default=64, help="Evaluation batch size (default: 64).")
    p.add_argument("--json", action="store_true", help="Print one JSON object with the metrics.")
    _add_backend_argument(p)
    _add_common(p)

    p = sub.add_parser(
        "predict",
        help="Predict labels for texts, a file, or interactively.",
        description="Predict with a saved run: texts as arguments, a file with --data, or (with neither) an "
        "interactive prompt.",
    )
    p.add_argument("run", help="Run folder written by `texttune train`.")
    p.add_argument("texts", nargs="*", help="Texts to classify.")
    p.add_argument("--pair", action="append", help="Second text of a pair, once per text (for pair models).")
    p.add_argument("--data", help="A CSV/TSV/JSONL/Parquet file to predict row by row.")
    p.add_argument(
        "--output", help="Where to write the file's rows with predictions (.csv, .tsv, .jsonl, .parquet)."
    )
    p.add_argument("--overwrite", action="store_true", help="Replace --output if it exists.")
    p.add_argument("--text-column", help="Text column of --data (default: the run's, or detected).")
    p.add_argument("--text-pair-column", help="Second text column of --data for pair models.")
    p.add_argument("--encoding", default="utf-8", help="Text encoding of --data (default: utf-8).")
    p.add_argument("--batch-size", type=int, default=64, help="Prediction batch size (default: 64).")
    p.add_argument("--json", action="store_true", help="Print JSON (one object per text).")
    _add_backend_argument(p)
    _add_common(p)

    p = sub.add_parser(
        "demo",
        help="Fine-tune the built-in model on built-in movie reviews, evaluate, predict.",
        description="The main job in one command: fine-tune `minilm` on `rotten_tomatoes`, evaluate on the "
        "held-out test split, and show example predictions.",
    )
    p.add_argument("--output", default=DEMO_OUTPUT, help=f"Run folder (default: {DEMO_OUTPUT}).")
    p.add_argument("--overwrite", action="store_true", help="Replace the run folder if it exists.")
    p.add_argument(
        "--epochs", type=float, default=DEMO_SETTINGS["epochs"], help="Epochs (default: %(default)s)."
    )
    p.add_argument("--max-train-samples", type=int, help="Train on a subset for a quicker look.")
    _add_common(p)

    _add_pretrain_parser(sub)
    _add_export_parser(sub)

    p = sub.add_parser(
        "serve",
        help="Serve a saved run over HTTP (POST /predict).",
        description='Serve a saved run over HTTP: POST /predict with {"texts": [...]}, GET /health, '
        "GET /labels, docs at /docs. Binds 127.0.0.1 unless --host says otherwise. Needs "
        "pip install 'texttune[serve]'.",
    )
    p.add_argument("run", help="Run folder written by `texttune train`.")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available).")
    from .serve import ServeConfig

    _add_dataclass_arguments(p, ServeConfig)
    _add_common(p)

    p = sub.add_parser(
        "datasets", help="List the built-in datasets.", description="List the built-in datasets."
    )
    _add_common(p)
    p = sub.add_parser("models", help="List the built-in models.", description="List the built-in models.")
    _add_common(p)
    return parser


def _add_pretrain_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="Continue masked-LM pretraining on unlabelled text.",
        description="Continue masked-LM pretraining of a BERT-style model on unlabelled domain text and write "
        "a model folder that `texttune train --model DIR` fine-tunes.",
    )
    p.add_argument(
        "--data", required=True, help="A .txt file (one text per line), a data file or a built-in dataset."
    )
    p.add_argument("--model", default="minilm", help="Model to start from (default: minilm).")
    p.add_argument("--output", required=True, help="Folder for the model.")
    p.add_argument("--overwrite", action="store_true", help="Replace --output if it holds files.")
    p.add_argument("--text-column", help="Text column of a table (default: detected).")
    p.add_argument("--epochs", type=float, default=1.0, help="Epochs (default: %(default)s).")
    p.add_argument("--learning-rate", type=float, default=5e-5, help="Learning rate (default: %(default)s).")
    p.add_argument("--batch-size", type=int, default=32, help="Batch size (default: %(default)s).")
    p.add_argument("--max-length", type=int, help="Truncate texts to this many tokens.")
    p.add_argument(
        "--mlm-probability", type=float, default=0.15, help="Share of tokens masked (default: %(default)s)."
    )
    p.add_argument("--whole-word-mask", action="store_true", help="Mask whole words, not word pieces.")
    p.add_argument("--max-train-samples", type=int, help="Use at most this many texts.")
    p.add_argument("--seed", type=int, default=42, help="Random seed (default: %(default)s).")
    p.add_argument("--encoding", default="utf-8", help="Text encoding (default: utf-8).")
    p.add_argument("--use-cpu", action="store_true", help="Train on the CPU even when a GPU is present.")
    _add_common(p)


def _add_export_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="Export a run: a plain transformers model (--merge for adapters), or ONNX (--onnx).",
        description="Write a run's model as a plain transformers model folder (--output; --merge folds "
        "LoRA/IA3 adapters into the weights), or with --onnx as an ONNX model with fused attention "
        "(optionally int8-quantized), written to RUN/onnx/ (used by `texttune predict RUN` from then on) "
        "or to a stand-alone --output folder, followed by a parity check against the PyTorch model on the "
        "run's validation split.",
    )
    p.add_argument("run", help="Run folder written by `texttune train`.")
    p.add_argument("--output", help="Folder for the model (required, except with --onnx: default RUN/onnx/).")
    p.add_argument("--merge", action="store_true", help="Merge LoRA/IA3 adapters into the base weights.")
    p.add_argument("--onnx", action="store_true", help="Export to ONNX (needs the `onnx` extra).")
    p.add_argument("--quantize", choices=("int8",), help="With --onnx: dynamic int8 quantization.")
    p.add_argument(
        "--overwrite", action="store_true", help="Replace --output (or the ONNX export) if it exists."
    )
    _add_common(p)


# --------------------------------------------------------------------------- subcommands


def cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    config = _run_config(args)
    result = train(config)
    if result.process_index == 0:  # under torchrun every process returns; one report is enough
        _print_result(result)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .search import SearchConfig, format_results, search

    config = _run_config(args)
    result = search(config, SearchConfig(**_given(args, SearchConfig)))
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

    require_positive(args, ("epochs", "learning_rate", "batch_size"))
    result = pretrain(
        args.data,
        args.model,
        args.output,
        text_column=args.text_column,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        mlm_probability=args.mlm_probability,
        whole_word_mask=args.whole_word_mask,
        max_train_samples=args.max_train_samples,
        seed=args.seed,
        progress=not args.quiet,
        use_cpu=args.use_cpu,
        overwrite=args.overwrite,
        encoding=args.encoding,
    )
    print(
        f"model saved to {result.output} ({result.texts} texts, {result.train_seconds:.1f}s, "
        f"loss {result.loss:.3f}); fine-tune it with: texttune train --model {result.output} --data ..."
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .artifacts import read_manifest
    from .strategies import export_merged

    if args.quantize and not args.onnx:
        raise ConfigError("--quantize applies to --onnx; add --onnx")
    if args.onnx and args.merge:
        raise ConfigError("--onnx and --merge are different exports; give one of them")
    if args.onnx:
        return _export_onnx(args)
    if not args.output:
        raise ConfigError(
            "give the folder for the exported model with --output (or export to ONNX with --onnx)"
        )
    strategy = read_manifest(args.run).strategy
    if strategy in ("lora", "ia3") and not args.merge:
        raise ConfigError(f"the run uses {strategy} adapters; pass --merge to fold them into the weights")
    output = export_merged(args.run, args.output, overwrite=args.overwrite)
    print(f"plain transformers model written to {output} (load it with AutoModelForSequenceClassification)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_run
    from .metrics import format_report

    result = evaluate_run(
        args.run,
        data=args.data,
        text_column=args.text_column,
        text_pair_column=args.text_pair_column,
        label_column=args.label_column,
        label_delimiter=args.label_delimiter,
        max_eval_samples=args.max_eval_samples,
        encoding=args.encoding,
        output=args.output,
        batch_size=args.batch_size,
        backend=args.backend,
    )
    if args.json:
        print(json.dumps(result.metrics, ensure_ascii=False))
    else:
        print(
            f"evaluated {result.name} ({result.metrics.get('samples', 0)} samples); files in {result.output}"
        )
        print(format_report(result.metrics))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import Predictor

    if args.data and not args.output:
        raise ConfigError("--data needs --output FILE for the predictions (.csv, .tsv, .jsonl or .parquet)")
    if args.output and not args.data:
        raise ConfigError("--output is for predicting a file; give the file with --data")
    if args.data and args.texts:
        raise ConfigError("give texts as arguments or a file with --data, not both")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    if args.output and Path(args.output).exists() and not args.overwrite:
        raise ConfigError(f"{args.output} exists; pass --overwrite to replace it")
    predictor = Predictor.load(args.run, batch_size=args.batch_size, backend=args.backend)
    if args.data:
        started = time.perf_counter()
        rows = predictor.predict_file(
            args.data,
            args.output,
            text_column=args.text_column,
            text_pair_column=args.text_pair_column,
            encoding=args.encoding,
        )
        seconds = time.perf_counter() - started
        message = f"wrote {rows} predictions to {args.output} ({rows / max(seconds, 1e-9):.0f} rows/s)"
        print(json.dumps({"rows": rows, "output": args.output}) if args.json else message)
        return 0
    if args.texts:
        if args.pair and len(args.pair) != len(args.texts):
            raise ConfigError(
                f"got {len(args.texts)} texts but {len(args.pair)} --pair values; give one per text"
            )
        predictions = predictor.predict(args.texts, args.pair)
        for text, prediction in zip(args.texts, predictions):
            print(_format_prediction(text, prediction, predictor.task, args.json))
        return 0
    return _interactive(predictor, args.json)


def _export_onnx(args: argparse.Namespace) -> int:
    from .export import export_onnx

    result = export_onnx(args.run, args.output, quantize=args.quantize, overwrite=args.overwrite)
    kind = "int8" if result.quantize else "fp32"
    fused = "fused attention" if result.fused else "attention not fused"
    weights = f", {result.weight_type} weights" if result.weight_type else ""
    print(
        f"ONNX model ({kind}, {fused}, {result.size_bytes / 1e6:.1f} MB{weights}) written to {result.model_file}"
    )
    parity = result.parity
    if parity is None:
        print("parity check skipped: the run has no validation.parquet")
        return 0
    what = "value" if parity.label_agreement is None else "probability"
    line = f"parity on {parity.rows} validation rows: max abs {what} diff {parity.max_abs_diff:.2e}"
    if parity.label_agreement is not None:
        line += f", label agreement {100 * parity.label_agreement:.2f}%"
    if parity.accuracy_torch is not None:
        line += f", accuracy {parity.accuracy_torch:.4f} (torch) vs {parity.accuracy_onnx:.4f} (onnx)"
    print(line)
    return 0


def _format_prediction(text: str, prediction, task: str, as_json: bool) -> str:
    from .data import MULTI_LABEL, REGRESSION

    if as_json:
        return json.dumps({"text": text, **prediction.to_dict()}, ensure_ascii=False)
    if task == REGRESSION:
        return f"{prediction.label:.4f}\t{text}"
    if task == MULTI_LABEL:
        chosen = (
            ", ".join(f"{n} ({prediction.probabilities[n]:.3f})" for n in prediction.label) or "(no label)"
        )
        return f"{chosen}\t{text}"
    return f"{prediction.label} ({prediction.score:.3f})\t{text}"


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

    settings = dict(DEMO_SETTINGS, epochs=args.epochs, output=args.output, overwrite=args.overwrite)
    if args.max_train_samples:
        settings["max_train_samples"] = args.max_train_samples
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

    config = ServeConfig(**_given(args, ServeConfig))
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

    rows = [("name", "installed", "package", "description")]
    for info in list_models():
        rows.append((info.name, "yes" if info.installed else "no", info.package, info.description))
    _print_table(rows)
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


COMMANDS = {
    "train": cmd_train,
    "search": cmd_search,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "pretrain": cmd_pretrain,
    "export": cmd_export,
    "datasets": cmd_datasets,
    "models": cmd_models,
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
