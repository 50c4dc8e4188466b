"""The one interface of the efficient attention variants: a module with the backend signature.

Dimension key: B batch, H query heads, Hkv key/value heads, T query length, S key length, Dh head dim.

Every variant is an ``nn.Module`` whose ``forward`` is an attention backend::

    forward(q (B, H, T, Dh), k (B, Hkv, S, Dh), v, mask, bias, scale, dropout, is_causal)
        -> (out (B, H, T, Dh), None)

so a model holds it like any layer (Linformer's projections and Performer's random features live in
the model's state) and hands it to :func:`attnlab.core.attention.attention` as ``backend``. Each
variant also has

- ``dense(...)``: the same function computed explicitly, returning ``(out, weights)``; it answers
  ``need_weights=True`` and is the reference the tests compare the fast path with;
- ``decode_mask(input_pos, S)``: the (1, 1, T, S) pattern of keys each new query sees, so that cached
  decoding can run through an exact kernel; variants that cannot decode with a KV cache raise
  :class:`UnsupportedAttentionError` here.

Models select a variant by a **backend spec**, a plain string that fits in a JSON config::

    "sliding_window"                                   defaults
    "sliding_window:window=128,global_tokens=0+1"      options: key=value, comma-separated
    "linformer:max_len=512,proj_len=64"                lists of ints are written a+b+c
    "performer:n_features=128,seed=3"                  true / false / none, ints and floats

:func:`build_variant` turns a spec into a module (``MultiHeadAttention`` calls it); names that are
not variants (``"sdpa"``, ``"naive"``, any registered backend) give ``None``.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn

SpecValue = bool | int | float | str | tuple[int, ...] | None


class UnsupportedAttentionError(ValueError):
    """An efficient attention variant was asked for something it cannot compute (e.g. Linformer with a KV cache)."""


class AttentionVariant(nn.Module, abc.ABC):
    """Base of the efficient variants; see the module docstring for the contract."""

    name: ClassVar[str]
    supports_cross: ClassVar[bool] = True  # usable as cross-attention (queries and keys from different sequences)

    @abc.abstractmethod
    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
        scale: float, dropout: float, is_causal: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """The fast path: (out (B, H, T, Dh), None)."""

    @abc.abstractmethod
    def dense(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
        scale: float, dropout: float, is_causal: bool,
    ) -> tuple[Tensor, Tensor]:
        """The same function computed explicitly: (out (B, H, T, Dh), weights (B, H, T, keys))."""

    def decode_mask(self, input_pos: Tensor, S: int) -> Tensor:
        """(1, 1, T, S) keys visible to the queries at ``input_pos`` (T,) during cached decoding."""
        raise UnsupportedAttentionError(
            f"{self.name} attention cannot decode with a KV cache; run the model without kv_caches "
            "(recomputing the prefix) or use an exact backend such as 'sdpa' for generation"
        )

    @classmethod
    def from_options(cls, options: dict[str, SpecValue], *, head_dim: int, cross: bool = False) -> AttentionVariant:
        """Build from parsed spec options; ``head_dim`` is passed where the constructor takes it."""
        if cross and not cls.supports_cross:
            raise UnsupportedAttentionError(
                f"{cls.name} attention is defined for self-attention only, not cross-attention "
                "(MultiHeadAttention(cross=True)); give cross-attention an exact backend such as 'sdpa'"
            )
        params = inspect.signature(cls.__init__).parameters
        known = sorted(p for p in params if p not in ("self", "head_dim"))
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for {cls.name!r}; it accepts {known}")
        kwargs: dict[str, Any] = dict(options)
        if "head_dim" in params:
            kwargs["head_dim"] = head_dim
        return cls(**kwargs)


_VARIANTS: dict[str, type[AttentionVariant]] = {}


def register_variant(cls: type[AttentionVariant]) -> type[AttentionVariant]:
    """Class decorator: make ``cls`` buildable from specs naming ``cls.name``."""
    _VARIANTS[cls.name] = cls
    return cls


def variant_names() -> list[str]:
    """Names of the registered efficient variants."""
    return sorted(_VARIANTS)


def _parse_value(text: str) -> SpecValue:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    if "+" in low:
        try:
            return tuple(int(part) for part in low.split("+"))
        except ValueError:
            raise ValueError(f"list values are integers joined by '+', e.g. 0+5+9; got {text!r}") from None
    for cast in (int, float):
        try:
            return cast(low)
        except ValueError:
            pass
    return text.strip()


def parse_backend_spec(spec: str) -> tuple[str, dict[str, SpecValue]]:
    """``"name:key=value,key=value"`` -> (name, {key: value}); a bare name has no options."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a backend spec is a non-empty string such as 'sliding_window:window=128', got {spec!r}")
    name, _, rest = spec.partition(":")
    options: dict[str, SpecValue] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ValueError(f"bad option {item!r} in backend spec {spec!r}; write key=value, e.g. window=128")
        options[key.strip()] = _parse_value(value)
    return name.strip(), options


def build_variant(spec: str, *, head_dim: int, cross: bool = False) -> AttentionVariant | None:
    """The variant module a spec names, or ``None`` for plain registered backends ("sdpa", "naive", ...)."""
    name, options = parse_backend_spec(spec)
    cls = _VARIANTS.get(name)
    if cls is None:
        if options:
            raise ValueError(
                f"backend {name!r} takes no options (spec {spec!r}); options apply to the efficient "
                f"variants {variant_names()}"
            )
        return None
    return cls.from_options(options, head_dim=head_dim, cross=cross)


BackendFn = Callable[..., tuple[Tensor, Tensor | None]]


class BackendEntry:
    """A registry backend with a dense twin: calling it runs ``fn``; ``dense`` recomputes with weights."""

    def __init__(self, fn: BackendFn, dense: BackendFn, description: str) -> None:
        self.fn, self.dense, self.description = fn, dense, description

    def __call__(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
        scale: float, dropout: float, is_causal: bool,
    ) -> tuple[Tensor, Tensor | None]:
        return self.fn(q, k, v, mask, bias, scale, dropout, is_causal)

    def __repr__(self) -> str:
        return f"BackendEntry({self.description})"
