"""Compare every fine-tuning strategy on the built-in model and dataset, side by side in one run.

Same data (a seeded subset of ``rotten_tomatoes``), seed, max length, batch size and epochs for every
strategy; the learning rate is each method's usual one (a head or an adapter needs a larger rate than
the whole model). Each strategy trains in its own process so that peak memory is its own. Prints a
Markdown table (test-split accuracy and macro-F1, train wall time, train samples/s, trainable
parameters, peak resident memory) and the ratio of a full fine-tuning epoch to a later epoch of the
frozen-base head.

    OMP_NUM_THREADS=2 python benchmarks/strategies.py --train-samples 2000 --eval-samples 500
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name -> (strategy options, learning rate, epochs multiplier note)
ROWS: dict[str, tuple[dict, float]] = {
    "full": ({"strategy": "full"}, 1e-4),
    "freeze (linear)": ({"strategy": "freeze"}, 1e-3),
    "freeze (mlp, 20 epochs)": ({"strategy": "freeze", "head": "mlp"}, 1e-3),
    "partial (bottom 4 of 6)": ({"strategy": "partial", "freeze_layers": 4}, 1e-4),
    "lora": ({"strategy": "lora"}, 1e-3),
    "ia3": ({"strategy": "ia3"}, 3e-3),
    "prefix": ({"strategy": "prefix"}, 1e-2),
    "prompt": ({"strategy": "prompt"}, 3e-2),
    "ptuning": ({"strategy": "ptuning"}, 1e-3),
}
HEAD_EPOCHS = 20


def run_one(name: str, args: argparse.Namespace, folder: Path) -> dict:
    from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train
    from texttune.config import StrategyConfig

    options, learning_rate = ROWS[name]
    epochs = float(HEAD_EPOCHS if "20 epochs" in name else args.epochs)
    config = RunConfig(
        data=DataConfig(
            data="rotten_tomatoes", max_train_samples=args.train_samples, max_eval_samples=args.eval_samples
        ),
        model=ModelConfig(model="minilm", max_length=args.max_length),
        train=TrainConfig(
            output=str(folder / "run"),
            epochs=epochs,
            batch_size=args.batch_size,
            learning_rate=learning_rate,
            seed=args.seed,
            progress=False,
            use_cpu=True,
        ),
        strategy=StrategyConfig(**options),
    )
    result = train(config)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    feature_seconds = result.metrics.get("feature_seconds", 0.0)
    return {
        "name": name,
        "learning_rate": learning_rate,
        "epochs": epochs,
        "accuracy": result.test_metrics["accuracy"],
        "f1_macro": result.test_metrics["f1_macro"],
        "train_seconds": result.train_seconds,
        "samples_per_second": result.train_samples * epochs / result.train_seconds,
        "trainable": result.trainable_parameters,
        "total": result.total_parameters,
        "peak_mib": peak,
        "feature_seconds": feature_seconds,
        "epoch_seconds": (result.train_seconds - feature_seconds) / epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--eval-samples", type=int, default=500, help="validation and test rows each")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", nargs="*", help="run only these rows (names as in the table)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one row in this process
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from texttune.hardware import describe_machine

    print(describe_machine(), flush=True)

    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            row = run_one(args.one, args, Path(tmp))
        Path(args.json).write_text(json.dumps(row))
        return

    rows = []
    names = args.only or list(ROWS)
    passthrough = [
        "--train-samples", str(args.train_samples), "--eval-samples", str(args.eval_samples),
        "--epochs", str(args.epochs), "--max-length", str(args.max_length),
        "--batch-size", str(args.batch_size), "--seed", str(args.seed),
    ]  # fmt: skip
    started = time.perf_counter()
    for name in names:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, __file__, "--one", name, "--json", out.name, *passthrough]
            subprocess.run(cmd, check=True, env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
            rows.append(json.loads(Path(out.name).read_text()))
        print(f"done: {name} ({rows[-1]['train_seconds']:.0f}s)", file=sys.stderr, flush=True)

    print(
        f"\n{args.train_samples} training rows of rotten_tomatoes, {args.eval_samples} test rows, "
        f"minilm, max_length {args.max_length}, batch {args.batch_size}, {args.epochs:g} epoch(s) "
        f"(freeze mlp: {HEAD_EPOCHS}), seed {args.seed}; total {time.perf_counter() - started:.0f}s\n"
    )
    print(
        "| strategy | lr | test accuracy | test macro-F1 | train time (s) | train samples/s | trainable params | peak RSS (MiB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        share = 100 * r["trainable"] / r["total"]
        print(
            f"| {r['name']} | {r['learning_rate']:g} | {r['accuracy']:.3f} | {r['f1_macro']:.3f} | "
            f"{r['train_seconds']:.1f} | {r['samples_per_second']:.1f} | "
            f"{r['trainable']:,} ({share:.2f}%) | {r['peak_mib']:.0f} |"
        )
    by_name = {r["name"]: r for r in rows}
    full, head = by_name.get("full"), by_name.get("freeze (mlp, 20 epochs)")
    if full and head:
        full_epoch = full["train_seconds"] / full["epochs"]
        print(
            f"\nfreeze: features cached once in {head['feature_seconds']:.1f}s; a later head epoch takes "
            f"{head['epoch_seconds']:.3f}s vs {full_epoch:.1f}s for an epoch of full fine-tuning: "
            f"{full_epoch / head['epoch_seconds']:.0f}x faster (target >= 20x)"
        )


if __name__ == "__main__":
    main()
