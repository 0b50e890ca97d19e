"""Bounded load test of ``texttune serve`` on loopback: latency, throughput and 5xx count.

Starts the real server (uvicorn, in this process, bound to 127.0.0.1 on a free port) twice, with
micro-batching on and off, and sends the same requests from N concurrent keep-alive clients to each,
one text per request. Traffic never leaves 127.0.0.1.

    python benchmarks/serve_load.py                  # the built-in minilm with a fresh 2-class head
    python benchmarks/serve_load.py --run runs/demo --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"  # loopback only, by design


def build_untrained_run(folder: Path, model: str = "minilm") -> str:
    """A servable run from a built-in model with a fresh head: serving cost does not depend on training."""
    from texttune.artifacts import RunManifest, write_manifest
    from texttune.modeling import build_model, resolve_model_path
    from texttune.tokenization import load_tokenizer

    path = resolve_model_path(model)
    tokenizer = load_tokenizer(path)
    built = build_model(path, task="single_label", label_names=["negative", "positive"], tokenizer=tokenizer)
    built.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    manifest = RunManifest(
        task="single_label",
        label_names=["negative", "positive"],
        text_column="text",
        text_pair_column=None,
        label_column="label",
        max_length=128,
        base_model=model,
    )
    write_manifest(folder, manifest)
    return str(folder)


def sample_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` movie reviews from the built-in ``rotten_tomatoes`` test split (offline), drawn with a seed."""
    from texttune.data import read_source

    texts = list(read_source("rotten_tomatoes")["test"]["text"])
    rng = random.Random(seed)
    return [rng.choice(texts) for _ in range(n)]


def load(port: int, texts: list[str], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    next_index = iter(range(len(texts)))

    def client() -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=120)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            body = json.dumps({"texts": [texts[i]]})
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", "/predict", body=body, headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 599  # connection failure: counted with the server errors
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=120)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses.append(status)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(statuses),
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "throughput": len(statuses) / wall,
        "errors_5xx": sum(s >= 500 for s in statuses),
        "ok": sum(s == 200 for s in statuses),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", help="Run folder to serve (default: built-in minilm with a fresh head).")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    args = parser.parse_args()
    from texttune.hardware import describe_machine

    print(describe_machine(), flush=True)

    from texttune.inference import Predictor
    from texttune.serve import ServeConfig, create_app, start_in_thread

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or build_untrained_run(Path(tmp) / "run")
        texts = sample_texts(args.requests)
        settings = {
            "micro-batched": ServeConfig(port=0, batch_wait_ms=args.batch_wait_ms, max_micro_batch=64),
            "one call per request": ServeConfig(port=0, batch_wait_ms=0, max_batch_size=1, max_micro_batch=1),
        }
        results = {}
        for name, config in settings.items():
            predictor = Predictor.load(run, device="cpu", batch_size=config.max_micro_batch)
            server = start_in_thread(create_app(predictor, config), HOST, 0)
            try:
                load(server.port, texts[: min(50, len(texts))], args.concurrency)  # warm-up
                results[name] = load(server.port, texts, args.concurrency)
                print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
            finally:
                server.stop()

    print(f"{args.requests} requests, 1 text each, {args.concurrency} concurrent clients on {HOST}")
    header = f"{'server':<22}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'5xx':>6}{'200':>7}"
    print(header)
    for name, r in results.items():
        print(
            f"{name:<22}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['throughput']:>9.1f}"
            f"{r['errors_5xx']:>6d}{r['ok']:>7d}"
        )
    on, off = results["micro-batched"], results["one call per request"]
    print(
        f"ratio micro-batched / one call: throughput x{on['throughput'] / off['throughput']:.2f}, "
        f"p50 x{on['p50_ms'] / off['p50_ms']:.2f}, p99 x{on['p99_ms'] / off['p99_ms']:.2f}"
    )
    return 1 if any(r["errors_5xx"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
