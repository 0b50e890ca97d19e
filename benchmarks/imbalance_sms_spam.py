"""Class weights on an imbalanced task: `sms_spam` (about 12% spam) with the built-in model.

Trains the same recipe twice, with `--class-weights none` and `auto`, and prints spam recall, spam F1 and
macro-F1 on the held-out test split. Small budget by default (a training subset, 1 epoch) so it runs on a
laptop CPU; raise --max-train-samples / --epochs for firmer numbers.

    python benchmarks/imbalance_sms_spam.py --max-train-samples 1000 --epochs 1
"""

from __future__ import annotations

import argparse
import tempfile
import time

from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train-samples", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    args = parser.parse_args()
    from texttune.hardware import describe_machine

    print(describe_machine(), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for weights in ("none", "auto"):
            config = RunConfig(
                data=DataConfig(data="sms_spam", max_train_samples=args.max_train_samples),
                model=ModelConfig(model="minilm", max_length=args.max_length),
                train=TrainConfig(
                    output=f"{tmp}/{weights}",
                    epochs=args.epochs,
                    learning_rate=args.learning_rate,
                    class_weights=weights,
                    progress=False,
                    report=False,
                ),
            )
            started = time.perf_counter()
            result = train(config)
            test = result.test_metrics or {}
            spam = test["per_class"]["spam"]
            rows.append(
                (
                    weights,
                    spam["recall"],
                    spam["precision"],
                    spam["f1"],
                    test["f1_macro"],
                    test["accuracy"],
                    time.perf_counter() - started,
                )
            )
    print(
        f"\nsms_spam, minilm, {args.max_train_samples} training rows, {args.epochs:g} epoch(s), "
        f"max length {args.max_length}; test split ({test['samples']} rows, {spam['support']} spam)\n"
    )
    print("| --class-weights | spam recall | spam precision | spam F1 | macro-F1 | accuracy | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, recall, precision, f1, macro, acc, seconds in rows:
        print(
            f"| {name} | {recall:.3f} | {precision:.3f} | {f1:.3f} | {macro:.3f} | {acc:.3f} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
