"""Load HF-format checkpoint directories into attnlab models and write them back.

Dimension key: D model width, V vocabulary, L layers.

    from_pretrained(path)           config.json -> adapter (by model_type) -> our config and class ->
                                    weights (safetensors, single or sharded) -> key map -> load_state_dict
    save_pretrained(model, path)    our config -> HF config.json; state dict -> key map -> safetensors

Each direction reports by name every weight that is missing, unexpected or of the wrong shape;
with ``strict=True`` (the default) any of them raises :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import attnlab
from attnlab.interop.errors import CheckpointError
from attnlab.interop.registry import Architecture, FamilyAdapter, adapter_for_hf, adapter_for_model
from attnlab.interop.native import is_native, load_native
from attnlab.interop.safetensors_io import floating_dtype, read_safetensors, write_safetensors, write_text_atomic

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
_SHARD_RE = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class LoadReport:
    """What a conversion could not match, by key name."""

    missing: list[str] = field(default_factory=list)  # our keys that no checkpoint tensor filled
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys nothing used
    mismatched: list[str] = field(default_factory=list)  # "ours <- hf: shape a vs b"
    ignored: list[str] = field(default_factory=list)  # checkpoint keys dropped on purpose (buffers, ties)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        parts = []
        groups = (("missing", self.missing), ("unexpected", self.unexpected), ("shape mismatch", self.mismatched))
        for label, keys in groups:
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys) - 20} more)" if len(keys) > 20 else "")
                parts.append(f"{label} ({len(keys)}): {shown}")
        return "; ".join(parts) or "all weights matched"


# --------------------------------------------------------------------------------------------
# reading a directory
# --------------------------------------------------------------------------------------------


def resolve_path(path: str | Path, *, revision: str | None = None) -> Path:
    """A local directory, or a hub id resolved through huggingface_hub when installed and online."""
    p = Path(path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise CheckpointError(f"{p} is a file; pass the directory that holds config.json and the weights")
        return p
    if not _HUB_ID_RE.match(str(path)):
        raise CheckpointError(f"{p} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(
            f"{path!r} is not a local directory, and huggingface_hub is not installed to fetch it from the hub"
        ) from None
    try:
        patterns = ["*.json", "*.safetensors", "tokenizer.model", "vocab.txt", "merges.txt"]
        return Path(snapshot_download(str(path), revision=revision, allow_patterns=patterns))
    except Exception as e:  # offline, unknown repo, gated, ...: one typed error
        raise CheckpointError(f"could not resolve {path!r} on the hub: {type(e).__name__}: {e}") from None


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _shard_files(directory: Path, index: dict[str, Any], index_path: Path) -> dict[str, list[str]]:
    """{shard file name: [keys]} from a validated index; shard names must be plain files in ``directory``."""
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: 'weight_map' must be a non-empty object of key -> shard file")
    shards: dict[str, list[str]] = {}
    for key, name in weight_map.items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(
                f"{index_path}: shard name {name!r} for {key!r} must be a file name in the same folder"
            )
        shards.setdefault(name, []).append(key)
    return shards


def _read_sharded(directory: Path, index_path: Path, reader) -> dict[str, Tensor]:
    shards = _shard_files(directory, read_json(index_path), index_path)
    state: dict[str, Tensor] = {}
    for name, keys in shards.items():
        part = reader(directory / name)
        clash = sorted(set(part) & set(state))
        if clash:
            raise CheckpointError(f"{directory / name}: keys {clash[:5]} also appear in another shard")
        absent = sorted(set(keys) - set(part))
        if absent:
            raise CheckpointError(f"{directory / name}: index lists keys {absent[:5]} that the shard lacks")
        state.update(part)
    return state


def _torch_load(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read pickle checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a flat dict of tensors")
    return state


def read_weights(directory: str | Path, *, allow_pickle: bool = False) -> dict[str, Tensor]:
    """All tensors of a checkpoint directory: model.safetensors, or the shards its index names."""
    directory = Path(directory)
    if (directory / WEIGHTS_NAME).is_file():
        return read_safetensors(directory / WEIGHTS_NAME)
    if (directory / INDEX_NAME).is_file():
        return _read_sharded(directory, directory / INDEX_NAME, read_safetensors)
    found = [n for n in PICKLE_NAMES if (directory / n).exists()]
    if found and not allow_pickle:
        raise CheckpointError(
            f"{directory} holds only {found}: pickle files can run arbitrary code when loaded, so attnlab refuses "
            "them by default. Convert the checkpoint to safetensors, or pass allow_pickle=True if you trust it "
            "(it is then read with torch.load(weights_only=True))"
        )
    if "pytorch_model.bin" in found:
        return _torch_load(directory / "pytorch_model.bin")
    if "pytorch_model.bin.index.json" in found:
        return _read_sharded(directory, directory / "pytorch_model.bin.index.json", _torch_load)
    raise CheckpointError(f"{directory}: no weights found; expected {WEIGHTS_NAME} or {INDEX_NAME}")


# --------------------------------------------------------------------------------------------
# key mapping
# --------------------------------------------------------------------------------------------


def _find(hf_state: dict[str, Tensor], key: str, prefix: str) -> str | None:
    """``key`` as stored: HF task checkpoints nest the base model under ``prefix``, bare ones do not."""
    if key in hf_state:
        return key
    if prefix:
        alt = key[len(prefix):] if key.startswith(prefix) else prefix + key
        if alt in hf_state:
            return alt
    return None


def _tied_groups(model: nn.Module) -> list[list[str]]:
    """State-dict keys grouped by the tensor they name (tied weights share a group)."""
    by_tensor: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_tensor.setdefault(id(p), []).append(name)
    params = {n for names in by_tensor.values() for n in names}
    groups = list(by_tensor.values())
    groups += [[k] for k in model.state_dict() if k not in params]  # persistent buffers
    return groups


def load_hf_state_dict(
    model: nn.Module, hf_state: dict[str, Tensor], adapter: FamilyAdapter, arch: Architecture, *, strict: bool = True
) -> LoadReport:
    """Map ``hf_state`` through the adapter's key map and copy it into ``model``; report the leftovers."""
    report = LoadReport()
    ours_shapes = {k: v.shape for k, v in model.state_dict().items()}
    ours: dict[str, Tensor] = {}
    used: set[str] = set()
    for rule in adapter.rules(model.config, arch):  # type: ignore[arg-type]
        found = [_find(hf_state, k, adapter.hf_base_prefix) for k in rule.hf_keys]
        if any(f is None for f in found):
            continue
        used.update(found)  # type: ignore[arg-type]
        try:
            tensor = rule.transform.to_ours([hf_state[f] for f in found])  # type: ignore[index]
        except (RuntimeError, ValueError) as e:
            report.mismatched.append(f"{rule.ours} <- {found}: {e}")
            continue
        if rule.ours not in ours_shapes:
            raise CheckpointError(f"key map names {rule.ours!r}, which {type(model).__name__} does not have")
        if tensor.shape != ours_shapes[rule.ours]:
            sources = ", ".join(f for f in found if f is not None)
            report.mismatched.append(
                f"{rule.ours} <- {sources}: checkpoint {tuple(tensor.shape)} vs model {tuple(ours_shapes[rule.ours])}"
            )
            continue
        ours[rule.ours] = tensor
    report.missing = [g[0] for g in _tied_groups(model) if not any(k in ours for k in g)]
    for key in sorted(set(hf_state) - used):
        ignored = any(re.search(p, key) for p in adapter.hf_ignore)
        (report.ignored if ignored else report.unexpected).append(key)
    if report.mismatched or (strict and not report.ok):
        raise CheckpointError(f"checkpoint does not fit {type(model).__name__}: {report}")
    model.load_state_dict(ours, strict=False)
    return report


def to_hf_state_dict(model: nn.Module) -> tuple[dict[str, Tensor], str, FamilyAdapter]:
    """(HF state dict, HF architecture name, adapter) for ``model``; every weight must map."""
    adapter = adapter_for_model(model.config.model_type)  # type: ignore[union-attr]
    adapter.config_to_hf(model.config)  # type: ignore[arg-type]  # refuses configs HF cannot express
    name, arch = adapter.architecture_for(model)
    state = model.state_dict()
    out: dict[str, Tensor] = {}
    mapped: set[str] = set()
    for rule in adapter.rules(model.config, arch):  # type: ignore[arg-type]
        if rule.ours not in state:
            raise CheckpointError(f"key map names {rule.ours!r}, which {type(model).__name__} does not have")
        tensors = rule.transform.to_hf(state[rule.ours], len(rule.hf_keys))
        out.update(zip(rule.hf_keys, tensors))
        mapped.add(rule.ours)
    unmapped = [g[0] for g in _tied_groups(model) if not any(k in mapped for k in g)]
    if unmapped:
        raise CheckpointError(
            f"{type(model).__name__} weights with no HF key in the {adapter.hf_model_type!r} map: {unmapped}"
        )
    return out, name, adapter


# --------------------------------------------------------------------------------------------
# the two entry points
# --------------------------------------------------------------------------------------------


def _pick(adapter: FamilyAdapter, hf_config: dict[str, Any], model_class: type | None) -> Architecture:
    if model_class is None:
        return adapter.architecture_named(hf_config.get("architectures"))[1]
    for arch in adapter.architectures.values():
        if arch.model_class is model_class:
            return arch
    raise CheckpointError(
        f"{model_class.__name__} cannot hold a {adapter.hf_model_type!r} checkpoint; choose one of "
        f"{sorted({a.model_class.__name__ for a in adapter.architectures.values()})}"
    )


def from_pretrained(
    path: str | Path,
    *,
    model_class: type[nn.Module] | None = None,
    strict: bool = True,
    allow_pickle: bool = False,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    revision: str | None = None,
    output_loading_info: bool = False,
    **config_overrides: Any,
) -> Any:
    """Load an HF-format directory (config.json + safetensors weights) into an attnlab model.

    A folder in attnlab's own format (config.json with ``"attnlab_native": true``, written for models
    HF has no class for; see :mod:`attnlab.interop.native`) loads too.

    Args:
        path: a local directory, or a hub id when huggingface_hub is installed and online.
        model_class: our class to build (e.g. ``BertForSequenceClassification``); default: the one
            matching config.json's ``architectures``.
        strict: raise :class:`CheckpointError` on missing or unexpected weights (shape mismatches
            always raise). With ``strict=False`` the leftovers are warned about and the model keeps
            its fresh initialization where nothing was loaded.
        allow_pickle: permit ``pytorch_model.bin`` (read with ``torch.load(weights_only=True)``).
        dtype, device: where to put the model afterwards; ``dtype="auto"`` keeps the checkpoint's
            floating dtype (default: float32, whatever the checkpoint stores).
        output_loading_info: also return the :class:`LoadReport`.
        config_overrides: fields of our config to override (e.g. ``backend="naive"``).

    Returns:
        the model in eval mode (``(model, report)`` with ``output_loading_info``).
    """
    if isinstance(dtype, str) and dtype != "auto":
        raise ValueError(f"dtype must be a torch.dtype, 'auto' or None, got {dtype!r}")
    directory = resolve_path(path, revision=revision)
    hf_config = read_json(directory / CONFIG_NAME)
    if is_native(hf_config):  # attnlab's own folder format (models HF has no class for)
        if model_class is not None:
            raise ValueError(f"{directory} is an attnlab-format folder; model_class applies to HF-format folders only")
        model = load_native(directory, hf_config, dtype=dtype, **config_overrides)
        model.to(device=device).eval()
        return (model, LoadReport()) if output_loading_info else model
    model_type = hf_config.get("model_type")
    if not isinstance(model_type, str):
        raise CheckpointError(f"{directory / CONFIG_NAME}: missing the 'model_type' field")
    adapter = adapter_for_hf(model_type)
    arch = _pick(adapter, hf_config, model_class)
    config = adapter.config_from_hf(hf_config)
    if config_overrides:
        config = config.replace(**config_overrides)
    model = arch.model_class(config)
    hf_state = read_weights(directory, allow_pickle=allow_pickle)
    if dtype == "auto":
        dtype = floating_dtype(hf_state)
    report = load_hf_state_dict(model, hf_state, adapter, arch, strict=strict)
    if not report.ok:
        warnings.warn(f"{directory}: {report}", stacklevel=2)
    model.to(device=device, dtype=dtype).eval()
    return (model, report) if output_loading_info else model


def _shards(state: dict[str, Tensor], max_bytes: int) -> list[dict[str, Tensor]]:
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for key, t in state.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = t
        size += nbytes
    return shards


def _remove_stale_weights(directory: Path) -> None:
    """Drop weights an earlier save left here, so HF never mixes old shards with new files."""
    for p in directory.iterdir():
        if p.name in (WEIGHTS_NAME, INDEX_NAME) or _SHARD_RE.match(p.name):
            p.unlink()


def save_pretrained(model: nn.Module, path: str | Path, *, max_shard_bytes: int | None = None) -> Path:
    """Write ``model`` as an HF-format directory: config.json + model.safetensors (or shards + index).

    Tied weights are written once, under the key HF keeps (the embedding). Files are written to
    temporary names and renamed into place.
    """
    state, arch_name, adapter = to_hf_state_dict(model)
    directory = Path(path).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    hf_config = adapter.config_to_hf(model.config)  # type: ignore[arg-type]
    dtype = next(iter(state.values())).dtype if state else torch.float32
    hf_config.update(
        model_type=adapter.hf_model_type, architectures=[arch_name], dtype=str(dtype).removeprefix("torch."),
        attnlab_version=attnlab.__version__,
    )
    _remove_stale_weights(directory)
    if max_shard_bytes is None:
        write_safetensors(directory / WEIGHTS_NAME, state)
    else:
        shards = _shards(state, max_shard_bytes)
        weight_map = {}
        for i, shard in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(directory / name, shard)
            weight_map.update(dict.fromkeys(shard, name))
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        write_text_atomic(directory / INDEX_NAME, json.dumps(index, indent=2) + "\n")
    write_text_atomic(directory / CONFIG_NAME, json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
    return directory
