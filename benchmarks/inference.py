"""Inference throughput: `transformers.pipeline` vs texttune on PyTorch, ONNX and ONNX int8, side by side.

Trains a quick run of the built-in `minilm` on `rotten_tomatoes` (or takes `--run`), exports it to ONNX
fp32 and int8, then classifies the same test texts with each, at batch 1 and batch 64, and reports
samples/s and accuracy. The last line holds the ratios to the pipeline at batch 64.

    OMP_NUM_THREADS=2 python benchmarks/inference.py --quick
    python benchmarks/inference.py --run runs/rt --texts 2000
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


def quick_run(folder: Path, train_samples: int) -> Path:
    from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train

    config = RunConfig(
        data=DataConfig(data="rotten_tomatoes", max_train_samples=train_samples, max_eval_samples=500),
        model=ModelConfig(model="minilm", max_length=128),
        train=TrainConfig(output=str(folder), epochs=1, learning_rate=1e-4, progress=False),
    )
    return train(config).output


def timed(fn, texts: list[str], batch: int) -> tuple[float, np.ndarray]:
    """samples/s and the predicted label ids, calling ``fn`` on consecutive slices of ``batch`` texts."""
    fn(texts[:batch])  # warm-up: first-call allocations, ORT kernel selection
    started = time.perf_counter()
    labels = np.concatenate([fn(texts[i : i + batch]) for i in range(0, len(texts), batch)])
    return len(texts) / (time.perf_counter() - started), labels


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run", help="A run of a single-label model (default: train a quick one on rotten_tomatoes)."
    )
    parser.add_argument("--quick", action="store_true", help="Fewer texts and a smaller training run.")
    parser.add_argument("--texts", type=int, help="Test texts at batch 64 (default 1000, quick 384).")
    parser.add_argument("--texts-batch1", type=int, help="Test texts at batch 1 (default 300, quick 100).")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="Interleaved rounds; the best of each is kept (damps other load).",
    )
    args = parser.parse_args()
    from texttune.hardware import describe_machine

    print(describe_machine(), flush=True)
    logging.basicConfig(level=logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    import torch
    from transformers import pipeline

    from texttune import Predictor
    from texttune.assets import load_builtin_dataset
    from texttune.export import export_onnx

    n64 = args.texts or (384 if args.quick else 1000)
    n1 = args.texts_batch1 or (100 if args.quick else 300)
    work = Path(tempfile.mkdtemp(prefix="texttune-inference-"))
    run = Path(args.run) if args.run else quick_run(work / "run", 1000 if args.quick else 3000)
    export_onnx(run, work / "onnx-fp32", overwrite=True, check_parity=False)
    export_onnx(run, work / "onnx-int8", quantize="int8", overwrite=True, check_parity=False)

    test = load_builtin_dataset("rotten_tomatoes")["test"].shuffle(seed=0)
    texts, gold = list(test["text"][:n64]), list(test["label"][:n64])
    torch_predictor = Predictor.load(run, backend="torch", device="cpu")
    names = torch_predictor.label_names
    truth = np.array([names.index(g) for g in gold])

    classifier = pipeline("text-classification", model=str(run), device=-1)
    label_of = {name: i for i, name in enumerate(names)}

    def via_pipeline(batch: int):
        def fn(chunk):
            out = classifier(
                chunk, batch_size=batch, truncation=True, max_length=torch_predictor.manifest.max_length
            )
            return np.array([label_of[o["label"]] for o in out])

        return fn

    def via_predictor(predictor):
        def fn(chunk):
            return predictor.logits(chunk).argmax(axis=1)

        return fn

    systems = {
        "transformers.pipeline": lambda b: via_pipeline(b),
        "texttune torch": lambda b: via_predictor(
            Predictor.load(run, backend="torch", device="cpu", batch_size=b)
        ),
        "texttune onnx fp32": lambda b: via_predictor(Predictor.load(work / "onnx-fp32", batch_size=b)),
        "texttune onnx int8": lambda b: via_predictor(Predictor.load(work / "onnx-int8", batch_size=b)),
    }
    print(
        f"inference on {len(texts)} rotten_tomatoes test texts (batch 1: the first {n1}), best of "
        f"{args.rounds} interleaved rounds; run {run}; "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs"
    )
    runners = {name: (make(1), make(64)) for name, make in systems.items()}
    rows: dict[str, tuple[float, float, float]] = {}
    for _ in range(args.rounds):  # A, B, C, D, A, B, ...: a burst of other load hits every system alike
        for name, (one, many) in runners.items():
            rate1, _ = timed(one, texts[:n1], 1)
            rate64, labels = timed(many, texts, 64)
            old = rows.get(name, (0.0, 0.0, 0.0))
            rows[name] = (max(old[0], rate1), max(old[1], rate64), float((labels == truth).mean()))
    header = f"{'system':<24}{'batch 1 /s':>12}{'batch 64 /s':>13}{'x pipeline@64':>15}{'accuracy':>10}"
    print(header)
    print("-" * len(header))
    base = rows["transformers.pipeline"][1]
    for name, (rate1, rate64, accuracy) in rows.items():
        print(f"{name:<24}{rate1:>12.1f}{rate64:>13.1f}{rate64 / base:>15.2f}{accuracy:>10.4f}")
    int8, fp32 = rows["texttune onnx int8"], rows["texttune onnx fp32"]
    print(
        f"onnx_int8_vs_pipeline_b64={int8[1] / base:.2f} onnx_fp32_vs_pipeline_b64={fp32[1] / base:.2f} "
        f"int8_accuracy_drop_points={100 * (rows['transformers.pipeline'][2] - int8[2]):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
