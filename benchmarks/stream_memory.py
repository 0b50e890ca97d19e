"""Peak memory of `texttune predict RUN --data big.csv --output out.csv` at 100k and 1M rows.

Memory, not speed, is measured, so the run uses a tiny random BERT (2 layers, hidden 64) with the
built-in model's real WordPiece tokenizer, trained for one epoch on 64 rows: the tokenizer, the chunked
CSV reader and writer and the per-chunk buffers are the real ones. Each size is predicted in its own
process; its peak RSS must not grow with the number of rows.

    OMP_NUM_THREADS=2 python benchmarks/stream_memory.py --rows 100000,1000000
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


def tiny_run(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from texttune import DataConfig, ModelConfig, RunConfig, TrainConfig, train
    from texttune.assets import resolve_builtin_model

    model_dir = folder / "tiny-model"
    tokenizer = AutoTokenizer.from_pretrained(resolve_builtin_model("minilm"))
    tokenizer.save_pretrained(model_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(model_dir)
    run_config = RunConfig(
        data=DataConfig(data="rotten_tomatoes", max_train_samples=64, max_eval_samples=64),
        model=ModelConfig(model=str(model_dir), max_length=128),
        train=TrainConfig(output=str(folder / "run"), epochs=1, progress=False, use_cpu=True),
    )
    return train(run_config).output


def write_csv(path: Path, rows: int) -> None:
    """``rows`` rows (id, text) cycling through the built-in movie reviews, written in chunks."""
    import pandas as pd

    from texttune.assets import load_builtin_dataset

    texts = load_builtin_dataset("rotten_tomatoes")["train"]["text"]
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        while written < rows:
            n = min(len(texts), rows - written)
            frame = pd.DataFrame({"id": range(written, written + n), "text": texts[:n]})
            frame.to_csv(handle, header=written == 0, index=False)
            written += n


def predict_in_child(run: Path, data: Path, output: Path, backend: str) -> dict:
    code = (
        "import json, resource, sys, time\n"
        # VmHWM is this process's own peak; ru_maxrss also keeps the parent's peak from before the exec
        "def peak_rss_mb():\n"
        "    try:\n"
        "        status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "        return int(status.split()[0]) / 1024\n"
        "    except (OSError, IndexError):\n"
        "        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "from texttune import Predictor\n"
        "run, data, out, backend = sys.argv[1:]\n"
        "p = Predictor.load(run, backend=backend, device='cpu')\n"
        "t = time.perf_counter(); rows = p.predict_file(data, out); s = time.perf_counter() - t\n"
        "print('RESULT ' + json.dumps({'rows': rows, 'seconds': s, 'peak_rss_mb': peak_rss_mb()}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(
        [sys.executable, "-c", code, str(run), str(data), str(output), backend],
        capture_output=True,
        text=True,
        env=env,
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(done.stderr[-3000:])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="100000,1000000", help="Comma-separated row counts.")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    args = parser.parse_args()
    from texttune.hardware import describe_machine

    print(describe_machine(), flush=True)
    import logging

    logging.basicConfig(level=logging.WARNING)
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()

    work = Path(tempfile.mkdtemp(prefix="texttune-stream-"))
    run = tiny_run(work)
    if args.backend == "onnx":
        from texttune.export import export_onnx

        export_onnx(run, check_parity=False)
    print(
        f"streaming prediction, tiny BERT (2 layers, hidden 64), backend {args.backend}, chunks of 2048 rows"
    )
    print(f"{'rows':>10}{'CSV MB':>9}{'seconds':>9}{'rows/s':>9}{'peak RSS MB':>13}")
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        data = work / f"rows-{rows}.csv"
        write_csv(data, rows)
        out = predict_in_child(run, data, work / f"pred-{rows}.csv", args.backend)
        assert out["rows"] == rows, out
        size = data.stat().st_size / 1e6
        print(
            f"{rows:>10}{size:>9.0f}{out['seconds']:>9.0f}{rows / out['seconds']:>9.0f}{out['peak_rss_mb']:>13.0f}"
        )
        results.append(out["peak_rss_mb"])
        data.unlink()
        (work / f"pred-{rows}.csv").unlink()
    print(f"peak_rss_growth_largest_vs_smallest_mb={results[-1] - results[0]:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
