"""Fine-tune with a plain PyTorch loop, using texttune for the data, the model, the metrics and the run folder.

The Hugging Face course trains a classifier with the Trainer, then writes the training loop by hand. This is
that loop on texttune's pieces. The folder it writes is a texttune run, like one from `texttune train`, so
`Predictor.load`, `texttune evaluate` and `texttune predict` work on it:

    python examples/custom_loop.py --epochs 1 --max-train-samples 2000
    texttune evaluate runs/custom-loop
    texttune predict runs/custom-loop "a gripping, beautiful film"
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import get_scheduler, set_seed

from texttune.artifacts import (
    AtomicDir,
    RunManifest,
    check_output_dir,
    save_run,
    write_evaluation,
    write_validation_split,
)
from texttune.assets import default_learning_rate
from texttune.config import DataConfig
from texttune.data import load_training_data
from texttune.metrics import evaluate_predictions, scalar_metrics
from texttune.modeling import build_model, checkpoint_pooling, count_parameters, resolve_model_path
from texttune.tokenization import load_tokenizer, make_collator, resolve_max_length, tokenize_dataset


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="minilm", help="A built-in model name, a model folder or a hub id."
    )
    parser.add_argument("--data", default="rotten_tomatoes", help="A data file or a built-in dataset name.")
    parser.add_argument("--output", default="runs/custom-loop", help="The run folder to write.")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, help="Default: the model's default in texttune.")
    parser.add_argument("--max-length", type=int, help="Default: the model's limit, at most 512 tokens.")
    parser.add_argument("--max-train-samples", type=int, help="Train on a random subset of this size.")
    parser.add_argument("--max-eval-samples", type=int, help="Validate on a random subset of this size.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--overwrite", action="store_true", help="Replace the --output folder.")
    return parser


def evaluate(model, loader, device, task: str, label_names: list[str]) -> dict[str, Any]:
    model.eval()
    logits, labels = [], []
    with torch.inference_mode():
        for batch in loader:
            labels.append(batch.pop("labels").numpy())
            logits.append(model(**batch.to(device)).logits.float().cpu().numpy())
    return evaluate_predictions(task, label_names, np.concatenate(logits), np.concatenate(labels))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = make_parser().parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    set_seed(args.seed)

    # Data: read, check and split; then tokenize, and pad each batch to its longest text.
    check_output_dir(args.output, args.overwrite)  # fail now, not after training
    cfg = DataConfig(
        data=args.data, max_train_samples=args.max_train_samples, max_eval_samples=args.max_eval_samples
    )
    data = load_training_data(cfg)
    model_path = resolve_model_path(args.model)
    tokenizer = load_tokenizer(model_path)
    max_length = resolve_max_length(tokenizer, args.max_length)
    collate = make_collator(tokenizer)
    train_set = tokenize_dataset(data.splits["train"], tokenizer, max_length)
    eval_set = tokenize_dataset(data.splits["validation"], tokenizer, max_length)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, collate_fn=collate)
    eval_loader = DataLoader(eval_set, batch_size=64, collate_fn=collate)

    # The model with a new head for the label set, pooled the way the checkpoint was trained (mean for the
    # built-in minilm; else the architecture's own head); AdamW and a linear schedule with 10% warmup.
    pooling = checkpoint_pooling(model_path) or "pooler"
    model = build_model(
        model_path, task=data.task, label_names=data.label_names, tokenizer=tokenizer, pooling=pooling
    )
    model.to(device)
    learning_rate = args.learning_rate or default_learning_rate(args.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    steps = args.epochs * len(train_loader)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=steps // 10, num_training_steps=steps)

    log: list[dict[str, Any]] = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        for batch in train_loader:
            loss = model(**batch.to(device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        metrics = evaluate(model, eval_loader, device, data.task, data.label_names)
        scores = {f"eval_{k}": v for k, v in scalar_metrics(metrics).items()}
        log.append(
            {"epoch": epoch, "step": epoch * len(train_loader), "loss": np.mean(losses).item(), **scores}
        )
        print(", ".join(f"{k} {v:.4g}" for k, v in log[-1].items()))

    # The run folder: written under a hidden name and moved into place only when complete.
    trainable, total = count_parameters(model)
    manifest = RunManifest.for_data(
        data,
        max_length=max_length,
        base_model=args.model,
        trainable_parameters=trainable,
        total_parameters=total,
        config={"custom_loop": dict(vars(args), learning_rate=learning_rate)},
    )
    with AtomicDir(args.output, overwrite=args.overwrite) as work:
        model.cpu()
        save_run(work, model=model, tokenizer=tokenizer, manifest=manifest, log_history=log)
        write_validation_split(work, data.splits["validation"])  # `texttune evaluate RUN` scores it again
        write_evaluation(work, metrics, data.label_names, "validation")
    print(f"run saved to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
