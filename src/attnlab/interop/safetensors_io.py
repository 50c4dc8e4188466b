"""A validating safetensors reader and an atomic writer.

Dimension key: none (tensors of any shape are read and written whole).

File layout (https://huggingface.co/docs/safetensors)::

    [8 bytes: N, little-endian u64][N bytes: JSON header][data section]
    header = {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
              "__metadata__": {"str": "str"}}           offsets are relative to the data section

Nothing is allocated from an untrusted number before it is checked. The reader verifies, in order:
N fits in the file and below :data:`MAX_HEADER_BYTES`; the header is UTF-8 JSON, an object without
duplicate keys; every entry has exactly the three fields, a known dtype, a shape of non-negative
ints, offsets that are ints with begin <= end; (end - begin) == itemsize * numel; the entries,
sorted by offset, tile the data section exactly (no overlap, no hole, no trailing bytes); bool
tensors hold only 0/1. Any failure raises :class:`CheckpointError` naming the file and the tensor.
Only then are tensors created, as views of one buffer read from the file (copied when misaligned).
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from attnlab.interop.errors import CheckpointError

MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_RANK = 64

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64, "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class TensorEntry:
    """One validated header entry; ``begin``/``end`` are offsets into the data section."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise CheckpointError(f"duplicate keys in safetensors header: {dup[:5]}")
    return dict(pairs)


def _check_length(n: int, file_size: int, where: str) -> None:
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(f"{where}: header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
    if n > file_size - 8:
        raise CheckpointError(f"{where}: header length {n} runs past the end of the file ({file_size} bytes)")
    if n < 2:
        raise CheckpointError(f"{where}: header length {n} is too short to hold a JSON object")


def _parse_json(raw: bytes, where: str) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except CheckpointError as e:
        raise CheckpointError(f"{where}: {e}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{where}: header is not valid UTF-8 JSON ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: header must be a JSON object, got {type(header).__name__}")
    return header


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _entry(name: str, info: Any, where: str) -> TensorEntry:
    tag = f"{where}: tensor {name!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"{tag}: entry must be an object with exactly dtype, shape, data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise CheckpointError(f"{tag}: unknown dtype {dtype!r}; supported: {sorted(DTYPES)}")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_int(d) and d >= 0 for d in shape):
        raise CheckpointError(f"{tag}: shape must be a list of at most {MAX_RANK} non-negative ints, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
        raise CheckpointError(f"{tag}: data_offsets must be two non-negative ints, got {offsets!r}")
    begin, end = offsets
    if begin > end:
        raise CheckpointError(f"{tag}: data_offsets {offsets} are reversed")
    itemsize = torch.empty((), dtype=DTYPES[dtype]).element_size()
    if (end - begin) != itemsize * math.prod(shape):
        raise CheckpointError(
            f"{tag}: {end - begin} bytes do not hold a {dtype} tensor of shape {shape} "
            f"({itemsize * math.prod(shape)} bytes)"
        )
    return TensorEntry(name, DTYPES[dtype], tuple(shape), begin, end)


def parse_header(header: dict[str, Any], data_len: int, where: str) -> tuple[list[TensorEntry], dict[str, str]]:
    """Validate a decoded header against a data section of ``data_len`` bytes."""
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{where}: __metadata__ must map strings to strings")
    entries = sorted(
        (_entry(name, info, where) for name, info in header.items() if name != "__metadata__"),
        key=lambda e: (e.begin, e.end),
    )
    cursor = 0
    for e in entries:
        if e.begin < cursor:
            raise CheckpointError(f"{where}: tensor {e.name!r} at bytes [{e.begin}, {e.end}) overlaps the previous one")
        if e.begin > cursor:
            raise CheckpointError(f"{where}: unindexed bytes [{cursor}, {e.begin}) before tensor {e.name!r}")
        cursor = e.end
    if cursor != data_len:
        raise CheckpointError(
            f"{where}: tensors cover {cursor} bytes but the data section has {data_len} "
            f"({'truncated file' if cursor > data_len else 'trailing bytes'})"
        )
    return entries, dict(metadata)


def _tensors(entries: list[TensorEntry], data: bytearray, where: str) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for e in entries:
        itemsize = torch.empty((), dtype=e.dtype).element_size()
        count = (e.end - e.begin) // itemsize
        if count == 0:
            out[e.name] = torch.empty(e.shape, dtype=e.dtype)
            continue
        if e.begin % itemsize:  # misaligned: copy out so kernels see aligned memory
            t = torch.frombuffer(bytearray(data[e.begin : e.end]), dtype=e.dtype)
        else:
            t = torch.frombuffer(data, dtype=e.dtype, count=count, offset=e.begin)
        if e.dtype == torch.bool and bool((t.view(torch.uint8) > 1).any()):
            raise CheckpointError(f"{where}: bool tensor {e.name!r} holds bytes other than 0 and 1")
        out[e.name] = t.view(e.shape)
    return out


def load_safetensors_bytes(blob: bytes | bytearray, *, where: str = "<bytes>") -> dict[str, Tensor]:
    """Parse a whole safetensors file held in memory (validated exactly like :func:`read_safetensors`)."""
    return _load(blob, where)[0]


def _load(blob: bytes | bytearray, where: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    if len(blob) < 8:
        raise CheckpointError(f"{where}: {len(blob)} bytes is too short for a safetensors file (needs 8+)")
    (n,) = struct.unpack("<Q", bytes(blob[:8]))
    _check_length(n, len(blob), where)
    entries, metadata = parse_header(_parse_json(bytes(blob[8 : 8 + n]), where), len(blob) - 8 - n, where)
    return _tensors(entries, bytearray(blob[8 + n :]), where), metadata


def read_safetensors(path: str | Path, *, with_metadata: bool = False) -> Any:
    """Read a safetensors file into ``{name: tensor}`` (CPU), after validating it fully.

    With ``with_metadata=True`` returns ``(tensors, metadata)``. Raises :class:`CheckpointError`.
    """
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{where}: {len(head)} bytes is too short for a safetensors file (needs 8+)")
            (n,) = struct.unpack("<Q", head)
            _check_length(n, size, where)
            header = _parse_json(f.read(n), where)
            entries, metadata = parse_header(header, size - 8 - n, where)
            data = bytearray(size - 8 - n)
            if f.readinto(data) != len(data):
                raise CheckpointError(f"{where}: file shrank while being read")
    except OSError as e:
        raise CheckpointError(f"{where}: cannot read ({e})") from None
    tensors = _tensors(entries, data, where)
    return (tensors, metadata) if with_metadata else tensors


def write_safetensors(path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` atomically (temp file in the same folder, then ``os.replace``).

    Tensors are moved to CPU and made contiguous; tensors that share memory are copied apart, since
    the format stores each one separately.
    """
    from safetensors.torch import save_file

    path = Path(path)
    seen: set[tuple[int, int]] = set()
    clean: dict[str, Tensor] = {}
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, Tensor):
            raise CheckpointError(f"cannot write {name!r}: names must be str and values tensors")
        if t.dtype not in DTYPE_NAMES:
            raise CheckpointError(f"cannot write {name!r}: dtype {t.dtype} has no safetensors name")
        t = t.detach().to("cpu").contiguous()
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if t.numel() and (key in seen or storage.nbytes() != t.numel() * t.element_size()):
            t = t.clone()  # a view into a bigger or shared buffer: store its own bytes
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        clean[name] = t
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(clean, tmp, metadata={"format": "pt", **(metadata or {})})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temp file in the same folder, then ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def floating_dtype(state: dict[str, Tensor]) -> torch.dtype | None:
    """The dtype a checkpoint stores its floating-point tensors in (the first one's), or None."""
    return next((t.dtype for t in state.values() if t.is_floating_point()), None)
