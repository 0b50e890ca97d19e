"""Masked-LM pretraining speed (`texttune pretrain`, `--mlm-first`): its two levers, side by side.

Runs `texttune.pretrain` itself on the same texts three ways, interleaved in rounds:

  all positions, fp32:  the output layer scores every position (as the model does by itself), fp32;
  masked only, fp32:    the output layer scores the masked positions only (texttune's default);
  masked only, bf16:    the same in bf16 autocast (`--precision auto` on CPUs with native bf16).

It prints seconds per training step of each (the best round), the ratios and the masked-LM loss of each
(close between the first two: the same texts and masks, but an output layer the checkpoint lacks
starts from other random weights each run), and the machine's CPU flags. Texts are the training split
of a built-in dataset; the default pairs `multilingual-e5-small` with `chinese_reviews`, whose
250,002-piece output layer is most of a masked-LM step's work when it scores every position.

    OMP_NUM_THREADS=2 python benchmarks/pretrain_speed.py
    python benchmarks/pretrain_speed.py --model minilm --dataset rotten_tomatoes --texts 640
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def write_texts(dataset: str, rows: int, folder: Path) -> Path:
    """The first ``rows`` training texts of a built-in dataset (shuffled with a fixed seed), one per line."""
    from texttune.assets import load_builtin_dataset

    texts = load_builtin_dataset(dataset)["train"].shuffle(seed=0)["text"][:rows]
    path = folder / f"{dataset}.txt"
    path.write_text("\n".join(" ".join(t.split()) for t in texts) + "\n", encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="multilingual-e5-small")
    parser.add_argument("--dataset", default="chinese_reviews")
    parser.add_argument("--texts", type=int, default=640, help="Texts per run (default 640: 20 steps of 32).")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from texttune import pretraining
    from texttune.hardware import cpu_has_native_bf16, describe_machine

    print(describe_machine(), flush=True)
    if not cpu_has_native_bf16():
        print(
            "note: this CPU has no native bf16; bf16 autocast is emulated here (--precision auto picks fp32)"
        )
    steps = -(-args.texts // 32)
    masked_only = pretraining.logits_at_masked_positions_only
    ways = {  # name: (precision, the hook installer)
        "all positions, fp32": ("fp32", lambda mlm: []),
        "masked only, fp32": ("fp32", masked_only),
        "masked only, bf16": ("bf16", masked_only),
    }
    best: dict[str, float] = {}
    loss: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_texts(args.dataset, args.texts, Path(tmp))
        for round_ in range(args.rounds):
            for name, (precision, hooks) in ways.items():
                pretraining.logits_at_masked_positions_only = hooks
                result = pretraining.pretrain(
                    str(corpus),
                    args.model,
                    Path(tmp) / "model",
                    progress=False,
                    precision=precision,
                    max_length=args.max_length,
                    overwrite=True,
                )
                per_step = result.train_seconds / steps
                best[name] = min(best.get(name, per_step), per_step)
                loss[name] = result.loss
                print(
                    f"round {round_ + 1}, {name}: {per_step:.2f} s/step, loss {result.loss:.3f}", flush=True
                )
    print(
        f"\n{args.model}, {args.texts} {args.dataset} texts ({steps} steps of 32, max length {args.max_length})"
    )
    print("| way | s/step (best round) | speed-up | masked-LM loss |")
    print("| --- | ---: | ---: | ---: |")
    slowest = best["all positions, fp32"]
    for name in ways:
        print(f"| {name} | {best[name]:.2f} | {slowest / best[name]:.2f}x | {loss[name]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
