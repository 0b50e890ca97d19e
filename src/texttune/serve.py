"""An HTTP server over :class:`~texttune.inference.Predictor` (optional extra: ``pip install 'texttune[serve]'``).

``POST /predict`` takes ``{"texts": [...], "pairs": [...]}``; ``GET /health``, ``GET /labels`` and the
OpenAPI docs at ``/docs``. Requests are checked before they reach the model (413 for too many or too
long texts or a too large body, 422 for malformed JSON or wrong types, never a 500 for bad input), and
concurrent requests are micro-batched: a collector waits up to ``batch_wait_ms`` for more requests and
runs one model call for all of them in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .config import MIN_CONFIDENCE_HELP
from .errors import ConfigError
from .options import require_at_least, require_probability

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    """Limits and batching of ``texttune serve``."""

    host: str = field(
        default="127.0.0.1",
        metadata={"help": "Address to bind. The default answers only this machine; the server has no auth."},
    )
    port: int = field(default=8000, metadata={"help": "Port to listen on (0: any free port)."})
    max_batch_size: int = field(default=64, metadata={"help": "Most texts in one request (more: 413)."})
    max_text_chars: int = field(
        default=20_000, metadata={"help": "Longest text or pair text in characters (longer: 413)."}
    )
    batch_wait_ms: float = field(
        default=5.0,
        metadata={"help": "How long the first request of a micro-batch waits for others (0: no waiting)."},
    )
    max_micro_batch: int = field(
        default=128, metadata={"help": "Most texts one model call handles across concurrent requests."}
    )
    max_queue: int = field(
        default=4096, metadata={"help": "Most texts waiting for the model; beyond it requests get 503."}
    )
    min_confidence: float | None = field(
        default=None, metadata={"help": f"{MIN_CONFIDENCE_HELP} Answers then carry `abstained`."}
    )
    max_explain_texts: int = field(
        default=8,
        metadata={"help": "Most texts in one POST /explain request (each costs about 50 forward passes)."},
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, got {self.port}")
        for name in ("max_batch_size", "max_text_chars", "max_micro_batch", "max_queue", "max_explain_texts"):
            require_at_least(self, name, 1)
        require_probability(self, ("min_confidence",))
        if self.batch_wait_ms < 0:
            raise ConfigError(f"--batch-wait-ms must not be negative, got {self.batch_wait_ms}")
        if self.max_micro_batch < self.max_batch_size:
            raise ConfigError(
                f"--max-micro-batch ({self.max_micro_batch}) must be at least --max-batch-size "
                f"({self.max_batch_size}) so that every allowed request fits one model call"
            )

    @property
    def max_body_bytes(self) -> int:
        """Largest request body: every allowed text and pair text at full length as 4-byte UTF-8, plus JSON."""
        return 2 * self.max_batch_size * (4 * self.max_text_chars + 16) + 4096


def _require_fastapi():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError(
            "texttune serve needs FastAPI and uvicorn: pip install 'texttune[serve]' "
            "(or pip install fastapi uvicorn)"
        ) from None


@dataclass
class _Job:
    texts: list[str]
    pairs: list[str] | None
    future: asyncio.Future


class MicroBatcher:
    """Collect concurrent requests for up to ``wait`` seconds and answer them with one model call.

    Requests with pairs and without pairs go into separate model calls. The model runs in one worker
    thread, so the event loop keeps accepting requests while it computes.
    """

    def __init__(self, predictor, *, wait: float, max_texts: int, max_queue: int):
        self.predictor = predictor
        self.wait = wait
        self.max_texts = max_texts
        self.max_queue = max_queue
        self.queue: asyncio.Queue[_Job] | None = None
        self.pending = 0
        self.requests = 0
        self.batches = 0
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="texttune-model")

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    def busy(self, n: int) -> bool:
        return self.pending + n > self.max_queue

    async def run(self, function, *args):
        """``function(*args)`` in the model's thread, between micro-batches (e.g. explanations)."""
        self.requests += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def predict(self, texts: list[str], pairs: list[str] | None) -> list[Any]:
        assert self.queue is not None, "MicroBatcher.start() was not called"
        future = asyncio.get_running_loop().create_future()
        self.pending += len(texts)
        self.requests += 1
        await self.queue.put(_Job(texts, pairs, future))
        return await future

    async def _collect(self) -> list[_Job]:
        assert self.queue is not None
        jobs = [await self.queue.get()]
        size = len(jobs[0].texts)
        deadline = time.perf_counter() + self.wait
        while size < self.max_texts:
            timeout = deadline - time.perf_counter()
            if timeout <= 0 and self.queue.empty():
                break
            try:
                job = (
                    self.queue.get_nowait()
                    if timeout <= 0
                    else await asyncio.wait_for(self.queue.get(), timeout)
                )
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if size + len(job.texts) > self.max_texts:
                self.queue.put_nowait(job)  # goes to the back; answered in the next batch
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            for with_pairs in (False, True):
                group = [job for job in jobs if (job.pairs is not None) == with_pairs]
                if not group:
                    continue
                texts = [t for job in group for t in job.texts]
                pairs = [p for job in group for p in job.pairs] if with_pairs else None
                self.batches += 1
                try:
                    predictions = await loop.run_in_executor(
                        self._executor, self.predictor.predict, texts, pairs
                    )
                except Exception as exc:  # a model failure answers its requests, never kills the loop
                    logger.exception("prediction failed")
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                finally:
                    self.pending -= len(texts)
                start = 0
                for job in group:
                    end = start + len(job.texts)
                    if not job.future.done():
                        job.future.set_result(predictions[start:end])
                    start = end


def create_app(predictor, config: ServeConfig | None = None):
    """The FastAPI application serving ``predictor``.

    Args:
        predictor: A loaded :class:`~texttune.inference.Predictor`.
        config: Limits and batching; defaults to :class:`ServeConfig`'s.

    Returns:
        A FastAPI app; run it with uvicorn, or use :func:`serve`.

    Example:
        >>> from texttune import Predictor
        >>> app = create_app(Predictor.load("runs/demo"))  # doctest: +SKIP
    """
    _require_fastapi()
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    config = config or ServeConfig()
    batcher = MicroBatcher(
        predictor,
        wait=config.batch_wait_ms / 1000,
        max_texts=config.max_micro_batch,
        max_queue=config.max_queue,
    )

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="texttune",
        description=f"Text classification with the run trained from {predictor.manifest.base_model}.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.config = config
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    _add_routes(app, predictor, batcher, config)
    return app


def _error(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": message})


def _add_error_handlers(app) -> None:
    """Every failure answers ``{"error": "one line saying what to fix"}``; bad input never gives a 500."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for item in exc.errors()[:5]:
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        message = "; ".join(problems) or "invalid request"
        return _error(422, f'{message} (expected JSON like {{"texts": ["..."]}})')

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 400:
            message += ' (send UTF-8 JSON like {"texts": ["..."]})'
        return JSONResponse(status_code=exc.status_code, content={"error": message}, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}")


def request_problem(
    texts: list[str], pairs: list[str] | None, config: ServeConfig, limit: str = "max_batch_size"
) -> tuple[int, str] | None:
    """The status and message for a request the limits refuse, or None when it may reach the model.

    ``limit`` names the ``ServeConfig`` field that caps the number of texts.
    """
    if not texts:
        return 422, "texts is empty; give at least one text"
    most = getattr(config, limit)
    if len(texts) > most:
        return 413, (
            f"{len(texts)} texts exceed the limit of {most} per request; split the request "
            f"(or start the server with a larger --{limit.replace('_', '-')})"
        )
    if pairs is not None and len(pairs) != len(texts):
        return 422, f"got {len(texts)} texts but {len(pairs)} pairs; give one pair per text"
    for kind, values in (("text", texts), ("pair", pairs or [])):
        for i, value in enumerate(values):
            if len(value) > config.max_text_chars:
                return 413, (
                    f"{kind} {i} has {len(value)} characters, more than the limit of {config.max_text_chars} "
                    "(start the server with a larger --max-text-chars)"
                )
    return None


def _add_routes(app, predictor, batcher: MicroBatcher, config: ServeConfig) -> None:
    from pydantic import BaseModel, ConfigDict, Field, StrictStr

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[StrictStr] = Field(description="Texts to classify.", examples=[["a gripping film"]])
        pairs: list[StrictStr] | None = Field(
            default=None, description="Second text of each pair (pair models only), one per text."
        )

    class Prediction(BaseModel):
        label: Any = Field(
            description="Class name; a list of names for multi-label; the value for regression."
        )
        score: float
        probabilities: dict[str, float]
        abstained: bool | None = Field(
            default=None, description="With --min-confidence: no label, because score is below it."
        )

    class PredictResponse(BaseModel):
        predictions: list[Prediction]

    @app.get("/health", summary="Liveness and a few counters")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "task": predictor.task,
            "labels": len(predictor.label_names),
            "requests": batcher.requests,
            "model_calls": batcher.batches,
            "pending_texts": batcher.pending,
        }

    @app.get("/labels", summary="The task and its label names")
    async def labels() -> dict[str, Any]:
        return {"task": predictor.task, "labels": predictor.label_names}

    async def predict(request: PredictRequest):
        texts, pairs = request.texts, request.pairs
        problem = request_problem(texts, pairs, config)
        if problem is not None:
            return _error(*problem)
        if batcher.busy(len(texts)):
            return _error(503, "server busy: too many texts waiting; retry shortly")
        predictions = await batcher.predict(list(texts), list(pairs) if pairs is not None else None)
        return {"predictions": [p.to_dict() for p in predictions]}

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[StrictStr] = Field(description="Texts to explain.", examples=[["a gripping film"]])
        label: StrictStr | None = Field(
            default=None, description="Explain this class instead of each text's predicted class."
        )

    async def explain(request: ExplainRequest):
        problem = request_problem(request.texts, None, config, limit="max_explain_texts")
        if problem is not None:
            return _error(*problem)
        if predictor.backend != "torch":
            return _error(501, "explanations need the run's PyTorch model; this server runs its ONNX export")
        if request.label is not None and request.label not in predictor.label_names:
            return _error(
                422,
                f"label {request.label!r} is not a class; choose one of {', '.join(predictor.label_names)}",
            )
        explanations = await batcher.run(predictor.explain, list(request.texts), request.label)
        return {"explanations": [e.to_dict() for e in explanations]}

    # The request models are local to this function, which a string annotation (PEP 563) cannot name.
    explain.__annotations__["request"] = ExplainRequest
    predict.__annotations__["request"] = PredictRequest
    app.post(
        "/predict",
        response_model=PredictResponse,
        summary="Classify texts (or text pairs)",
        responses={413: {"description": "too many or too long texts"}, 422: {"description": "malformed"}},
    )(predict)
    app.post(
        "/explain",
        summary="Each word's attribution to the predicted class (captum Layer Integrated Gradients)",
        responses={413: {"description": "too many or too long texts"}, 422: {"description": "malformed"}},
    )(explain)


class BodyLimit:
    """ASGI middleware: answer 413 as soon as a request body (declared or streamed) exceeds ``limit`` bytes."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _send_error(send, 413, f"request body exceeds the limit of {self.limit} bytes")
        received = 0
        started = False  # the app has begun its response
        refused = False  # we answered 413: whatever the app sends afterwards is dropped
        message = f"request body exceeds the limit of {self.limit} bytes"

        async def limited_receive():
            nonlocal received, refused
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.limit:
                    if not started and not refused:
                        refused = True
                        await _send_error(send, 413, message)
                    raise _BodyTooLarge  # aborts reading the body
            return event

        async def guarded_send(event):
            nonlocal started
            if refused:
                return
            started = started or event["type"] == "http.response.start"
            await send(event)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)


class _BodyTooLarge(Exception):
    pass


async def _send_error(send, status: int, message: str) -> None:
    import json

    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _ServerThread(threading.Thread):
    """Run uvicorn in a background thread (tests and benchmarks); ``port`` is known once ``ready`` is set."""

    def __init__(self, app, host: str, port: int):
        import uvicorn

        super().__init__(daemon=True)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.ready = threading.Event()
        self.port = port

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        task = asyncio.create_task(self.server.serve())
        while not self.server.started and not task.done():
            await asyncio.sleep(0.01)
        if self.server.servers:
            self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.ready.set()
        await task

    def stop(self) -> None:
        self.server.should_exit = True
        self.join(timeout=10)


def start_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> _ServerThread:
    """Start ``app`` on ``host:port`` in a daemon thread and wait until it listens; ``.stop()`` ends it.

    Example:
        >>> server = start_in_thread(create_app(predictor))  # doctest: +SKIP
        >>> server.port  # doctest: +SKIP
    """
    _require_fastapi()
    thread = _ServerThread(app, host, port)
    thread.start()
    if not thread.ready.wait(timeout=30) or not thread.server.started:
        thread.stop()
        raise ConfigError(f"the server could not listen on {host}:{port} (is the port in use?)")
    return thread


def serve(run: str, config: ServeConfig | None = None, *, device: str | None = None) -> None:
    """Load a run and serve it until interrupted (``texttune serve RUN``).

    Args:
        run: A run folder written by ``texttune train``.
        config: Address, limits and batching.
        device: ``cpu`` or ``cuda``; default: CUDA when available.
    """
    _require_fastapi()
    import uvicorn

    from .inference import Predictor

    config = config or ServeConfig()
    if config.host not in LOOPBACK:
        logger.warning(
            "serving on %s: anyone who can reach this address can use the model (there is no authentication)",
            config.host,
        )
    predictor = Predictor.load(
        run, device=device, batch_size=config.max_micro_batch, min_confidence=config.min_confidence
    )
    app = create_app(predictor, config)
    logger.info("serving %s on http://%s:%d (docs at /docs)", run, config.host, config.port)
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        raise ConfigError(
            f"could not listen on {config.host}:{config.port} (is the port in use? choose another --port)"
        ) from exc
