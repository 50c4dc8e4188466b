"""Training checkpoints: atomic, verified and resumable, in safetensors + JSON (never pickle).

Dimension key: none (tensors of any shape are stored whole and flat by name).

One checkpoint is one directory under the run's checkpoint root::

    step-00001200/
      model.safetensors            full model state; tied duplicates stored once (state.json "aliases")
      optimizer.safetensors        optimizer tensors as "<parameter name>/<key>" (exp_avg, exp_avg_sq, step)
      rng-rank00000.safetensors    each process's RNG streams (torch CPU/CUDA, python, numpy) as uint8/int64
      state.json                   step, tokens seen, data position, schedule, scaler, config, fingerprints
      COMPLETE                     manifest written last: every file's size and sha256

It is written into ``.tmp-step-00001200/``, every file is fsync'ed, the manifest is written, and the
directory is renamed into place (then the root is fsync'ed): a crash or SIGKILL at any moment leaves
either the whole checkpoint or a temp directory that resuming ignores and the next save removes. Any
write error raises :class:`CheckpointSaveError`; older checkpoints are never touched before the new
one is complete, and only then are all but the newest ``keep_last`` (>= 2) removed.

Test hook: with ``ATTNLAB_CKPT_FAULT="<step>:<stage>"`` in the environment the process kills itself
with SIGKILL while saving that step, at stage ``files`` (data written, no manifest), ``marker``
(manifest written, not renamed) or ``rename`` (renamed, older ones not pruned).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import signal
import struct
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from attnlab.interop.errors import CheckpointError
from attnlab.interop.safetensors_io import DTYPE_NAMES, read_safetensors
from attnlab.training.errors import CheckpointSaveError

FORMAT = "attnlab-train-checkpoint"
VERSION = 1
MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d{8,})$")


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def rng_file_name(rank: int) -> str:
    return f"rng-rank{rank:05d}.safetensors"


# ----------------------------------------------------------------------------- low-level writing


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is written (the one place file data goes through)."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        n = os.write(fd, view)
        view = view[n:]


def _write_file(path: Path, chunks: Iterable[bytes | memoryview]) -> dict[str, Any]:
    """Create ``path`` (it must not exist), write, fsync; return ``{"bytes", "sha256"}``."""
    digest, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for chunk in chunks:
            _write_all(fd, chunk)
            digest.update(chunk)
            size += memoryview(chunk).nbytes
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"bytes": size, "sha256": digest.hexdigest()}


def write_json(path: Path, obj: Any) -> dict[str, Any]:
    return _write_file(path, [json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n"])


def _tensor_bytes(t: Tensor) -> memoryview:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def write_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Stream ``tensors`` to a safetensors file (no whole-file copy in memory); see :func:`_write_file`."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt", **(metadata or {})}}
    offset = 0
    for name, t in tensors.items():
        if t.dtype not in DTYPE_NAMES:
            raise CheckpointError(f"cannot store {name!r}: dtype {t.dtype} has no safetensors name")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    chunks = (_tensor_bytes(t) for t in tensors.values())
    return _write_file(path, [struct.pack("<Q", len(raw)), raw, *chunks])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 23):
            digest.update(chunk)
    return digest.hexdigest()


def _fault_point(stage: str, step: int) -> None:
    """Test hook: SIGKILL this process at ``stage`` of saving ``step`` (see the module docstring)."""
    spec = os.environ.get("ATTNLAB_CKPT_FAULT")
    if spec and spec == f"{step}:{stage}":
        os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------- RNG states


def capture_rng() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """This process's RNG streams: tensors (uint8 bytes / int64 words) and JSON scalars."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {
        "torch_cpu": torch.get_rng_state(),
        "python_words": torch.tensor(words, dtype=torch.int64),
        "numpy_keys": torch.from_numpy(np.ascontiguousarray(keys, dtype=np.uint32).view(np.uint8).copy()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    meta = {"python_version": version, "python_gauss": gauss, "numpy_kind": kind, "numpy_pos": int(pos),
            "numpy_has_gauss": int(has_gauss), "numpy_cached_gaussian": float(cached)}
    return tensors, meta


def restore_rng(tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(tensors["torch_cpu"].to(torch.uint8))
    words = tuple(int(w) for w in tensors["python_words"].tolist())
    random.setstate((meta["python_version"], words, meta["python_gauss"]))
    keys = tensors["numpy_keys"].numpy().view(np.uint32)
    np.random.set_state((meta["numpy_kind"], keys, meta["numpy_pos"], meta["numpy_has_gauss"],
                         meta["numpy_cached_gaussian"]))
    cuda = sorted(k for k in tensors if k.startswith("torch_cuda_"))
    if cuda and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            warnings.warn(f"checkpoint has CUDA RNG states for {len(cuda)} devices, this process sees "
                          f"{torch.cuda.device_count()}; CUDA RNG streams restored only where both exist")
        for k in cuda[: torch.cuda.device_count()]:
            torch.cuda.set_rng_state(tensors[k].to(torch.uint8), int(k.rsplit("_", 1)[1]))


# ----------------------------------------------------------------------------- state-dict flattening


def find_aliases(module: nn.Module) -> dict[str, str]:
    """``{alias: canonical}`` for parameters/buffers registered under several names (tied weights)."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    named = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    for name, t in named:
        if id(t) in first:
            aliases[name] = first[id(t)]
        else:
            first[id(t)] = name
    return aliases


def model_fingerprint(state: dict[str, Tensor]) -> dict[str, list[Any]]:
    """``{name: [shape, dtype]}``: what must match for a checkpoint to load into a model."""
    return {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in sorted(state.items())}


def flatten_optimizer(osd: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A name-keyed optimizer state dict -> (``{"<param>/<key>": tensor}``, JSON part)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param, entries in osd["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"{param}/{key}"] = value
            else:
                scalars.setdefault(param, {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in osd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, Tensor], json_part: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, dict[str, Any]] = {}
    for flat, value in tensors.items():
        param, key = flat.rsplit("/", 1)
        state.setdefault(param, {})[key] = value
    for param, entries in json_part["scalars"].items():
        state.setdefault(param, {}).update(entries)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in json_part["param_groups"]]
    return {"state": state, "param_groups": groups}


# ----------------------------------------------------------------------------- reading


@dataclasses.dataclass
class LoadedCheckpoint:
    path: Path
    state: dict[str, Any]  # state.json
    model: dict[str, Tensor]  # aliases restored
    optimizer: dict[str, Any]  # name-keyed optimizer state dict
    rng: tuple[dict[str, Tensor], dict[str, Any]] | None  # this rank's streams (None: no file for it)


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Check the manifest against the files (sizes and sha256); return the manifest or raise CheckpointError."""
    marker = path / MARKER
    if not marker.is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (no {MARKER} marker); it was interrupted while saving")
    manifest = json.loads(marker.read_text())
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CheckpointError(f"{path}: not an {FORMAT} v{VERSION} checkpoint")
    for name, info in manifest["files"].items():
        f = path / name
        if not f.is_file() or f.stat().st_size != info["bytes"] or _sha256(f) != info["sha256"]:
            raise CheckpointError(f"{path}: file {name} is missing or damaged (size/sha256 differ from {MARKER})")
    return manifest


def read_checkpoint(path: str | Path, rank: int = 0) -> LoadedCheckpoint:
    """Verify and read one checkpoint directory (raises :class:`CheckpointError` if damaged)."""
    path = Path(path)
    try:
        verify_checkpoint(path)
        return _read_verified(path, rank)
    except CheckpointError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as e:  # unreadable or malformed JSON / layout
        raise CheckpointError(f"{path}: malformed training checkpoint ({type(e).__name__}: {e})") from e


def _read_verified(path: Path, rank: int) -> LoadedCheckpoint:
    state = json.loads((path / "state.json").read_text())
    model = read_safetensors(path / "model.safetensors")
    for alias, canonical in state["aliases"].items():
        model[alias] = model[canonical]
    optimizer = unflatten_optimizer(read_safetensors(path / "optimizer.safetensors"), state["optimizer"])
    rng = None
    if (path / rng_file_name(rank)).is_file():
        tensors, meta = read_safetensors(path / rng_file_name(rank), with_metadata=True)
        rng = (tensors, json.loads(meta["rng"]))
    return LoadedCheckpoint(path, state, model, optimizer, rng)


# ----------------------------------------------------------------------------- the directory of checkpoints


def _single_process_agree(ok: bool) -> bool:
    return ok


class CheckpointDir:
    """The checkpoints of one run: atomic save, newest-complete lookup, pruning to ``keep_last``.

    Multi-process: every rank calls :meth:`save` (each writes its RNG file; rank 0 writes the rest);
    ``agree(ok) -> all ranks ok`` is a collective (an all-reduce) so that a failure on any rank makes
    every rank raise instead of waiting forever.
    """

    def __init__(
        self, root: str | Path, *, keep_last: int = 2, rank: int = 0, agree: Callable[[bool], bool] | None = None
    ) -> None:
        if keep_last < 2:
            raise ValueError(f"keep_last must be >= 2 (so a damaged newest checkpoint has a fallback), got {keep_last}")
        self.root, self.keep_last, self.rank = Path(root), keep_last, rank
        self.agree = agree or _single_process_agree

    def complete(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of checkpoints with a completion marker, newest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := _STEP_DIR.match(p.name))]
        return sorted(((s, p) for s, p in found if (p / MARKER).is_file()), reverse=True)

    def load_latest(self) -> LoadedCheckpoint | None:
        """The newest checkpoint that verifies; damaged ones are skipped with a warning."""
        for _, path in self.complete():
            try:
                return read_checkpoint(path, self.rank)
            except CheckpointError as e:
                warnings.warn(f"skipping damaged checkpoint: {e}")
        return None

    def _collective(self, step: int, what: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (an OSError there fails every rank), then agree across ranks."""
        error: OSError | None = None
        result = None
        try:
            result = fn()
        except OSError as e:
            error = e
        if not self.agree(error is None):
            if self.rank == 0:
                shutil.rmtree(self.root / f".tmp-{step_dir_name(step)}", ignore_errors=True)
            cause = error or OSError(f"another process failed while {what}")
            raise CheckpointSaveError(self.root / step_dir_name(step), cause) from error
        return result

    def save(
        self, step: int, *, model: dict[str, Tensor], optimizer: dict[str, Tensor], state: dict[str, Any],
        rng: tuple[dict[str, Tensor], dict[str, Any]],
    ) -> Path:
        """Write checkpoint ``step`` atomically; return its path. ``model``/``optimizer``/``state`` matter on rank 0."""
        tmp = self.root / f".tmp-{step_dir_name(step)}"
        final = self.root / step_dir_name(step)
        self._collective(step, "creating the directory", lambda: self._make_tmp(tmp) if self.rank == 0 else None)
        files = self._collective(step, "writing files", lambda: self._write_parts(tmp, step, model, optimizer, state, rng))
        self._collective(step, "finishing", lambda: self._finish(tmp, final, step, files) if self.rank == 0 else None)
        if self.rank == 0:
            self.prune()
        return final

    def _make_tmp(self, tmp: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()

    def _write_parts(
        self, tmp: Path, step: int, model: dict[str, Tensor], optimizer: dict[str, Tensor], state: dict[str, Any],
        rng: tuple[dict[str, Tensor], dict[str, Any]],
    ) -> dict[str, Any]:
        files = {rng_file_name(self.rank): write_tensors(tmp / rng_file_name(self.rank), rng[0], {"rng": json.dumps(rng[1])})}
        if self.rank == 0:
            files["model.safetensors"] = write_tensors(tmp / "model.safetensors", model)
            files["optimizer.safetensors"] = write_tensors(tmp / "optimizer.safetensors", optimizer)
            files["state.json"] = write_json(tmp / "state.json", state)
        _fault_point("files", step)
        return files

    def _finish(self, tmp: Path, final: Path, step: int, files: dict[str, Any]) -> None:
        for other in sorted(tmp.glob("rng-rank*.safetensors")):  # the other ranks' parts
            if other.name not in files:
                files[other.name] = {"bytes": other.stat().st_size, "sha256": _sha256(other)}
        write_json(tmp / MARKER, {"format": FORMAT, "version": VERSION, "step": step, "files": files})
        _fsync_dir(tmp)
        _fault_point("marker", step)
        if final.exists():  # the same step saved again (a rerun from an older checkpoint)
            old = final.with_name(f".old-{final.name}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(self.root)
        _fault_point("rename", step)

    def prune(self) -> None:
        """Remove all but the newest ``keep_last`` complete checkpoints, and stale temp directories."""
        try:
            for _, path in self.complete()[self.keep_last :]:
                shutil.rmtree(path)
            for stale in self.root.glob(".tmp-step-*"):
                shutil.rmtree(stale)
        except OSError as e:  # the new checkpoint is complete; failing to delete old ones is not fatal
            warnings.warn(f"could not remove old checkpoints in {self.root}: {e}")
