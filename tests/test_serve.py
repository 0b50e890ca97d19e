"""The HTTP server: the real uvicorn server on loopback, spoken to over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from texttune.cli import main  # noqa: E402
from texttune.inference import Predictor  # noqa: E402
from texttune.serve import ServeConfig, create_app, start_in_thread  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
TEXTS = ["good fun film", "awful boring plot", "the acting was really clever and moving", "dull"]


@pytest.fixture(scope="module")
def run_dir(untrained_run) -> str:
    """Serving does not need a trained run."""
    return untrained_run


@pytest.fixture(scope="module")
def predictor(run_dir) -> Predictor:
    return Predictor.load(run_dir, device="cpu")


@pytest.fixture(scope="module")
def server(predictor):
    config = ServeConfig(max_batch_size=8, max_text_chars=200, batch_wait_ms=30, max_micro_batch=64)
    thread = start_in_thread(create_app(predictor, config), "127.0.0.1", 0)
    yield thread
    thread.stop()


def request(port: int, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    connection.request(
        method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    try:
        payload = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        payload = {"raw": raw.decode(errors="replace")}
    return response.status, payload


def test_health_labels_and_docs(server):
    status, health = request(server.port, "GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["task"] == "single_label"
    assert request(server.port, "GET", "/labels") == (
        200,
        {"task": "single_label", "labels": ["negative", "positive"]},
    )
    status, spec = request(server.port, "GET", "/openapi.json")
    assert status == 200 and {"/predict", "/health", "/labels"} <= set(spec["paths"])
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/docs")
    response = connection.getresponse()
    assert response.status == 200 and b"swagger" in response.read().lower()


def test_predict_answers_like_the_predictor(server, predictor):
    status, payload = request(server.port, "POST", "/predict", {"texts": TEXTS})
    assert status == 200
    expected = predictor.predict(TEXTS)
    assert [p["label"] for p in payload["predictions"]] == [p.label for p in expected]
    for got, want in zip(payload["predictions"], expected):
        assert got["probabilities"] == pytest.approx(want.probabilities, abs=1e-5)
    status, payload = request(server.port, "POST", "/predict", {"texts": TEXTS[:2], "pairs": TEXTS[2:]})
    assert status == 200
    want = predictor.predict(TEXTS[:2], TEXTS[2:])
    assert [p["score"] for p in payload["predictions"]] == pytest.approx([p.score for p in want], abs=1e-5)


BAD_REQUESTS = [
    ("malformed JSON", b'{"texts": ["a",', 422, "JSON decode error"),
    ("not an object", b'["a", "b"]', 422, "expected JSON like"),
    ("texts missing", {"text": ["a"]}, 422, "texts: Field required"),
    ("texts is a string", {"texts": "a"}, 422, "texts: Input should be a valid list"),
    ("a text is a number", {"texts": ["a", 3]}, 422, "texts.1: Input should be a valid string"),
    ("a text is null", {"texts": [None]}, 422, "texts.0: Input should be a valid string"),
    ("unknown field", {"texts": ["a"], "labels": [1]}, 422, "labels: Extra inputs are not permitted"),
    ("empty texts", {"texts": []}, 422, "texts is empty; give at least one text"),
    ("pairs of another length", {"texts": ["a", "b"], "pairs": ["c"]}, 422, "got 2 texts but 1 pairs"),
    ("too many texts", {"texts": ["a"] * 9}, 413, "9 texts exceed the limit of 8 per request"),
    (
        "a text too long",
        {"texts": ["a", "x" * 201]},
        413,
        "text 1 has 201 characters, more than the limit of 200",
    ),
    ("a pair too long", {"texts": ["a"], "pairs": ["x" * 201]}, 413, "pair 0 has 201 characters"),
    ("not UTF-8", b'{"texts": ["\xff\xfe"]}', 400, "error parsing the body (send UTF-8 JSON"),
    ("empty body", b"", 422, "expected JSON like"),
]


@pytest.mark.parametrize(
    ("body", "status", "message"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_requests_get_4xx_with_a_clear_message(server, body, status, message):
    got, payload = request(server.port, "POST", "/predict", body)
    assert (got, message in payload.get("error", "")) == (status, True), payload


def test_oversized_bodies_are_refused_before_they_are_read(server):
    limit = ServeConfig(max_batch_size=8, max_text_chars=200).max_body_bytes
    got, payload = request(server.port, "POST", "/predict", b"x" * (limit + 1))
    assert got == 413 and "exceeds the limit" in payload["error"]
    # Chunked upload without a Content-Length: cut off while streaming.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(
        "POST",
        "/predict",
        body=iter([b"x" * 4096] * (limit // 4096 + 2)),
        encode_chunked=True,
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    response = connection.getresponse()
    assert response.status == 413 and b"exceeds the limit" in response.read()
    assert request(server.port, "GET", "/nowhere")[0] == 404
    assert request(server.port, "GET", "/predict")[0] == 405


def test_concurrent_requests_are_micro_batched_and_answered_in_order(server, predictor):
    before = request(server.port, "GET", "/health")[1]
    clients = 12
    barrier = threading.Barrier(clients)
    answers: dict[int, tuple[int, dict]] = {}

    def client(i: int) -> None:
        texts = [TEXTS[(i + k) % len(TEXTS)] + f" {i}" for k in range(1 + i % 3)]
        barrier.wait()
        answers[i] = (request(server.port, "POST", "/predict", {"texts": texts}), texts)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    after = request(server.port, "GET", "/health")[1]
    assert after["requests"] - before["requests"] == clients
    assert after["model_calls"] - before["model_calls"] < clients  # several requests shared a model call
    for (status, payload), texts in answers.values():
        assert status == 200
        expected = predictor.predict(texts)
        assert [p["label"] for p in payload["predictions"]] == [p.label for p in expected]
        np.testing.assert_allclose(
            [p["score"] for p in payload["predictions"]], [p.score for p in expected], atol=1e-5
        )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "--port must be between 0 and 65535, got 70000"),
        (["--max-batch-size", "0"], "--max-batch-size must be at least 1, got 0"),
        (["--max-batch-size", "256"], "--max-micro-batch (128) must be at least --max-batch-size (256)"),
        (["--batch-wait-ms", "-1"], "--batch-wait-ms must not be negative"),
        (["--min-confidence", "1.5"], "--min-confidence must be above 0 and at most 1, got 1.5"),
    ],
)
def test_serve_option_errors(run_dir, argv, message, capsys):
    assert main(["serve", run_dir, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_serve_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    assert "is not a texttune run: texttune.json is missing" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_texttune_serve_command_end_to_end(run_dir):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "texttune", "serve", run_dir, "--port", str(port), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                status, health = request(port, "GET", "/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert status == 200
        status, payload = request(port, "POST", "/predict", {"texts": ["good fun"]})
        assert status == 200 and payload["predictions"][0]["label"] in {"negative", "positive"}
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"serving {run_dir} on http://127.0.0.1:{port}" in out
    assert "Traceback" not in err


def test_min_confidence_answers_abstain_below_it(run_dir, predictor):
    scores = sorted(p.score for p in predictor.predict(TEXTS))
    cautious = Predictor.load(run_dir, device="cpu", min_confidence=scores[2])  # the two least sure abstain
    config = ServeConfig(max_batch_size=8, max_micro_batch=64, min_confidence=scores[2])
    thread = start_in_thread(create_app(cautious, config), "127.0.0.1", 0)
    try:
        status, payload = request(thread.port, "POST", "/predict", {"texts": TEXTS})
    finally:
        thread.stop()
    assert status == 200
    answers = payload["predictions"]
    assert sum(a["abstained"] for a in answers) == 2
    for answer, plain in zip(answers, predictor.predict(TEXTS)):
        assert answer["label"] == (None if answer["abstained"] else plain.label)
        assert answer["abstained"] == (plain.score < scores[2])
