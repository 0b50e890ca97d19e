"""Load a saved run and predict label names and probabilities for texts, pairs or whole files."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import MODEL_WEIGHTS_FILE, TOKENIZER_CONFIG_FILE, RunManifest, read_manifest, require_files
from .calibration import apply_temperature
from .config import BACKENDS
from .data import iter_frames, resolve_text_columns
from .errors import ConfigError, DataError
from .long_text import TRUNCATE, aggregate_windows, encode_long
from .metrics import evaluate_predictions, sigmoid, softmax
from .options import require_single_label
from .tasks import LABELS, MULTI_LABEL, REGRESSION, SINGLE_LABEL, TEXT, TEXT_PAIR
from .tokenization import encode, load_tokenizer

logger = logging.getLogger(__name__)

#: Output formats of :meth:`Predictor.predict_file`, by file extension.
OUTPUT_FORMATS = (".csv", ".tsv", ".jsonl", ".parquet")


@dataclass
class Prediction:
    """One text's prediction.

    ``label`` is the class name (a list of names for multi-label, the value for regression); ``score`` the
    probability of ``label`` (for multi-label the lowest probability among the chosen labels, for regression
    the value); ``probabilities`` maps every class name to its probability. With a minimum confidence
    (single-label), ``abstained`` says whether ``score`` fell below it, and then ``label`` is None.
    """

    label: Any
    score: float
    probabilities: dict[str, float]
    abstained: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        fields = {"label": self.label, "score": self.score, "probabilities": self.probabilities}
        return fields if self.abstained is None else {**fields, "abstained": self.abstained}


def select_device(device: str | None = None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_for_run(run: Path, manifest: RunManifest):
    """The trained model of a run, in eval mode, loaded by the run's strategy. Weights load from safetensors only."""
    from .strategies import get_strategy

    require_files(run, [TOKENIZER_CONFIG_FILE])
    return get_strategy(manifest.strategy).load(Path(run), manifest)


class Predictor:
    """Predict with a saved run.

    Example:
        >>> predictor = Predictor.load("runs/demo")  # doctest: +SKIP
        >>> predictor.predict(["a gripping, beautiful film"])[0].label  # doctest: +SKIP
        'fresh'
    """

    def __init__(
        self,
        model,
        tokenizer,
        manifest: RunManifest,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        min_confidence: float | None = None,
    ):
        from .onnx_model import OnnxModel

        require_single_label("min_confidence", min_confidence, manifest.task)
        self.min_confidence = min_confidence
        self.backend = "onnx" if isinstance(model, OnnxModel) else "torch"
        self.model = model if self.backend == "onnx" else model.to(device).eval()
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.device = "cpu" if self.backend == "onnx" else device
        self.batch_size = batch_size

    @classmethod
    def load(
        cls,
        run: str | os.PathLike,
        *,
        device: str | None = None,
        batch_size: int = 64,
        backend: str = "auto",
        min_confidence: float | None = None,
    ) -> Predictor:
        """Load the run folder written by :func:`texttune.train` (or by ``texttune export``).

        Args:
            run: The run folder.
            device: ``cpu`` or ``cuda`` (default: a GPU when there is one). ONNX models run on the CPU.
            batch_size: Texts per forward pass.
            backend: ``torch``, ``onnx`` (the run's ``onnx/model.onnx``, written by
                ``texttune export RUN --onnx``) or ``auto``: ONNX when the run has an export, ONNX Runtime
                is installed and the device is the CPU, else PyTorch.
            min_confidence: Single-label: abstain (no label) when the top probability is below this.

        Returns:
            The predictor.
        """
        from .onnx_model import OnnxModel, find_onnx_model, onnxruntime_available

        if backend not in BACKENDS:
            raise ConfigError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
        folder = Path(run)
        manifest = read_manifest(folder)
        device = select_device(device)
        onnx_path = find_onnx_model(folder)
        if backend == "onnx" and onnx_path is None:
            raise ConfigError(
                f"{folder} has no ONNX model; export one with `texttune export {folder} --onnx` "
                "or use --backend torch"
            )
        if backend == "auto":
            use_onnx = onnx_path is not None and device == "cpu"
            if use_onnx and not onnxruntime_available() and (folder / MODEL_WEIGHTS_FILE).is_file():
                logger.warning("%s has an ONNX model but onnxruntime is not installed; using PyTorch", folder)
                use_onnx = False
            backend = "onnx" if use_onnx else "torch"
        if backend == "onnx":
            model = OnnxModel(onnx_path)
            logger.info("predicting with ONNX Runtime: %s", onnx_path)
        else:
            model = load_model_for_run(folder, manifest)
        tokenizer = load_tokenizer(str(folder))
        return cls(
            model, tokenizer, manifest, device=device, batch_size=batch_size, min_confidence=min_confidence
        )

    @property
    def num_labels(self) -> int:
        return 1 if self.task == REGRESSION else len(self.manifest.label_names)

    @property
    def label_names(self) -> list[str]:
        return list(self.manifest.label_names)

    @property
    def task(self) -> str:
        return self.manifest.task

    def logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """Raw model outputs, shape (n, num_labels), in input order.

        Texts are sorted by length and batched so each batch pads to a similar length.
        """
        import torch

        texts = [str(t) for t in texts]
        if pairs is not None:
            pairs = [str(p) for p in pairs]
            if len(pairs) != len(texts):
                raise DataError(
                    f"got {len(texts)} texts but {len(pairs)} pair texts; give one pair text per text"
                )
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        documents = None
        if pairs is None and self.manifest.long_text != TRUNCATE:
            encoded, documents = encode_long(
                texts,
                self.tokenizer,
                self.manifest.max_length,
                self.manifest.long_text,
                self.manifest.stride or 0,
            )
        else:
            encoded = encode({TEXT: texts, TEXT_PAIR: pairs}, self.tokenizer, self.manifest.max_length)
        rows = len(encoded["input_ids"])
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        out = np.zeros((rows, self.num_labels), dtype=np.float32)
        keys = list(encoded.keys())
        with torch.inference_mode():
            for start in range(0, rows, self.batch_size):
                idx = order[start : start + self.batch_size]
                features = [{k: encoded[k][i] for k in keys} for i in idx]
                if self.backend == "onnx":
                    out[idx] = self.model(self.tokenizer.pad(features, return_tensors="np"))
                    continue
                batch = self.tokenizer.pad(features, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                out[idx] = self.model(**batch).logits.float().cpu().numpy()
        if documents is not None:  # sliding windows: one averaged row per text
            out = aggregate_windows(out, documents, len(texts))
        return out

    @property
    def thresholds(self) -> np.ndarray:
        """Multi-label decision thresholds, one per label (tuned at training time, else the single one)."""
        if self.manifest.thresholds:
            return np.asarray(self.manifest.thresholds, dtype=np.float64)
        return np.full(len(self.label_names), self.manifest.threshold, dtype=np.float64)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Class probabilities (calibrated, when the run fitted a temperature); regression: the values."""
        if self.task == REGRESSION:
            return logits
        logits = apply_temperature(logits, self.manifest.temperature)
        if self.task == MULTI_LABEL:
            return sigmoid(logits)
        return softmax(logits)

    def predict(
        self, texts: Sequence[str] | str, pairs: Sequence[str] | str | None = None
    ) -> list[Prediction]:
        """Predict label names and probabilities for each text (and its pair text)."""
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(pairs, str):
            pairs = [pairs]
        return self._to_predictions(self.probabilities(self.logits(texts, pairs)))

    def _to_predictions(self, probs: np.ndarray) -> list[Prediction]:
        names = self.label_names
        results = []
        for row in probs:
            if self.task == REGRESSION:
                value = float(row[0])
                results.append(Prediction(label=value, score=value, probabilities={}))
                continue
            probabilities = {name: float(p) for name, p in zip(names, row)}
            if self.task == MULTI_LABEL:
                chosen = [n for n, p, t in zip(names, row, self.thresholds) if p >= t]
                score = min((probabilities[n] for n in chosen), default=float(1 - row.max()))
                results.append(Prediction(label=chosen, score=score, probabilities=probabilities))
            else:
                best = int(row.argmax())
                score = float(row[best])
                abstained = None if self.min_confidence is None else score < self.min_confidence
                label = None if abstained else names[best]
                results.append(Prediction(label, score, probabilities, abstained))
        return results

    def evaluate(
        self, dataset, *, target_accuracy: float | None = None, analysis: bool = False, logits=None
    ) -> dict[str, Any]:
        """Every metric on a prepared dataset (columns ``text``, optional ``text_pair``, ``labels``).

        With the predictor's ``min_confidence`` the report adds coverage and the accuracy on the answered
        rows; ``target_accuracy`` adds the lowest threshold that reaches it (single-label runs).
        ``analysis`` adds the error analysis of :mod:`texttune.analysis` under ``analysis`` (single-label).
        ``logits`` are this predictor's logits of ``dataset`` when the caller already has them.
        """
        pairs = dataset[TEXT_PAIR] if TEXT_PAIR in dataset.column_names else None
        if logits is None:
            logits = self.logits(dataset[TEXT], pairs)
        report = evaluate_predictions(
            self.task,
            self.label_names,
            logits,
            np.asarray(dataset[LABELS]),
            self.thresholds,
            self.manifest.temperature,
            min_confidence=self.min_confidence,
            target_accuracy=target_accuracy,
        )
        if analysis and self.task == SINGLE_LABEL:
            from .analysis import error_analysis

            texts = dataset[TEXT] if pairs is None else [f"{a} || {b}" for a, b in zip(dataset[TEXT], pairs)]
            labels = np.asarray(dataset[LABELS])
            report["analysis"] = error_analysis(texts, labels, self.probabilities(logits), self.label_names)
        return report

    def explain(self, texts: Sequence[str] | str, label: str | None = None, steps: int | None = None) -> list:
        """Each word's attribution to the predicted class (or ``label``): see :mod:`texttune.explain`.

        Returns:
            One :class:`~texttune.explain.Explanation` per text.
        """
        from .explain import STEPS, explain_texts

        return explain_texts(self, [texts] if isinstance(texts, str) else texts, label, steps or STEPS)

    def iter_file_predictions(
        self,
        source: str,
        *,
        text_column: str | None = None,
        text_pair_column: str | None = None,
        chunk_size: int = 2048,
        encoding: str = "utf-8",
    ) -> Iterator[Any]:
        """Stream a file in chunks; yields each chunk (a DataFrame) with prediction columns added."""
        resolved: tuple[str, str | None] | None = None
        for frame in iter_frames(source, chunk_size, encoding=encoding):
            if resolved is None:
                resolved = resolve_text_columns(
                    [str(c) for c in frame.columns],
                    text_column or self._default_column(frame, self.manifest.text_column),
                    text_pair_column or self._default_column(frame, self.manifest.text_pair_column),
                )
            text_col, pair_col = resolved
            texts = frame[text_col].fillna("").astype(str).tolist()
            pairs = frame[pair_col].fillna("").astype(str).tolist() if pair_col else None
            probs = self.probabilities(self.logits(texts, pairs))
            yield self._add_columns(frame, probs)

    @staticmethod
    def _default_column(frame, name: str | None) -> str | None:
        """Reuse the training column name when the file has it; otherwise detect."""
        return name if name is not None and name in frame.columns else None

    def _add_columns(self, frame, probs: np.ndarray):
        frame = frame.copy()
        predictions = self._to_predictions(probs)
        if self.task == REGRESSION:
            frame["predicted_value"] = [p.label for p in predictions]
            return frame
        if self.task == MULTI_LABEL:
            frame["predicted_labels"] = [self._join(p.label) for p in predictions]
        else:
            frame["predicted_label"] = [p.label for p in predictions]
            frame["score"] = [p.score for p in predictions]
            if self.min_confidence is not None:
                frame["abstained"] = [p.abstained for p in predictions]
        for j, name in enumerate(self.label_names):
            frame[f"prob_{name}"] = probs[:, j]
        return frame

    def _join(self, labels: list[str]) -> str:
        return "|".join(labels)

    def predict_file(self, source: str, output: str | os.PathLike, **kwargs: Any) -> int:
        """Predict every row of ``source`` and write the rows with prediction columns to ``output``.

        Streams in chunks (memory does not grow with the file); ``output`` appears only when complete.
        Returns the number of rows written.
        """
        rows = write_chunks(self.iter_file_predictions(source, **kwargs), output)
        if rows == 0:
            raise DataError(f"{source} has no rows to predict")
        return rows


def write_chunks(chunks: Iterable[Any], output: str | os.PathLike) -> int:
    """Write data frames one after the other into one file (format by extension); returns the rows written.

    ``output`` appears only when complete, and not at all when there are no rows.
    """
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise DataError(f"--output {output} must end in one of {', '.join(OUTPUT_FORMATS)}")
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    output.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    writer = None
    try:
        for frame in chunks:
            rows += len(frame)
            writer = _write_chunk(tmp, suffix, frame, writer)
        if writer is not None and suffix == ".parquet":
            writer.close()
        if rows:
            os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows


def _write_chunk(path: Path, suffix: str, frame, writer):
    """Append one chunk; returns the writer state (the Parquet writer, or True once a header is written)."""
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table)
        return writer
    if suffix == ".jsonl":
        with path.open("a", encoding="utf-8") as handle:
            frame.to_json(handle, orient="records", lines=True, force_ascii=False)
        return True
    sep = "\t" if suffix == ".tsv" else ","
    frame.to_csv(path, mode="a", header=writer is None, index=False, sep=sep)
    return True
