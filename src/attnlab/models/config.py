"""Typed model configurations with named presets, serializable to JSON.

Every family defines a dataclass deriving from :class:`ModelConfig` and registers its presets with
:func:`register_preset`; ``from_name("vaswani-base")`` returns a fresh config, with overrides:
``from_name("tiny", n_heads=2)``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="ModelConfig")


@dataclasses.dataclass
class ModelConfig:
    """Base of every family's config: JSON round trip and validation hooks."""

    model_type: ClassVar[str] = "base"

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        data = dict(data)
        kind = data.pop("model_type", cls.model_type)
        if kind != cls.model_type:
            raise ValueError(f"config is for model_type {kind!r}, not {cls.model_type!r}")
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields: {sorted(names)}")
        return cls(**data)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls: type[C], path: str | Path) -> C:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


_PRESETS: dict[str, tuple[type[ModelConfig], dict[str, Any]]] = {}
_CONFIG_TYPES: dict[str, type[ModelConfig]] = {}


def register_config(cls: type[C]) -> type[C]:
    """Class decorator: make ``config_from_dict`` know this family's ``model_type``."""
    _CONFIG_TYPES[cls.model_type] = cls
    return cls


def register_preset(name: str, cls: type[ModelConfig], **values: Any) -> None:
    _PRESETS[name] = (cls, values)


def preset_names() -> list[str]:
    _load_families()
    return sorted(_PRESETS)


def from_name(name: str, **overrides: Any) -> ModelConfig:
    """A fresh config for preset ``name``, with ``overrides`` applied."""
    _load_families()
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {sorted(_PRESETS)}")
    cls, values = _PRESETS[name]
    return cls(**{**values, **overrides})


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild any registered family's config from ``to_dict()`` output."""
    _load_families()
    kind = data.get("model_type")
    if kind not in _CONFIG_TYPES:
        raise ValueError(f"unknown model_type {kind!r}; known: {sorted(_CONFIG_TYPES)}")
    return _CONFIG_TYPES[kind].from_dict(data)


def _load_families() -> None:
    import attnlab.models  # noqa: F401  (each family module registers its presets on import)
    import attnlab.classic  # noqa: F401  (the RNN encoder-decoder family lives outside models/)
