"""Long texts: `--long-text truncate | head-tail | sliding` on `bbc_news` (median ~420 tokens) with the
built-in model and a short window, so that most articles are cut.

Prints validation and test accuracy / macro-F1 of each mode, the number of training windows and the time.

    python benchmarks/long_text_bbc.py --max-train-samples 300 --max-eval-samples 150 --epochs 1
"""

from __future__ import annotations

import argparse
import tempfile
import time

from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train-samples", type=int, default=300)
    parser.add_argument("--max-eval-samples", type=int, default=150)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    args = parser.parse_args()
    from texttune.hardware import describe_machine

    print(describe_machine(), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("truncate", "head-tail", "sliding"):
            config = RunConfig(
                data=DataConfig(
                    data="bbc_news",
                    max_train_samples=args.max_train_samples,
                    max_eval_samples=args.max_eval_samples,
                ),
                model=ModelConfig(
                    model="minilm",
                    max_length=args.max_length,
                    long_text=mode,
                    stride=args.stride if mode == "sliding" else None,
                ),
                train=TrainConfig(
                    output=f"{tmp}/{mode}",
                    epochs=args.epochs,
                    learning_rate=args.learning_rate,
                    batch_size=16,
                    progress=False,
                    report=False,
                ),
            )
            started = time.perf_counter()
            result = train(config)
            seconds = time.perf_counter() - started
            test = result.test_metrics or {}
            rows.append(
                (
                    mode,
                    result.train_samples,
                    result.metrics["accuracy"],
                    test["accuracy"],
                    test["f1_macro"],
                    seconds,
                )
            )
    print(
        f"\nbbc_news, minilm, {args.max_train_samples} training articles, max length {args.max_length}, "
        f"stride {args.stride}, {args.epochs:g} epoch(s), learning rate {args.learning_rate:g}; validation and test "
        f"{test['samples']} articles each\n"
    )
    print("| --long-text | training rows | validation accuracy | test accuracy | test macro-F1 | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mode, n, val, acc, f1, seconds in rows:
        print(f"| {mode} | {n} | {val:.3f} | {acc:.3f} | {f1:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
