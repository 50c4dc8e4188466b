"""Registry of HF checkpoint adapters, one per model family, keyed by HF ``model_type``.

Dimension key: L layers (key-map placeholders range over layer counts).

How to add a family (T5, ViT, ...): create ``attnlab/interop/<family>.py`` that builds one
:class:`FamilyAdapter` and calls :func:`register_adapter` at import time. Modules in this package are
discovered automatically (every module not listed in ``_INFRASTRUCTURE``), so no other file changes.
An adapter consists of

- ``hf_model_type`` / ``model_type``: HF's ``config.json`` ``model_type`` ("gpt2") and our config's
  ``model_type`` ("gpt"); lookups work from either side.
- ``config_from_hf(hf_dict) -> our config`` and ``config_to_hf(our config) -> dict``: raise
  :class:`CheckpointError` for HF settings our model cannot represent (never load silently wrong).
- ``base_rules(config)``: the key map of the bare model, keys relative to the base module on both
  sides (HF's ``GPT2Model`` / ``BertModel`` keys, without the ``transformer.`` / ``bert.`` prefix).
- ``hf_base_prefix``: where HF's task classes keep the base model ("transformer.", "bert.").
- ``architectures``: HF class name -> :class:`Architecture` (our class, our base prefix, head rules).
  The first entry whose ``model_class`` is a model's exact class names it when saving.
- ``layer_counts(config)``: values for the placeholders in the rules, e.g. ``{"i": n_layers}``.
- ``hf_ignore``: regexes of HF keys that are dropped on load (non-persistent buffers written by old
  versions, such as ``embeddings.position_ids``).

The generic loader and writer (``attnlab.interop.api``) use only these fields. Helpers for
``config_from_hf``: :func:`special_id` (drops token ids outside the vocabulary, with a warning) and
:func:`same_or_none`. A family module that fails to import does not break the others; its error is
listed by :func:`adapter_import_errors` and in the "no adapter" message.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from attnlab.interop.errors import CheckpointError
from attnlab.interop.keymap import Rule, expand_rules
from attnlab.models.config import ModelConfig

RuleSource = Sequence[Rule] | Callable[[ModelConfig], Sequence[Rule]]


@dataclass(frozen=True)
class Architecture:
    """One HF class (e.g. ``BertForMaskedLM``) and the attnlab class that plays its part.

    ``ours_base_prefix`` is where our class keeps the base model ("bert." in ``BertForMaskedLM``, ""
    for a model that is the base itself); ``head_rules`` map the task head, with full keys on both
    sides. ``has_hf_base_prefix`` says whether HF nests the base model under ``hf_base_prefix``.
    """

    model_class: type[nn.Module]
    ours_base_prefix: str = ""
    head_rules: RuleSource = ()
    has_hf_base_prefix: bool = True


@dataclass(frozen=True)
class FamilyAdapter:
    hf_model_type: str
    model_type: str
    config_from_hf: Callable[[dict[str, Any]], ModelConfig]
    config_to_hf: Callable[[ModelConfig], dict[str, Any]]
    base_rules: RuleSource
    architectures: Mapping[str, Architecture]
    layer_counts: Callable[[ModelConfig], Mapping[str, int]]
    hf_base_prefix: str = ""
    hf_ignore: tuple[str, ...] = field(default=())

    def architecture_for(self, model: nn.Module) -> tuple[str, Architecture]:
        """The HF architecture name written to config.json for ``model``."""
        for name, arch in self.architectures.items():
            if type(model) is arch.model_class:
                return name, arch
        known = {n: a.model_class.__name__ for n, a in self.architectures.items()}
        raise CheckpointError(
            f"{type(model).__name__} has no HF counterpart in the {self.hf_model_type!r} adapter; known: {known}"
        )

    def architecture_named(self, names: Sequence[str] | None) -> tuple[str, Architecture]:
        """The first of ``names`` (config.json ``architectures``) this adapter knows; else the first entry."""
        for name in names or ():
            if name in self.architectures:
                return name, self.architectures[name]
        if names:
            raise CheckpointError(
                f"config.json asks for architectures {list(names)}, which attnlab's {self.hf_model_type!r} "
                f"adapter does not provide; known: {sorted(self.architectures)}. Pass model_class= to choose one"
            )
        name = next(iter(self.architectures))
        return name, self.architectures[name]

    def rules(self, config: ModelConfig, arch: Architecture) -> list[Rule]:
        """The full, expanded key map for ``arch``: base rules (prefixed) plus head rules."""
        base = _resolve(self.base_rules, config)
        hf_prefix = self.hf_base_prefix if arch.has_hf_base_prefix else ""
        table = [r.with_prefixes(arch.ours_base_prefix, hf_prefix) for r in base]
        table += list(_resolve(arch.head_rules, config))
        return expand_rules(table, self.layer_counts(config))


def _resolve(source: RuleSource, config: ModelConfig) -> Sequence[Rule]:
    return source(config) if callable(source) else source


def special_id(hf: dict[str, Any], key: str) -> int | None:
    """HF's ``<key>_token_id``, or None (with a warning) when it lies outside the vocabulary."""
    value, vocab = hf.get(key), hf.get("vocab_size")
    if value is not None and isinstance(vocab, int) and not 0 <= value < vocab:
        warnings.warn(f"config.json {key}={value} lies outside the vocabulary [0, {vocab}); ignoring it", stacklevel=3)
        return None
    return value


def same_or_none(value: Any, default: Any) -> Any:
    """None when ``value`` equals ``default`` (our configs use None for "same as dropout")."""
    return None if value == default else value


_BY_HF: dict[str, FamilyAdapter] = {}
_BY_OURS: dict[str, FamilyAdapter] = {}
_INFRASTRUCTURE = {"api", "errors", "keymap", "mixin", "registry", "safetensors_io", "tokenizer", "hub"}
_FAILED: dict[str, str] = {}
_loaded = False


def register_adapter(adapter: FamilyAdapter) -> FamilyAdapter:
    _BY_HF[adapter.hf_model_type] = adapter
    _BY_OURS[adapter.model_type] = adapter
    return adapter


def _load_adapters() -> None:
    global _loaded
    if _loaded:
        return
    import attnlab.interop as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in _INFRASTRUCTURE and not info.name.startswith("_"):
            try:
                importlib.import_module(f"attnlab.interop.{info.name}")
            except Exception as e:  # one broken family must not take the others down
                _FAILED[info.name] = f"{type(e).__name__}: {e}"
    _loaded = True


def adapter_import_errors() -> dict[str, str]:
    """Adapter modules that failed to import, with the error (empty when all is well)."""
    _load_adapters()
    return dict(_FAILED)


def _failures() -> str:
    return "".join(f"; adapter module {name!r} failed to import ({err})" for name, err in _FAILED.items())


def adapter_for_hf(hf_model_type: str) -> FamilyAdapter:
    _load_adapters()
    if hf_model_type not in _BY_HF:
        raise CheckpointError(
            f"no attnlab adapter for HF model_type {hf_model_type!r}; supported: {sorted(_BY_HF)}{_failures()}"
        )
    return _BY_HF[hf_model_type]


def adapter_for_model(model_type: str) -> FamilyAdapter:
    _load_adapters()
    if model_type not in _BY_OURS:
        raise CheckpointError(
            f"attnlab model_type {model_type!r} has no HF export; exportable: {sorted(_BY_OURS)}{_failures()}"
        )
    return _BY_OURS[model_type]


def supported_hf_model_types() -> list[str]:
    _load_adapters()
    return sorted(_BY_HF)
