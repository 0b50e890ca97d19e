"""Peak memory and time of training on long texts, whole batches against `--micro-batch-tokens` slices.

A batch of 32 texts of 512 tokens is the worst case of texttune's defaults (batch 32, max length the
model's limit). Each setting trains the same model on the same texts (built-in `chinese_reviews`
reviews joined until each is longer than the max length) for `--steps` optimizer steps with AdamW, in
a process of its own whose peak RSS (VmHWM) is read at the end. The slices' gradients add up to the
whole batch's (tests/test_batching.py checks this), so the losses agree up to dropout's randomness.

    OMP_NUM_THREADS=2 python benchmarks/micro_batches.py --model multilingual-e5-small \
        --max-length 512 --settings 0,8192,4096
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

CHILD = """
import json, sys, time
import datasets
from transformers.utils import logging as hf_logging
from texttune import DataConfig, ModelConfig, RunConfig, StrategyConfig, TrainConfig, train
hf_logging.set_verbosity_error(); datasets.disable_progress_bars()
data, validation, model, output, max_length, batch, steps, tokens, precision = sys.argv[1:]
config = RunConfig(
    data=DataConfig(data=data, validation=validation),
    model=ModelConfig(model=model, max_length=int(max_length)),
    strategy=StrategyConfig(strategy="full"),
    train=TrainConfig(output=output, epochs=1, batch_size=int(batch), micro_batch_tokens=int(tokens),
                      progress=False, report=False, use_cpu=True, precision=precision, seed=0),
)
result = train(config)
peak = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024
last = result.log_history[-1]
assert last["step"] == int(steps), last
print("RESULT " + json.dumps({"seconds": result.train_seconds, "peak_rss_mb": peak, "loss": last["train_loss"]}))
"""


def long_texts(path: Path, rows: int, tokenizer, max_length: int) -> None:
    """``rows`` labelled texts, each a built-in review joined with the next ones until over ``max_length`` tokens."""
    import pandas as pd

    from texttune.assets import load_builtin_dataset

    train = load_builtin_dataset("chinese_reviews")["train"]
    texts, labels, source = [], [], iter(zip(train["text"], train["label"]))
    while len(texts) < rows:
        text, label = next(source)
        while len(tokenizer(text)["input_ids"]) <= max_length:
            text += next(source)[0]
        texts.append(text)
        labels.append(label)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)


def train_in_child(data: Path, validation: Path, model: str, output: Path, args, tokens: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    command = [
        sys.executable,
        "-c",
        CHILD,
        str(data),
        str(validation),
        model,
        str(output),
        str(args.max_length),
    ]
    command += [str(args.batch_size), str(args.steps), str(tokens), args.precision]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    if done.returncode == -9:  # the kernel's out-of-memory killer
        return {}
    raise RuntimeError(f"exit {done.returncode}: {done.stderr[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="multilingual-e5-small", help="Built-in model name or folder.")
    parser.add_argument("--max-length", type=int, default=512, help="Tokens per text (all texts are longer).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="Optimizer steps per setting.")
    parser.add_argument(
        "--precision", default="auto", help="texttune's --precision (auto: bf16 where native)."
    )
    parser.add_argument(
        "--settings", default="0,8192,4096", help="--micro-batch-tokens values; 0 is whole batches."
    )
    args = parser.parse_args()
    if not args.settings.startswith("0,"):
        parser.error("--settings must start with 0 (whole batches), which the others are compared to")
    import torch

    from texttune.hardware import describe_machine
    from texttune.trainer import micro_batches

    print(describe_machine(), flush=True)
    from transformers import AutoTokenizer

    from texttune.assets import resolve_builtin_model

    model = resolve_builtin_model(args.model) or args.model
    work = Path(tempfile.mkdtemp(prefix="texttune-micro-"))
    data, validation, tokenizer = (
        work / "long.csv",
        work / "validation.csv",
        AutoTokenizer.from_pretrained(model),
    )
    long_texts(data, args.batch_size * args.steps, tokenizer, args.max_length)
    long_texts(validation, 4, tokenizer, args.max_length)  # evaluated once, at the end of the epoch
    print(
        f"{args.model}: {args.steps} steps of {args.batch_size} texts x {args.max_length} tokens "
        f"({args.batch_size * args.max_length} padded tokens per batch), --precision {args.precision}, AdamW"
    )
    print(
        f"{'--micro-batch-tokens':>21}{'slices':>8}{'peak RSS MB':>13}{'x whole':>9}{'s/step':>8}{'x whole':>9}{'loss':>8}"
    )
    whole = None  # (peak, seconds per step) of whole batches, the first setting
    for tokens in [int(t) for t in args.settings.split(",")]:
        out = train_in_child(data, validation, model, work / f"run-{tokens}", args, tokens)
        if not out:
            print(f"{tokens:>21}  killed for lack of memory", flush=True)
            whole = whole or (float("nan"), float("nan"))
            continue
        slices = len(micro_batches({"input_ids": torch.zeros(args.batch_size, args.max_length)}, tokens))
        step = out["seconds"] / args.steps
        whole = whole or (out["peak_rss_mb"], step)
        print(
            f"{tokens:>21}{slices:>8}{out['peak_rss_mb']:>13.0f}{out['peak_rss_mb'] / whole[0]:>9.2f}"
            f"{step:>8.1f}{step / whole[1]:>9.2f}{out['loss']:>8.4f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
