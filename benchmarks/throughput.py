"""Training throughput of the built-in `minilm`, three ways side by side in one run.

  (a) tutorial: `tokenizer(..., padding="max_length", truncation=True)` + `Trainer` defaults (batch 8);
  (b) dynamic:  `Trainer` + `DataCollatorWithPadding` + the default random sampler, at batch 32 (texttune's
      default batch size);
  (c) texttune: `texttune.train` with its defaults (batch 32, dynamic padding, length-grouped batches);
  (d) texttune with `--max-tokens-per-batch` (with `--levers`: a lever, not a default);
  (e) texttune with `--precision fp32` (with `--levers`: what the default bf16 autocast gains on CPUs
      with native bf16; the same as (c) elsewhere).

Each runs in its own process (so peak RSS is its own) on the same training rows and epochs, and
prints train samples/s, real (non-pad) tokens/s, the pad share, the FLOP/s achieved on real tokens as a
share of this machine's fp32 matmul peak (measured here first; "% own" divides by the peak of the
precision the variant computes in, measured around it in its process), peak RSS and test accuracy. Time is
summed over optimizer steps only (evaluation and checkpoints excluded; the first step is a warm-up and
not counted), the same way for every variant.

(a) computes about 1 sample/s, so it is timed on a fixed number of steps only. Its accuracy comes from
(a*): the same recipe with dynamic padding instead of `max_length` padding (same seed, batch 8, order
and learning rate). Pad tokens are masked out of attention and the [CLS] output, so both compute the
same function; the worker checks this by comparing their losses on the same batch.

    OMP_NUM_THREADS=2 python benchmarks/throughput.py --quick
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

VARIANTS = {
    "tutorial": "(a) max_length pad, batch 8",
    "tutorial_equivalent": "(a*) = (a) with dynamic pad",
    "dynamic": "(b) dynamic pad, random, b32",
    "texttune": "(c) texttune train defaults",
    "token_budget": "(d) texttune + token budget",
    "texttune_fp32": "(e) texttune, --precision fp32",
}
TEXTTUNE_VARIANTS = ("texttune", "token_budget", "texttune_fp32")


# ----------------------------------------------------------------------------------------- measuring


def matmul_peak_gflops(dtype: str = "fp32", seconds: float = 1.5, repeats: int = 3) -> float:
    """Best GFLOP/s of square matmuls (1024, 1536, 2048) with the current thread setting: the machine's peak."""
    import torch

    kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    best = 0.0
    for size in (1024, 1536, 2048):
        a, b = torch.randn(size, size, dtype=kind), torch.randn(size, size, dtype=kind)
        torch.mm(a, b)
        for _ in range(repeats):
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds / repeats / 3:
                torch.mm(a, b)
                count += 1
            best = max(best, 2 * size**3 * count / (time.perf_counter() - started) / 1e9)
    return best


def make_meter(stop_after: int | None = None, warmup_steps: int = 1):
    """A TrainerCallback that times optimizer steps and counts real and padded tokens of training batches.

    The first ``warmup_steps`` steps (allocations, first-call kernel selection) are run but not counted.
    """
    from transformers import TrainerCallback

    class Meter(TrainerCallback):
        def __init__(self):
            self.seconds = 0.0
            self.steps = 0  # counted steps
            self.seen = 0  # all steps
            self.totals = dict.fromkeys(("samples", "real_tokens", "padded_tokens", "sum_len_squared"), 0)
            self.pending = dict(self.totals)
            self.hook = None
            self._started = 0.0

        def __getattr__(self, name):
            totals = self.__dict__.get("totals", {})
            if name in totals:
                return totals[name]
            raise AttributeError(name)

        def _count(self, module, args, kwargs):
            if not module.training:
                return
            mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids")
            lengths = mask.sum(dim=1)
            self.pending["samples"] += int(ids.shape[0])
            self.pending["real_tokens"] += int(lengths.sum())
            self.pending["padded_tokens"] += int(ids.numel())
            self.pending["sum_len_squared"] += int((lengths.double() ** 2).sum())

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.hook = model.register_forward_pre_hook(self._count, with_kwargs=True)

        def on_step_begin(self, args, state, control, **kwargs):
            self._started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            elapsed = time.perf_counter() - self._started
            self.seen += 1
            if self.seen > warmup_steps:
                self.seconds += elapsed
                self.steps += 1
                for key, value in self.pending.items():
                    self.totals[key] += value
            self.pending = dict.fromkeys(self.pending, 0)
            if stop_after is not None and self.steps >= stop_after:
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):
            if self.hook is not None:
                self.hook.remove()

    return Meter()


def training_flops(meter, model_config, non_embedding_params: int) -> float:
    """FLOPs of forward + backward on the real tokens: 6 x params x tokens plus attention's L^2 terms."""
    layers, hidden = model_config.num_hidden_layers, model_config.hidden_size
    return 6 * non_embedding_params * meter.real_tokens + 12 * layers * hidden * meter.sum_len_squared


def non_embedding_parameters(model) -> int:
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    return sum(p.numel() for p in model.parameters()) - embedding


# ----------------------------------------------------------------------------------------- the variants


def load_data(dataset: str, train_samples: int, eval_samples: int):
    from texttune import DataConfig
    from texttune.data import load_training_data

    return load_training_data(
        DataConfig(data=dataset, max_train_samples=train_samples, max_eval_samples=eval_samples)
    )


def accuracy_of(trainer, dataset) -> float:
    import numpy as np

    output = trainer.predict(dataset)
    return float((np.asarray(output.predictions).argmax(axis=1) == output.label_ids).mean())


def run_plain_trainer(variant: str, args) -> dict:
    """(a), (a*) and (b): the recipes users write with plain transformers."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from texttune.assets import resolve_builtin_model

    path = resolve_builtin_model("minilm")
    data = load_data(args.dataset, args.train_samples, args.eval_samples)
    tokenizer = AutoTokenizer.from_pretrained(path)
    max_length = min(tokenizer.model_max_length, 512)
    padding = "max_length" if variant == "tutorial" else False

    def encode(batch):
        return tokenizer(batch["text"], padding=padding, truncation=True, max_length=max_length)

    train_set = data.splits["train"].map(encode, batched=True, remove_columns=["text"])
    test_set = data.splits["test"].map(encode, batched=True, remove_columns=["text"])
    torch.manual_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(data.label_names))
    batch_size = 8 if variant in ("tutorial", "tutorial_equivalent") else 32
    training_args = TrainingArguments(
        output_dir=str(Path(args.workdir) / variant),
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64,
        num_train_epochs=args.epochs,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=42,
    )
    stop_after = args.tutorial_steps if variant == "tutorial" else None
    meter = make_meter(stop_after)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        processing_class=tokenizer,
        data_collator=None if variant == "tutorial" else DataCollatorWithPadding(tokenizer),
        callbacks=[meter],
    )
    check = (
        loss_equivalence(model, tokenizer, data.splits["train"], max_length)
        if variant == "tutorial"
        else None
    )
    trainer.train()
    result = summary(meter, model)
    if variant == "tutorial":
        result["accuracy"] = None
        result["loss_diff_max_length_vs_dynamic"] = check
    else:
        result["accuracy"] = accuracy_of(trainer, test_set)
    result["precision"] = "fp32"  # Trainer's default on CPU
    return result


def loss_equivalence(model, tokenizer, split, max_length: int) -> float:
    """|loss(max_length padding) - loss(dynamic padding)| on one batch of 8: shows (a) and (a*) agree."""
    import torch

    texts, labels = split["text"][:8], torch.tensor(split["labels"][:8])
    model.eval()
    with torch.no_grad():
        losses = [
            float(
                model(
                    **tokenizer(
                        texts, padding=p, truncation=True, max_length=max_length, return_tensors="pt"
                    ),
                    labels=labels,
                ).loss
            )
            for p in ("max_length", True)
        ]
    model.train()
    return abs(losses[0] - losses[1])


def run_texttune(variant: str, args) -> dict:
    """(c), (d), (e): `texttune.train` with its defaults (a token budget for (d), fp32 for (e))."""
    from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train
    from texttune.training import precision_flags

    meter = make_meter()
    extra = {"max_tokens_per_batch": args.max_tokens_per_batch} if variant == "token_budget" else {}
    if variant == "texttune_fp32":
        extra["precision"] = "fp32"
    config = RunConfig(
        data=DataConfig(
            data=args.dataset, max_train_samples=args.train_samples, max_eval_samples=args.eval_samples
        ),
        model=ModelConfig(model="minilm"),
        train=TrainConfig(
            output=str(Path(args.workdir) / f"{args.dataset}-{variant}"),  # one run folder per dataset
            epochs=args.epochs,
            progress=False,
            use_cpu=True,
            **extra,
        ),
    )
    result = train(config, callbacks=[meter])
    out = summary(meter, result.model)
    out["accuracy"] = result.test_metrics["accuracy"]
    out["precision"] = "bf16" if precision_flags(config.train.precision, use_cpu=True) else "fp32"
    return out


def summary(meter, model) -> dict:
    flops = training_flops(meter, model.config, non_embedding_parameters(model))
    return {
        "steps": meter.steps,
        "samples": meter.samples,
        "seconds": meter.seconds,
        "samples_per_s": meter.samples / meter.seconds,
        "real_tokens_per_s": meter.real_tokens / meter.seconds,
        "pad_share": 1 - meter.real_tokens / max(meter.padded_tokens, 1),
        "gflops": flops / meter.seconds / 1e9,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def worker(args) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    import datasets

    datasets.disable_progress_bars()
    runner = run_texttune if args.worker in TEXTTUNE_VARIANTS else run_plain_trainer
    # The matmul peak again, around this variant's training: on a shared machine it tracks the CPU
    # share this process gets, so samples/s divided by it compares variants measured minutes apart.
    # Only the peak of the precision the variant computes in: a bf16 variant runs only where the CPU has
    # native bf16 (where it does not, bf16 matmuls are emulated and a peak measurement takes minutes).
    before = matmul_peak_gflops("fp32")
    result = runner(args.worker, args)
    kind = result["precision"]
    after = matmul_peak_gflops(kind)
    result["peak_gflops"] = max(before, after) if kind == "fp32" else after
    print("RESULT " + json.dumps(result))
    return 0


# ----------------------------------------------------------------------------------------- the driver


def run_variant(variant: str, dataset: str, settings: dict, workdir: Path) -> dict:
    command = [sys.executable, __file__, "--worker", variant, "--dataset", dataset, "--workdir", str(workdir)]
    for key, value in settings.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{variant} on {dataset} failed:\n{done.stderr[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Small budgets: a few minutes on 2 cores.")
    parser.add_argument("--datasets", default="rotten_tomatoes,bbc_news")
    parser.add_argument(
        "--levers",
        action="store_true",
        help="Also run (d) and (e): texttune with a token budget, and in fp32.",
    )
    parser.add_argument("--max-tokens-per-batch", type=int, default=1024, help="Budget of (d).")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--train-samples", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--eval-samples", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=float, default=1.0, help="Epochs for every variant (default 1).")
    parser.add_argument("--tutorial-steps", type=int, help="Steps of (a) that are timed.")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    budgets = {  # (train rows, test rows) per dataset
        "rotten_tomatoes": (320, 200) if args.quick else (8000, 1066),
        "bbc_news": (64, 40) if args.quick else (400, 222),
    }
    tutorial_steps = 2 if args.quick else 12
    from texttune.hardware import cpu_has_native_bf16, describe_machine

    print(describe_machine())
    peak = matmul_peak_gflops()
    # Without native bf16 the matmuls are emulated (about 1 GFLOP/s here): no variant computes in bf16.
    bf16 = f"{matmul_peak_gflops('bf16'):.0f} GFLOP/s" if cpu_has_native_bf16() else "not measured (emulated)"
    print(
        f"matmul peak fp32 {peak:.0f} GFLOP/s, bf16 {bf16} (best of 1024-2048 squares); "
        f"epochs {args.epochs:g}",
        flush=True,
    )
    variants = ["tutorial", "tutorial_equivalent", "dynamic", "texttune"] + (
        ["token_budget", "texttune_fp32"] if args.levers else []
    )
    workdir = Path(tempfile.mkdtemp(prefix="texttune-throughput-"))
    ratios = {}
    for dataset in args.datasets.split(","):
        train_rows, test_rows = budgets[dataset]
        settings = {
            "train_samples": train_rows,
            "eval_samples": test_rows,
            "epochs": args.epochs,
            "tutorial_steps": tutorial_steps,
            "max_tokens_per_batch": args.max_tokens_per_batch,
        }
        rows = {v: run_variant(v, dataset, settings, workdir) for v in variants}
        print(f"\n{dataset}: {train_rows} training rows, accuracy on {test_rows} test rows")
        header = (
            f"{'variant':<32}{'prec':>5}{'samples/s':>10}{'real tok/s':>11}{'pad':>6}{'GFLOP/s':>9}{'% peak':>8}"
            f"{'its peak':>9}{'% own':>7}{'RSS MB':>8}{'accuracy':>10}"
        )
        print(header)
        print("-" * len(header))
        for variant, r in rows.items():
            accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
            print(
                f"{VARIANTS[variant]:<32}{r['precision']:>5}{r['samples_per_s']:>10.2f}{r['real_tokens_per_s']:>11.0f}"
                f"{100 * r['pad_share']:>5.0f}%{r['gflops']:>9.1f}{100 * r['gflops'] / peak:>7.0f}%"
                f"{r['peak_gflops']:>9.0f}{100 * r['gflops'] / r['peak_gflops']:>6.0f}%"
                f"{r['peak_rss_mb']:>8.0f}{accuracy:>10}"
            )
        a, b, c = rows["tutorial"], rows["dynamic"], rows["texttune"]
        print(
            f"(a) timed on {a['steps']} steps ({a['samples']} samples) after 1 warm-up step; its accuracy is that of (a*), which "
            f"computes the same function (loss difference on one batch: {a['loss_diff_max_length_vs_dynamic']:.1e})"
        )
        ratios[dataset] = (c["samples_per_s"] / a["samples_per_s"], c["samples_per_s"] / b["samples_per_s"])
        print(
            f"{dataset}: texttune vs tutorial {ratios[dataset][0]:.1f}x, vs dynamic {ratios[dataset][1]:.2f}x"
        )
    first = next(iter(ratios))
    print(f"speedup_vs_tutorial={ratios[first][0]:.1f} speedup_vs_dynamic={ratios[first][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
