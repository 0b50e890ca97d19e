"""What each training lever gains or costs on CPU, measured side by side on the same batches.

Times full training steps (forward, backward, AdamW) of the built-in `minilm` on real `rotten_tomatoes`
texts, one lever changed at a time against texttune's defaults (SDPA attention, all cores, batch 32 in
length-grouped batches, fused AdamW, bf16 autocast on CPUs with native bf16, eager PyTorch):

  precision:     bf16 autocast (default where the CPU has native bf16) vs fp32;
  optimizer:     fused AdamW (default) vs the multi-tensor (foreach) AdamW;
  attention:     SDPA (default) vs eager;
  threads:       torch.get_num_threads() (default) vs 1;
  torch.compile: inductor with dynamic shapes (compile time reported separately);
  batching:      batch 32 from length-sorted texts vs batches built to a token budget.

Rounds are interleaved (A, B, A, B, ...) and the best round of each is kept, to damp other load;
torch.compile runs last, once, after its compilation.
Also reports how long tokenization takes next to one epoch of training (the case for caching it).

    OMP_NUM_THREADS=2 python benchmarks/levers.py --steps 6
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def make_batches(tokenizer, texts, indices_batches):
    import torch

    batches = []
    for idx in indices_batches:
        enc = tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=512, return_tensors="pt"
        )
        enc["labels"] = torch.zeros(len(idx), dtype=torch.long)
        batches.append(enc)
    return batches


def time_steps(model, optimizer, batches, bf16: bool = False) -> tuple[float, int]:
    """Seconds and samples for one pass over ``batches`` (one warm-up step first, not counted)."""
    import torch

    model.train()

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()

    step(batches[0])
    started = time.perf_counter()
    for batch in batches:
        step(batch)
    return time.perf_counter() - started, sum(int(b["input_ids"].shape[0]) for b in batches)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=6, help="Batches of 32 per round (default 6).")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budget", type=int, default=1024, help="Token budget of the batching lever.")
    parser.add_argument("--no-compile", action="store_true", help="Skip the torch.compile lever.")
    args = parser.parse_args()
    from texttune.hardware import describe_machine

    print(describe_machine(), flush=True)
    import logging

    logging.basicConfig(level=logging.WARNING)
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.trainer_pt_utils import LengthGroupedSampler
    from transformers.utils import logging as hf_logging

    from texttune.assets import load_builtin_dataset, resolve_builtin_model
    from texttune.batching import token_budget_batches
    from texttune.hardware import cpu_has_native_bf16

    hf_logging.set_verbosity_error()
    path = resolve_builtin_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    train_texts = list(load_builtin_dataset("rotten_tomatoes")["train"]["text"])

    started = time.perf_counter()
    lengths_all = [len(ids) for ids in tokenizer(train_texts, truncation=True, max_length=512)["input_ids"]]
    tokenize_seconds = time.perf_counter() - started

    # One pool of texts; both batchings draw from it, and each lever runs on the same batches.
    pool = args.steps * 32 * 4
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(train_texts), size=pool, replace=False)
    texts = [train_texts[i] for i in chosen]
    lengths = [lengths_all[i] for i in chosen]
    grouped = list(LengthGroupedSampler(32, lengths=lengths, generator=torch.Generator().manual_seed(0)))
    fixed = make_batches(tokenizer, texts, [grouped[i : i + 32] for i in range(0, pool, 32)])[: args.steps]
    budget_idx = token_budget_batches(lengths, args.budget, seed=0)
    budget_all = make_batches(tokenizer, texts, budget_idx)
    # As many token-budget batches as cover about the same number of texts as the fixed batches.
    budget, covered = [], 0
    for b in budget_all:
        if covered >= 32 * args.steps:
            break
        budget.append(b)
        covered += int(b["input_ids"].shape[0])

    def fresh(attn: str = "sdpa", fused: bool = True):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=2, attn_implementation=attn
        )
        return model, torch.optim.AdamW(model.parameters(), lr=2e-5, fused=fused, foreach=not fused)

    threads, bf16 = torch.get_num_threads(), cpu_has_native_bf16()
    precision = "bf16" if bf16 else "fp32"
    configs = {  # name: () -> (model, optimizer, batches, threads, bf16 autocast)
        f"defaults (SDPA, {threads} threads, b32, {precision})": lambda: (*fresh(), fixed, threads, bf16),
        "foreach AdamW instead of fused": lambda: (*fresh(fused=False), fixed, threads, bf16),
        "eager attention": lambda: (*fresh("eager"), fixed, threads, bf16),
        "1 thread": lambda: (*fresh(), fixed, 1, bf16),
        f"token budget {args.budget}": lambda: (*fresh(), budget, threads, bf16),
    }
    if bf16:
        configs["fp32 instead of bf16"] = lambda: (*fresh(), fixed, threads, False)
    # Without native bf16, bf16 matmuls are emulated at about 1% of the fp32 rate: a bf16 step would take
    # minutes and `--precision auto` never picks it there, so that lever is not run.
    best: dict[str, float] = {}
    tokens: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, build in configs.items():
            model, optimizer, batches, n_threads, autocast = build()
            torch.set_num_threads(n_threads)
            seconds, samples = time_steps(model, optimizer, batches, autocast)
            torch.set_num_threads(threads)
            best[name] = max(best.get(name, 0.0), samples / seconds)
            real = sum(int(b["attention_mask"].sum()) for b in batches)
            tokens[name] = max(tokens.get(name, 0.0), real / seconds)
    base_name = next(iter(configs))
    if not bf16:
        print("bf16 autocast: not run (no native bf16 on this CPU; --precision auto trains in fp32 here)")
    base = best[base_name]
    print(
        f"levers on {args.steps} batches of rotten_tomatoes texts, best of {args.rounds} interleaved rounds"
    )
    print(f"{'lever':<44}{'samples/s':>10}{'real tok/s':>11}{'vs defaults':>12}")
    for name, rate in best.items():
        print(f"{name:<44}{rate:>10.2f}{tokens[name]:>11.0f}{rate / base:>11.2f}x")
    per_epoch = len(train_texts) / base
    print(
        f"tokenizing all {len(train_texts)} training texts: {tokenize_seconds:.1f}s, "
        f"{100 * tokenize_seconds / per_epoch:.2f}% of one training epoch at the default rate ({per_epoch:.0f}s)",
        flush=True,
    )
    if not args.no_compile:  # last: compiling can take minutes on a busy machine
        model, optimizer = fresh()
        compiled = torch.compile(model, dynamic=True)
        started = time.perf_counter()
        time_steps(compiled, optimizer, fixed[:2], bf16)  # compiles (and recompiles once for new shapes)
        compile_seconds = time.perf_counter() - started
        seconds, samples = time_steps(compiled, optimizer, fixed, bf16)
        rate = samples / seconds
        print(
            f"{'torch.compile (inductor, dynamic)':<44}{rate:>10.2f}{'':>11}{rate / base:>11.2f}x "
            f"(after {compile_seconds:.0f}s of compiling; not interleaved)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
