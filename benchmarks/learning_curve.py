"""Test accuracy and training time against training-set size, per strategy, on built-in datasets.

For each dataset and size, a seeded sample of the training split is drawn (8, 32 or 128 examples per
class, or N rows stratified, or all rows) and given to texttune with the same number of validation rows
drawn from the validation split (at most 500); every strategy then trains with texttune's defaults (the
data-size recipe: no learning rate, batch size or epochs given) on the built-in model, and is scored on
the test split (a fixed stratified sample of --test-rows). TF-IDF + logistic regression (scikit-learn) is
the bag-of-words baseline, and ``bert-recipe`` is full fine-tuning as texttune did it before the recipe
(BERT's pooler, batch 32, 3 epochs whatever the data size). Small sizes are repeated over --seeds seeds; the table shows the mean and the
spread (standard deviation) of test accuracy and the mean training seconds, the best method, and what
texttune's default (``--strategy auto``) picks at that size, with its distance from the best. Results are appended to a
JSONL file as they come, so an interrupted run keeps what it measured and --table-only prints it.

    python benchmarks/learning_curve.py                       # everything (hours on 2 CPU cores)
    python benchmarks/learning_curve.py --datasets sms_spam --sizes 8,32 --methods setfit,tfidf
    python benchmarks/learning_curve.py --table-only --results runs/learning_curve.jsonl
    python benchmarks/learning_curve.py --datasets chinese_reviews --sizes 4000 --seeds 1 --test-rows 1737 \
        --methods tfidf,freeze,lora,full --model multilingual-e5-small --tfidf char --results runs/zh.jsonl
    python benchmarks/learning_curve.py --datasets chinese_reviews --sizes all --test-rows 1737 \
        --methods tfidf,full --model multilingual-e5-small --tfidf char --max-length 256
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

METHODS = ("tfidf", "bert-recipe", "freeze", "setfit", "lora", "full")
#: texttune before its data-size recipe: full fine-tuning from BERT's pooler, batch 32, 3 epochs, any data size.
BERT_RECIPE = {"pooling": "pooler", "batch_size": 32, "epochs": 3.0}
SIZES = ("8", "32", "128", "1000", "all")
#: Tokens per text of the transformer methods unless --max-length says otherwise.
MAX_LENGTH = 128
DATASETS = ("rotten_tomatoes", "sms_spam", "tweet_sentiment")
#: Sizes given per class (the few-shot regime) rather than as a total number of rows.
PER_CLASS = {"8", "32", "128"}


def sample(frame: pd.DataFrame, size: str, seed: int) -> pd.DataFrame:
    """``size`` examples per class (8/32/128), ``size`` stratified rows, or all rows."""
    if size == "all":
        return frame
    if size in PER_CLASS:
        rng = np.random.default_rng(seed)
        parts = [
            group.iloc[rng.permutation(len(group))[: int(size)]]
            for _, group in frame.groupby("label", sort=True)
        ]
        return pd.concat(parts).sample(frac=1.0, random_state=seed)
    return stratified_rows(frame, int(size), seed)


def stratified_rows(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """About ``rows`` rows with the label shares of ``frame``, shuffled."""
    share = min(1.0, rows / len(frame))
    parts = [group.sample(frac=share, random_state=seed) for _, group in frame.groupby("label", sort=True)]
    return pd.concat(parts).sample(frac=1.0, random_state=seed)


#: TF-IDF features per --tfidf: word 1-2-grams, or character 1-3-grams for languages written without spaces.
TFIDF = {"word": {"ngram_range": (1, 2)}, "char": {"analyzer": "char", "ngram_range": (1, 3)}}


def tfidf_model(kind: str = "word"):
    """The bag-of-words baseline, unfitted: TF-IDF (--tfidf ``kind``) + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(sublinear_tf=True, **TFIDF[kind]), LogisticRegression(max_iter=1000, C=10.0)
    )


def tfidf(train: pd.DataFrame, test: pd.DataFrame, kind: str = "word") -> tuple[float, float]:
    started = time.perf_counter()
    model = tfidf_model(kind).fit(train["text"], train["label"])
    seconds = time.perf_counter() - started
    return float((model.predict(test["text"]) == test["label"]).mean()), seconds


def texttune_run(
    method: str,
    files: dict[str, Path],
    folder: Path,
    seed: int,
    model: str = "minilm",
    learning_rate: float | None = None,
    max_length: int = MAX_LENGTH,
) -> tuple[float, float]:
    from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train
    from texttune.config import StrategyConfig

    fixed = BERT_RECIPE if method == "bert-recipe" else {}
    config = RunConfig(
        data=DataConfig(
            data=str(files["train"]), validation=str(files["validation"]), test=str(files["test"])
        ),
        model=ModelConfig(model=model, max_length=max_length, pooling=fixed.get("pooling", "auto")),
        train=TrainConfig(
            output=str(folder),
            overwrite=True,
            seed=seed,
            progress=False,
            report=False,
            use_cpu=True,
            batch_size=fixed.get("batch_size"),
            epochs=fixed.get("epochs"),
            learning_rate=learning_rate,
        ),
        strategy=StrategyConfig(strategy="full" if fixed else method),
    )
    result = train(config)
    return float(result.test_metrics["accuracy"]), result.train_seconds


def measure(dataset: str, size: str, seed: int, methods, args: argparse.Namespace, work: Path) -> list[dict]:
    from texttune.assets import load_builtin_dataset

    splits = load_builtin_dataset(dataset)
    frames = {name: split.to_pandas()[["text", "label"]] for name, split in splits.items()}
    train = sample(frames["train"], size, seed)
    validation = (
        sample(frames["validation"], size, seed)
        if size in PER_CLASS
        else stratified_rows(frames["validation"], min(len(train), 500), seed)
    )
    test = stratified_rows(frames["test"], args.test_rows, 0)  # the same test rows for every size and seed
    files = {}
    for name, frame in (("train", train), ("validation", validation), ("test", test)):
        files[name] = work / f"{name}.parquet"  # not CSV: some tweets hold a bare carriage return
        frame.to_parquet(files[name], index=False)
    rows = []
    for method in methods:
        if method == "tfidf":
            accuracy, seconds = tfidf(train, test, args.tfidf)
        else:
            accuracy, seconds = texttune_run(
                method, files, work / method, seed, args.model, args.learning_rate, args.max_length
            )
        row = dict(
            dataset=dataset, size=size, seed=seed, method=method, model=args.model, rows=len(train), test_rows=len(test),
            classes=int(train["label"].nunique()), accuracy=round(accuracy, 4), seconds=round(seconds, 1),
        )  # fmt: skip
        if args.learning_rate and method != "tfidf":
            row["learning_rate"] = args.learning_rate
        if args.max_length != MAX_LENGTH and method != "tfidf":
            row["max_length"] = args.max_length
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def default_strategy(row: dict) -> str:
    """What ``--strategy auto`` (texttune's default) picks for the training rows of a result."""
    from texttune import RunConfig
    from texttune.recipe import choose_strategy

    classes = row.get("classes") or row["rows"] // int(row["size"])  # older results: per-class sizes only
    return choose_strategy(RunConfig(), "single_label", row["rows"], classes).strategy.strategy


def table(results: list[dict]) -> str:
    """Markdown: one row per dataset and size, one column per method (mean ± spread, seconds), the best
    method, and texttune's default (``--strategy auto``) with its distance from the best."""
    keys = sorted({(r["dataset"], r["size"]) for r in results}, key=lambda k: (k[0], _size_order(k[1])))
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    lines = [
        "| dataset | size | " + " | ".join(methods) + " | best | default (vs best) |",
        "|---|---|" + "---:|" * len(methods) + "---|---|",
    ]
    for dataset, size in keys:
        cells, means = [], {}
        for method in methods:
            runs = [r for r in results if (r["dataset"], r["size"], r["method"]) == (dataset, size, method)]
            if not runs:
                cells.append("")
                continue
            accuracy = [r["accuracy"] for r in runs]
            means[method] = statistics.mean(accuracy)
            spread = f" ± {statistics.stdev(accuracy):.3f}" if len(accuracy) > 1 else ""
            seconds = statistics.mean(r["seconds"] for r in runs)
            cells.append(f"{means[method]:.3f}{spread} ({seconds:.0f} s)")
        label = f"{size}/class" if size in PER_CLASS else size
        best = max(means, key=means.get)
        pick = default_strategy(next(r for r in results if (r["dataset"], r["size"]) == (dataset, size)))
        gap = f"{means[pick] - means[best]:+.3f}" if pick in means else "not run"
        lines.append(f"| {dataset} | {label} | " + " | ".join(cells) + f" | {best} | {pick} ({gap}) |")
    return "\n".join(lines)


def _size_order(size: str) -> int:
    return SIZES.index(size) if size in SIZES else len(SIZES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--sizes", default=",".join(SIZES), help="8, 32, 128 per class; a row count; all")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the per-class sizes (others: 1)")
    parser.add_argument("--test-rows", type=int, default=1000, help="stratified sample of the test split")
    parser.add_argument(
        "--model", default="minilm", help="the model texttune fine-tunes (built-in name or folder)"
    )
    parser.add_argument(
        "--tfidf", default="word", choices=sorted(TFIDF), help="char: for languages without spaces"
    )
    parser.add_argument(
        "--learning-rate", type=float, help="instead of the default learning rate (transformer methods)"
    )
    parser.add_argument(
        "--max-length", type=int, default=MAX_LENGTH, help="tokens per text (transformer methods)"
    )
    parser.add_argument("--results", default="runs/learning_curve.jsonl", help="JSONL file results go to")
    parser.add_argument("--table-only", action="store_true", help="print the table of --results and stop")
    args = parser.parse_args()
    results_path = Path(args.results)
    if not args.table_only:
        from texttune.hardware import describe_machine

        print(describe_machine(), flush=True)
        logging.getLogger("texttune").setLevel(logging.WARNING)
        results_path.parent.mkdir(parents=True, exist_ok=True)
        methods = args.methods.split(",")
        for dataset in args.datasets.split(","):
            for size in args.sizes.split(","):
                for seed in range(args.seeds if size in PER_CLASS else 1):
                    with tempfile.TemporaryDirectory() as tmp:
                        rows = measure(dataset, size, seed, methods, args, Path(tmp))
                    with results_path.open("a", encoding="utf-8") as out:
                        out.writelines(json.dumps(row) + "\n" for row in rows)
    results = [json.loads(line) for line in results_path.read_text(encoding="utf-8").splitlines() if line]
    print(table(results))


if __name__ == "__main__":
    main()
