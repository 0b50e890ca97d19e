"""How well ``texttune audit`` finds wrong labels, and whether training on its cleaned copy pays.

For each built-in dataset: flip a share (default 5%) of the training labels to another class at random
(seeded), audit the noisy training file (validation and test files given, so leakage is checked too), and
score the ``label`` findings against the flipped rows:

- precision and recall at k = number flipped (the k rows of lowest label quality; at this k the two are
  equal), and of cleanlab's own flagged set;
- then (``--train``) train texttune with its defaults on the noisy file and on the audit's cleaned copy
  (``--fix drop``, or ``--fix relabel``), with the same validation and test files, and compare test
  accuracy (and the test expected calibration error before and after the run's temperature scaling).

    python benchmarks/audit_noise.py --datasets sms_spam --train --epochs 1
    python benchmarks/audit_noise.py --datasets bbc_news --train --max-length 128 --fix relabel
    python benchmarks/audit_noise.py --datasets rotten_tomatoes --strategy full   # k fine-tuned runs
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def flip_labels(frame: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A copy of ``frame`` with ``share`` of its labels moved to another class at random, and those rows."""
    rng = np.random.default_rng(seed)
    classes = sorted(frame["label"].unique())
    flipped = np.sort(rng.choice(len(frame), size=round(share * len(frame)), replace=False))
    noisy = frame.copy()
    for row in flipped:
        others = [c for c in classes if c != noisy.at[row, "label"]]
        noisy.at[row, "label"] = others[rng.integers(len(others))]
    return noisy, flipped


def score(result, flipped: np.ndarray) -> dict:
    """Precision/recall of the label findings against the flipped rows."""
    truth = set(flipped.tolist())
    k = len(truth)
    ranked = result.rows["row"].to_numpy()[np.argsort(result.label_quality, kind="stable")]
    at_k = len(truth & set(ranked[:k].tolist())) / k
    flagged = set(result.findings.loc[result.findings["issue"] == "label", "row"].tolist())
    hits = len(truth & flagged)
    return {
        "flipped": k,
        "precision_at_k": round(at_k, 3),
        "recall_at_k": round(at_k, 3),
        "flagged": len(flagged),
        "flagged_precision": round(hits / max(len(flagged), 1), 3),
        "flagged_recall": round(hits / k, 3),
    }


def train_and_test(
    files: dict[str, Path], output: Path, epochs: float | None, max_length: int | None
) -> tuple[dict, float]:
    from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train

    config = RunConfig(
        data=DataConfig(
            data=str(files["train"]), validation=str(files["validation"]), test=str(files["test"])
        ),
        model=ModelConfig(max_length=max_length),
        train=TrainConfig(
            output=str(output), overwrite=True, progress=False, report=False, use_cpu=True, epochs=epochs
        ),
    )
    result = train(config)
    return result.test_metrics, result.train_seconds


def measure(dataset: str, args: argparse.Namespace, work: Path) -> dict:
    from texttune.assets import load_builtin_dataset
    from texttune.audit import audit
    from texttune.config import AuditConfig, DataConfig

    splits = load_builtin_dataset(dataset)
    frames = {name: split.to_pandas()[["text", "label"]] for name, split in splits.items()}
    noisy, flipped = flip_labels(frames["train"], args.share, args.seed)
    files = {"validation": work / "validation.parquet", "test": work / "test.parquet"}
    frames["validation"].to_parquet(files["validation"], index=False)
    frames["test"].to_parquet(files["test"], index=False)
    noisy_file, clean_file = work / "noisy.parquet", work / "clean.parquet"
    noisy.to_parquet(noisy_file, index=False)
    started = time.perf_counter()
    result = audit(
        DataConfig(data=str(noisy_file), validation=str(files["validation"]), test=str(files["test"])),
        AuditConfig(
            output=str(work / "audit"), strategy=args.strategy, fix=args.fix, output_data=str(clean_file),
            overwrite=True, max_length=args.max_length,
        ),
    )  # fmt: skip
    row = {
        "dataset": dataset,
        "rows": len(noisy),
        "strategy": args.strategy,
        "fix": args.fix,
        "max_length": args.max_length,
        **score(result, flipped),
        "out_of_fold_accuracy": result.summary.get("out_of_fold_accuracy"),
        "audit_seconds": round(time.perf_counter() - started, 1),
        "clean_rows": result.summary["fix"]["rows"],
    }
    if args.train:
        for name, data in (("noisy", noisy_file), ("clean", clean_file)):
            metrics, seconds = train_and_test(
                {**files, "train": data}, work / f"run-{name}", args.epochs, args.max_length
            )
            row[f"{name}_test_accuracy"] = round(metrics["accuracy"], 4)
            row[f"{name}_test_ece"] = [round(metrics[k], 4) for k in ("ece_uncalibrated", "ece")]
            row[f"{name}_train_seconds"] = round(seconds, 1)
    return row


def main() -> None:
    from texttune.hardware import describe_machine

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="sms_spam,bbc_news,rotten_tomatoes")
    parser.add_argument("--share", type=float, default=0.05, help="Share of training labels flipped.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategy", default="freeze", choices=("freeze", "full"))
    parser.add_argument("--train", action="store_true", help="Also train on the noisy and the cleaned data.")
    parser.add_argument("--epochs", type=float, help="--train: epochs (default: texttune's recipe).")
    parser.add_argument(
        "--fix", default="drop", choices=("drop", "relabel"), help="The cleaned copy trained on."
    )
    parser.add_argument(
        "--max-length", type=int, help="Tokens per text, audit and training (default: the model's)."
    )
    parser.add_argument("--results", default="runs/audit_noise.jsonl", help="Rows are appended here.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(describe_machine(), flush=True)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets.split(","):
        with tempfile.TemporaryDirectory(prefix="audit-noise-") as work:
            row = measure(dataset, args, Path(work))
        print(json.dumps(row), flush=True)
        with results.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
