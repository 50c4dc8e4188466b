"""The validating safetensors reader: valid files load exactly; hundreds of malformed files (every
truncation, hostile lengths, overlapping / out-of-bounds offsets, bad dtypes and shapes, random header
corruption) raise CheckpointError and nothing else, without large allocations; writes are atomic."""

import json
import random
import struct
import tracemalloc

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from attnlab.interop import CheckpointError
from attnlab.interop.safetensors_io import DTYPES, load_safetensors_bytes, read_safetensors, write_safetensors


def sample_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(2, 3, generator=g),
        "ids": torch.arange(4, dtype=torch.int64),
        "half": torch.randn(3, generator=g).to(torch.bfloat16),
        "flags": torch.tensor([True, False, True]),
        "bytes": torch.arange(4, dtype=torch.uint8).view(2, 2),
        "empty": torch.zeros(0, 5, dtype=torch.float16),
    }


def build(header, data: bytes = b"", n: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if n is None else n) + raw + data


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def malformed_files() -> list[tuple[str, bytes]]:
    """(label, bytes) for every malformed case; at least 200 of them."""
    valid = st_save(sample_tensors())
    cases = [(f"truncated at byte {k}", valid[:k]) for k in range(len(valid))]
    (n,) = struct.unpack("<Q", valid[:8])
    header, data = valid[8 : 8 + n], valid[8 + n :]
    for bad_n in (2**64 - 1, 2**63, 2**40, 100 * 1024 * 1024 + 1, len(valid), len(valid) - 7, n + 1, 0, 1):
        cases.append((f"header length {bad_n}", build(header, data, bad_n)))
    eight = b"\x00" * 8
    hostile = {
        "overlap": ({"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))}, bytes(12)),
        "out of bounds": ({"a": entry(offsets=(0, 8)), "b": entry(offsets=(8, 16))}, eight),
        "far out of bounds": ({"a": entry(offsets=(2**62, 2**62 + 8))}, eight),
        "reversed offsets": ({"a": entry(offsets=(8, 0))}, eight),
        "negative offset": ({"a": entry(offsets=(-8, 0))}, eight),
        "float offset": ({"a": entry(offsets=(0.0, 8.0))}, eight),
        "string offset": ({"a": entry(offsets=("0", "8"))}, eight),
        "bool offset": ({"a": entry(offsets=(False, 8))}, eight),
        "three offsets": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4, 8]}}, eight),
        "unknown dtype": ({"a": entry(dtype="F33")}, eight),
        "lowercase dtype": ({"a": entry(dtype="f32")}, eight),
        "dtype not a string": ({"a": entry(dtype=4)}, eight),
        "shape too big for bytes": ({"a": entry(shape=(3,))}, eight),
        "shape too small": ({"a": entry(shape=(1,))}, eight),
        "huge shape": ({"a": entry(shape=(2**31, 2**31, 2**31))}, eight),
        "negative dim": ({"a": entry(shape=(-2,))}, eight),
        "float dim": ({"a": entry(shape=(2.0,))}, eight),
        "bool dim": ({"a": entry(shape=(True, 2))}, eight),
        "shape not a list": ({"a": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, eight),
        "rank 65": ({"a": entry(shape=(1,) * 64 + (2,))}, eight),
        "missing field": ({"a": {"dtype": "F32", "shape": [2]}}, eight),
        "extra field": ({"a": {**entry(), "extra": 1}}, eight),
        "entry not an object": ({"a": [0, 8]}, eight),
        "hole between tensors": ({"a": entry(offsets=(0, 8)), "b": entry(offsets=(12, 20))}, bytes(20)),
        "hole at start": ({"a": entry(offsets=(4, 12))}, bytes(12)),
        "trailing bytes": ({"a": entry()}, bytes(12)),
        "bool byte 2": ({"a": entry(dtype="BOOL", shape=(2,), offsets=(0, 2))}, b"\x01\x02"),
        "metadata not strings": ({"__metadata__": {"format": 1}, "a": entry()}, eight),
        "metadata a list": ({"__metadata__": ["pt"], "a": entry()}, eight),
    }
    for label, (hdr, payload) in hostile.items():
        cases.append((label, build(hdr, payload)))
    raw_headers = {
        "not json": b"{not json}",
        "json array": b"[1, 2]",
        "json number": b"12345",
        "not utf-8": b'{"\xff\xfe": 1}',
        "duplicate keys": b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
        b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
        "deep nesting": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "empty header": b"",
        "nul bytes": b"\x00" * 16,
    }
    for label, raw in raw_headers.items():
        cases.append((label, build(raw, eight)))
    return cases


def corrupted_headers(count: int = 150) -> list[tuple[str, bytes]]:
    """Random byte edits inside the header: may by chance stay valid, but must never crash."""
    valid = bytearray(st_save(sample_tensors()))
    (n,) = struct.unpack("<Q", valid[:8])
    rng = random.Random(1234)
    out = []
    for i in range(count):
        blob = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            blob[rng.randrange(8, 8 + n)] = rng.choice(b'{}[]",:0123456789-.eEaFIUB \x00\xff')
        out.append((f"random header edit {i}", bytes(blob)))
    return out


def test_valid_file_loads_exactly_like_the_safetensors_library(tmp_path):
    blob = st_save(sample_tensors(), metadata={"format": "pt", "note": "hi"})
    (tmp_path / "ok.safetensors").write_bytes(blob)
    ours, meta = read_safetensors(tmp_path / "ok.safetensors", with_metadata=True)
    theirs = st_load(blob)
    assert meta == {"format": "pt", "note": "hi"}
    assert ours.keys() == theirs.keys()
    for k in theirs:
        assert ours[k].dtype == theirs[k].dtype and torch.equal(ours[k], theirs[k]), k
    assert load_safetensors_bytes(blob).keys() == theirs.keys()


@pytest.mark.parametrize("name, dtype", sorted(DTYPES.items()))
def test_every_supported_dtype_round_trips(tmp_path, name, dtype):
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    t = (t > 2) if dtype == torch.bool else t.to(dtype)
    write_safetensors(tmp_path / "x.safetensors", {"t": t})
    back = read_safetensors(tmp_path / "x.safetensors")["t"]
    assert back.dtype == dtype and back.shape == (2, 3)
    assert torch.equal(back.view(torch.uint8), t.view(torch.uint8)) if t.element_size() == 1 else torch.equal(
        back.float(), t.float()
    )


def test_at_least_200_malformed_files_each_raise_checkpoint_error(tmp_path):
    cases = malformed_files()
    assert len(cases) >= 200
    for i, (label, blob) in enumerate(cases):
        path = tmp_path / f"bad_{i:04d}.safetensors"
        path.write_bytes(blob)
        with pytest.raises(CheckpointError):
            read_safetensors(path)
            pytest.fail(f"{label}: accepted")
        with pytest.raises(CheckpointError):
            load_safetensors_bytes(blob)


def test_random_header_corruption_never_crashes(tmp_path):
    outcomes = {"rejected": 0, "accepted": 0}
    for i, (label, blob) in enumerate(corrupted_headers()):
        path = tmp_path / f"fuzz_{i:04d}.safetensors"
        path.write_bytes(blob)
        try:
            tensors = read_safetensors(path)
        except CheckpointError:
            outcomes["rejected"] += 1
        else:  # a harmless edit (e.g. inside a name): what loads must be self-consistent
            outcomes["accepted"] += 1
            assert all(isinstance(t, torch.Tensor) for t in tensors.values()), label
    assert outcomes["rejected"] > 100


def test_hostile_sizes_allocate_nothing_large(tmp_path):
    cases = [build(b"{}", n=2**63), build({"a": entry(shape=(2**31, 2**31))}, bytes(8)),
             build({"a": entry(offsets=(0, 2**62))}, bytes(8))]
    tracemalloc.start()
    try:
        for i, blob in enumerate(cases):
            path = tmp_path / f"big_{i}.safetensors"
            path.write_bytes(blob)
            with pytest.raises(CheckpointError):
                read_safetensors(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_error_messages_name_the_file_and_tensor(tmp_path):
    path = tmp_path / "named.safetensors"
    path.write_bytes(build({"encoder.weight": entry(shape=(3,))}, bytes(8)))
    with pytest.raises(CheckpointError, match=r"named\.safetensors.*'encoder\.weight'.*8 bytes"):
        read_safetensors(path)


def test_misaligned_tensors_are_copied_and_correct():
    payload = b"\x07" + struct.pack("<2f", 1.5, -2.0)
    blob = build({"u": entry("U8", (1,), (0, 1)), "f": entry("F32", (2,), (1, 9))}, payload)
    out = load_safetensors_bytes(blob)
    assert out["u"].tolist() == [7] and out["f"].tolist() == [1.5, -2.0]


def test_write_is_atomic_and_copies_shared_memory(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"old contents")
    base = torch.arange(12.0)
    q, k, v = base.chunk(3)  # views of one storage, as a fused-qkv split produces
    write_safetensors(path, {"q": q, "k": k, "v": v, "same": q})
    out = read_safetensors(path)
    assert torch.equal(out["k"], k) and torch.equal(out["same"], q)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]  # no temp file left behind


def test_write_refuses_non_tensors(tmp_path):
    with pytest.raises(CheckpointError, match="must be str and values tensors"):
        write_safetensors(tmp_path / "x.safetensors", {"a": [1, 2]})
    assert not list(tmp_path.iterdir())
