"""attnlab's own model folders, for models HF has no class for.

Dimension key: none (whole tensors by name).

Some attnlab models have no HF equivalent to export to: the 2017 encoder-decoder (``Transformer``) and
GPTs whose settings GPT-2 lacks (rotary or ALiBi positions, no biases, RMSNorm ...). They are saved in
the same folder layout, with attnlab's config instead of an HF one::

    config.json         attnlab config fields + "model_type" + "attnlab_native": true
    model.safetensors   the state dict, each tied tensor once (under its first name)

:func:`attnlab.from_pretrained` recognises such a folder by the flag and calls :func:`load_native`,
so every consumer (``attnlab generate``, ``pipeline``, ``attnlab viz``) reads both kinds of folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.interop.errors import CheckpointError
from attnlab.interop.safetensors_io import floating_dtype, read_safetensors, write_safetensors, write_text_atomic

NATIVE_FLAG = "attnlab_native"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def is_native(config: dict[str, Any]) -> bool:
    """Whether a folder's config.json (as a dict) is attnlab's own rather than HF's."""
    return bool(config.get(NATIVE_FLAG))


def native_classes() -> dict[str, type[nn.Module]]:
    """model_type -> the attnlab class that native folders of that type hold."""
    from attnlab.models.gpt import GPT
    from attnlab.models.transformer import Transformer

    return {"transformer": Transformer, "gpt": GPT}


def save_native(model: nn.Module, folder: str | Path) -> Path:
    """Write ``model`` (one of :func:`native_classes`) as config.json + model.safetensors, atomically."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    config = getattr(model, "config", None)
    if config is None or type(model) not in native_classes().values():
        raise CheckpointError(
            f"cannot save a {type(model).__name__} in attnlab's folder format; it holds "
            f"{sorted(c.__name__ for c in native_classes().values())}"
        )
    state = {k: v.detach().contiguous().cpu() for k, v in _dedup_state(model).items()}
    write_safetensors(out / WEIGHTS_NAME, state)
    write_text_atomic(out / CONFIG_NAME, json.dumps({**config.to_dict(), NATIVE_FLAG: True}, indent=2) + "\n")
    return out


def load_native(
    folder: str | Path, config: dict[str, Any] | None = None, *, dtype: torch.dtype | str | None = None,
    **overrides: Any,
) -> nn.Module:
    """The model (eval mode, CPU) of a folder written by :func:`save_native`.

    ``config``: the folder's config.json when the caller has read it already. ``dtype``: float32 by
    default, ``"auto"`` for the dtype the weights are stored in. ``overrides``: config fields to change.
    """
    from attnlab.models.config import config_from_dict

    src = Path(folder)
    raw = dict(config) if config is not None else json.loads((src / CONFIG_NAME).read_text())
    raw.pop(NATIVE_FLAG, None)
    model_type = str(raw.get("model_type"))
    classes = native_classes()
    if model_type not in classes:
        raise CheckpointError(f"{src / CONFIG_NAME}: no attnlab model class for native model_type {model_type!r}; "
                              f"known: {sorted(classes)}")
    try:
        model_config = config_from_dict(raw)
        if overrides:
            model_config = model_config.replace(**overrides)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{src / CONFIG_NAME} is not a valid {model_type!r} config: {e}") from e
    model = classes[model_type](model_config)
    state = read_safetensors(src / WEIGHTS_NAME)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = _untied(model, missing, set(state))
    if missing or unexpected:
        raise CheckpointError(f"{src / WEIGHTS_NAME}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.to(dtype=floating_dtype(state) if dtype == "auto" else dtype).eval()


def _dedup_state(model: nn.Module) -> dict[str, Tensor]:
    """State dict with tied parameters stored once (the first name)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        out[name] = tensor
    return out


def _untied(model: nn.Module, missing: list[str], loaded: set[str]) -> list[str]:
    """The ``missing`` keys that are not aliases of a loaded tied parameter."""
    tensors = dict(model.state_dict(keep_vars=True))
    names: dict[int, list[str]] = {}
    for name, t in tensors.items():
        names.setdefault(id(t), []).append(name)
    return [k for k in missing if not any(other in loaded for other in names.get(id(tensors.get(k)), []))]
