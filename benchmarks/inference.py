"""Inference speed and accuracy, side by side: `transformers.pipeline`, texttune on PyTorch, ONNX fp32 and ONNX
int8, and the students `texttune distill` makes of the same run.

For each dataset (default `rotten_tomatoes` and `tweet_sentiment`):

1. a teacher: the built-in `minilm` fine-tuned on --train-rows labelled training rows (or --teacher
   DATASET=RUN), exported to ONNX fp32 and to ONNX int8 (with the export's accuracy check);
2. its students, distilled on the teacher's soft labels over those rows plus --unlabelled-rows other
   training texts given without labels: `static` (token vectors, each the teacher's average output at
   the token in those texts: their mean and 3-token filters, then a head with one hidden layer; a moving
   average of its weights kept; with --augment N, a second one, row `student static
   aug`, also learns from N variants of each text, as `texttune distill --augment N` does) and
   `layers:2` (the teacher's first two layers), the latter exported to ONNX int8;
3. TF-IDF + logistic regression fitted on the same labelled rows;
4. every system classifies the same test texts at batch 1 and batch 256 (interleaved rounds, the best
   of each kept); samples/s and test accuracy are printed, with the ratios the targets are stated in.
   Before the rounds, each system predicts the texts untimed (--warm-passes, default 2): the speed is the
   steady state a long job runs at. ONNX Runtime's memory arena page-faults through its first two passes
   over new batch shapes (about 0.9 GB of fresh pages for these models, whatever their depth): a fixed
   cost, which weighs most on the fastest model and so shrinks the two-layer student's lead.
   The pipeline loads the run as `BertForSequenceClassification`, which classifies from BERT's pooler,
   not from the run's mean pooling: its speed is comparable (the same layers run), its labels are not,
   so its accuracy is not shown.

Then (--file-rows, default 1,000,000) a CSV of that many rows is predicted end to end in a child
process (chunked reading and writing, as `texttune predict --data` does) by the static student, and its
first --teacher-file-rows by the teacher's ONNX int8 export: rows/s and peak RSS of each.

    OMP_NUM_THREADS=2 python benchmarks/inference.py                       # about an hour on 2 cores
    python benchmarks/inference.py --quick                                 # minutes: small runs, 20k-row file
    python benchmarks/inference.py --datasets rotten_tomatoes --teacher rotten_tomatoes=runs/rt
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from learning_curve import tfidf_model  # noqa: E402
from stream_memory import predict_in_child, write_csv  # noqa: E402

PIPELINE = "transformers.pipeline"
TEACHER_INT8 = "texttune onnx int8"
LAYERS = "student layers:2 int8"
STATIC = "student static"
TFIDF = "tf-idf + logreg"
AUGMENTED = "student static aug"


def write_splits(dataset: str, work: Path, train_rows: int, unlabelled_rows: int) -> dict[str, Path]:
    """The labelled training rows, the unlabelled texts (the next training rows) and the validation
    split (at most 1,000 rows) as files; the teacher's run config points at them."""
    from texttune.assets import load_builtin_dataset

    splits = load_builtin_dataset(dataset)
    train = splits["train"].to_pandas().sample(frac=1.0, random_state=0)
    files = {name: work / f"{dataset}-{name}.parquet" for name in ("train", "unlabelled", "validation")}
    train[:train_rows].to_parquet(files["train"], index=False)
    train[train_rows : train_rows + unlabelled_rows][["text"]].to_parquet(files["unlabelled"], index=False)
    splits["validation"].to_pandas()[:1000].to_parquet(files["validation"], index=False)
    return files


def teacher_run(files: dict[str, Path], folder: Path, epochs: float) -> Path:
    from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train

    config = RunConfig(
        data=DataConfig(data=str(files["train"]), validation=str(files["validation"])),
        model=ModelConfig(model="minilm", max_length=128),
        train=TrainConfig(output=str(folder), epochs=epochs, progress=False, report=False, use_cpu=True),
    )
    return train(config).output


def students(teacher: Path, files: dict[str, Path], work: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The static student, with ``--augment N`` a second one also trained on N variants of each text, and
    the layers:2 student exported to ONNX int8 (accuracy-checked)."""
    from texttune.config import DistillConfig
    from texttune.distill import distill
    from texttune.export import export_onnx

    made = {}
    kinds = [("static", "static", 0), ("layers:2", "layers:2", 0)]
    if args.augment:
        kinds.append((AUGMENTED, "static", args.augment))
    for name, kind, augment in kinds:
        output = work / (f"student-{kind.replace(':', '')}" + (f"-augment{augment}" if augment else ""))
        options = DistillConfig(
            output=str(output),
            student=kind,
            unlabelled=str(files["unlabelled"]),
            overwrite=True,
            train_vectors=args.train_vectors and kind == "static",
            augment=augment,
        )
        made[name] = distill(teacher, options).output
    export_onnx(made["layers:2"], work / "student-layers2-int8", quantize="int8", overwrite=True)
    made["layers:2 int8"] = work / "student-layers2-int8"
    return made


def timed(fn, texts: list[str], batch: int) -> tuple[float, np.ndarray]:
    """samples/s and the predicted label ids, calling ``fn`` on consecutive slices of ``batch`` texts."""
    fn(texts[:batch])  # warm-up: first-call allocations, ORT kernel selection
    started = time.perf_counter()
    labels = np.concatenate([fn(texts[i : i + batch]) for i in range(0, len(texts), batch)])
    return len(texts) / (time.perf_counter() - started), labels


def systems(teacher: Path, work: Path, made: dict[str, Path], tfidf, names: list[str], max_length: int):
    """name -> make(batch) -> fn(texts) -> label ids, for every system compared."""
    from transformers import pipeline

    from texttune import Predictor

    classifier = pipeline("text-classification", model=str(teacher), device=-1)
    label_of = {name: i for i, name in enumerate(names)}

    def via_pipeline(batch: int):
        def fn(chunk):
            out = classifier(chunk, batch_size=batch, truncation=True, max_length=max_length)
            return np.array([label_of[o["label"]] for o in out])

        return fn

    def via_predictor(folder: Path, backend: str):
        def make(batch: int):
            predictor = Predictor.load(folder, backend=backend, device="cpu", batch_size=batch)
            return lambda chunk: predictor.logits(chunk).argmax(axis=1)

        return make

    def via_tfidf(batch: int):
        return lambda chunk: np.array([label_of[label] for label in tfidf.predict(chunk)])

    return {
        PIPELINE: via_pipeline,
        "texttune torch": via_predictor(teacher, "torch"),
        "texttune onnx fp32": via_predictor(work / "onnx-fp32", "onnx"),
        TEACHER_INT8: via_predictor(work / "onnx-int8", "onnx"),
        LAYERS: via_predictor(made["layers:2 int8"], "onnx"),
        STATIC: via_predictor(made["static"], "torch"),
        **({AUGMENTED: via_predictor(made[AUGMENTED], "torch")} if AUGMENTED in made else {}),
        TFIDF: via_tfidf,
    }


def measure(
    runners: dict, texts: list[str], truth: np.ndarray, n1: int, rounds: int, warm_passes: int
) -> dict[str, tuple]:
    """(batch-1 samples/s, batch-256 samples/s, accuracy) per system, best of ``rounds`` interleaved rounds
    after ``warm_passes`` untimed passes of each."""
    for one, many in runners.values():
        for _ in range(warm_passes):
            timed(one, texts[:n1], 1)
            timed(many, texts, 256)
    rows: dict[str, tuple[float, float, float]] = {}
    for _ in range(rounds):  # A, B, C, ..., A, B, ...: a burst of other load hits every system alike
        for name, (one, many) in runners.items():
            rate1, _ = timed(one, texts[:n1], 1)
            rate256, labels = timed(many, texts, 256)
            old = rows.get(name, (0.0, 0.0, 0.0))
            rows[name] = (max(old[0], rate1), max(old[1], rate256), float((labels == truth).mean()))
    return rows


def benchmark_dataset(dataset: str, args: argparse.Namespace, work: Path) -> dict[str, tuple]:
    from texttune import Predictor
    from texttune.assets import load_builtin_dataset
    from texttune.export import export_onnx

    work.mkdir(parents=True)
    files = write_splits(dataset, work, args.train_rows, args.unlabelled_rows)
    given = dict(item.split("=", 1) for item in args.teacher)
    teacher = Path(given[dataset]) if dataset in given else teacher_run(files, work / "teacher", args.epochs)
    export_onnx(teacher, work / "onnx-fp32", overwrite=True, check_parity=False)
    export_onnx(teacher, work / "onnx-int8", quantize="int8", overwrite=True)
    made = students(teacher, files, work, args)
    labelled = pd.read_parquet(files["train"])
    tfidf = tfidf_model().fit(labelled["text"], labelled["label"])

    test = load_builtin_dataset(dataset)["test"].shuffle(seed=0)
    n = min(args.texts, len(test))
    texts, gold = list(test["text"][:n]), list(test["label"][:n])
    reference = Predictor.load(teacher, backend="torch", device="cpu")
    names = reference.label_names
    truth = np.array([names.index(g) for g in gold])
    made_systems = systems(teacher, work, made, tfidf, names, reference.manifest.max_length)
    runners = {name: (make(1), make(256)) for name, make in made_systems.items()}
    print(
        f"\n{dataset}: teacher minilm on {args.train_rows} labelled rows; students also on "
        f"{args.unlabelled_rows} unlabelled texts; {n} test texts (batch 1: the first {args.texts_batch1}), "
        f"best of {args.rounds} interleaved rounds after {args.warm_passes} untimed passes",
        flush=True,
    )
    rows = measure(runners, texts, truth, args.texts_batch1, args.rounds, args.warm_passes)
    print_table(rows)
    return rows


def print_table(rows: dict[str, tuple]) -> None:
    header = f"{'system':<24}{'batch 1 /s':>12}{'batch 256 /s':>14}{'x pipeline@256':>16}{'accuracy':>10}"
    print(header)
    print("-" * len(header))
    base = rows[PIPELINE][1]
    for name, (rate1, rate256, accuracy) in rows.items():
        shown = "n/a" if name == PIPELINE else f"{accuracy:.4f}"
        print(f"{name:<24}{rate1:>12.1f}{rate256:>14.1f}{rate256 / base:>16.2f}{shown:>10}")
    teacher, static, layers = rows["texttune torch"], rows[STATIC], rows[LAYERS]
    print(
        f"static_vs_pipeline_b256={static[1] / base:.1f} "
        f"static_minus_teacher_points={100 * (static[2] - teacher[2]):.2f} "
        f"static_minus_tfidf_points={100 * (static[2] - rows[TFIDF][2]):.2f} "
        f"layers2_int8_vs_teacher_int8_b256={layers[1] / rows[TEACHER_INT8][1]:.2f} "
        f"layers2_minus_teacher_points={100 * (layers[2] - teacher[2]):.2f}"
        + (
            f" augmented_minus_teacher_points={100 * (rows[AUGMENTED][2] - teacher[2]):.2f}"
            if AUGMENTED in rows
            else ""
        ),
        flush=True,
    )


def big_file(work: Path, rows: int, teacher_rows: int, dataset: str) -> None:
    """Predict a ``rows``-row CSV with the static student and its first ``teacher_rows`` with the teacher's
    ONNX int8, each in a child process, and print rows/s and peak RSS."""
    print(f"\npredicting a CSV end to end in a child process ({dataset} runs, chunked as `texttune predict`)")
    print(f"{'system':<24}{'rows':>10}{'seconds':>9}{'rows/s':>9}{'peak RSS MB':>13}")
    for name, folder, backend, n in (
        (STATIC, work / dataset / "student-static", "torch", rows),
        (TEACHER_INT8, work / dataset / "onnx-int8", "onnx", teacher_rows),
    ):
        data, output = work / f"rows-{n}.csv", work / "predictions.csv"
        if not data.exists():
            write_csv(data, n)
        out = predict_in_child(folder, data, output, backend)
        assert out["rows"] == n, out
        print(f"{name:<24}{n:>10}{out['seconds']:>9.0f}{n / out['seconds']:>9.0f}{out['peak_rss_mb']:>13.0f}")
        output.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="rotten_tomatoes,tweet_sentiment")
    parser.add_argument(
        "--teacher", action="append", default=[], metavar="DATASET=RUN", help="Use this run as the teacher."
    )
    parser.add_argument("--quick", action="store_true", help="Small runs and a 20,000-row file.")
    parser.add_argument("--train-rows", type=int, help="Labelled rows of the teacher (default 4000).")
    parser.add_argument("--unlabelled-rows", type=int, help="More texts for the students (default 10000).")
    parser.add_argument("--epochs", type=float, default=1.0, help="The teacher's epochs.")
    parser.add_argument(
        "--no-train-vectors",
        dest="train_vectors",
        action="store_false",
        help="The static student keeps model2vec's token vectors and trains its head alone.",
    )
    parser.add_argument(
        "--augment",
        type=int,
        default=0,
        help="Also a static student on N variants of each text (distill --augment N).",
    )
    parser.add_argument("--texts", type=int, help="Test texts at batch 256 (default 2000, quick 512).")
    parser.add_argument("--texts-batch1", type=int, help="Test texts at batch 1 (default 200, quick 64).")
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved rounds; the best of each is kept.")
    parser.add_argument("--warm-passes", type=int, default=2, help="Untimed passes of each system first.")
    parser.add_argument("--file-rows", type=int, help="Rows of the CSV the static student predicts.")
    parser.add_argument(
        "--teacher-file-rows", type=int, default=20_000, help="Rows of it the teacher predicts."
    )
    args = parser.parse_args()
    quick = args.quick
    args.train_rows = args.train_rows or (500 if quick else 4000)
    args.unlabelled_rows = (
        args.unlabelled_rows if args.unlabelled_rows is not None else (500 if quick else 10_000)
    )
    args.texts = args.texts or (512 if quick else 2000)
    args.texts_batch1 = args.texts_batch1 or (64 if quick else 200)
    args.file_rows = args.file_rows or (20_000 if quick else 1_000_000)
    if quick:
        args.teacher_file_rows = min(args.teacher_file_rows, 2000)

    from texttune.hardware import describe_machine

    print(describe_machine(), flush=True)
    logging.basicConfig(level=logging.WARNING)
    import datasets
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs", flush=True)
    work = Path(tempfile.mkdtemp(prefix="texttune-inference-"))
    names = args.datasets.split(",")
    for dataset in names:
        benchmark_dataset(dataset, args, work / dataset)
    big_file(work, args.file_rows, args.teacher_file_rows, names[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
