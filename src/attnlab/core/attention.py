"""Scaled dot-product attention: one pure function, backends chosen by name.

Dimension key: B batch, H query heads, Hkv key/value heads (H % Hkv == 0), T query length,
S key length, Dh head dim.

    attention(q, k, v, mask, bias, scale, dropout) -> (out, weights | None)

    q: (B, H, T, Dh)   k, v: (B, Hkv, S, Dh)
    mask: bool, True = may attend, broadcastable to (B, H, T, S)
    bias: float, added to the scores, broadcastable to (B, H, T, S)   (ALiBi, T5 relative bias)
    out: (B, H, T, Dh)   weights: (B, H, T, S) or None

A query row whose every key is masked out yields zeros (never NaN), in every backend and in the
backward pass. Backends:

- ``"naive"``: the textbook formula in plain tensor ops; the reference, and the only one that
  returns the attention probabilities.
- ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient / math
  kernels chosen by torch).
- efficient variants (sliding window, Linformer, Performer) register themselves with
  :func:`register_backend` from ``attnlab.efficient``.

``need_weights=True`` always computes through ``"naive"``: probabilities are recomputed on demand,
never by switching a whole model to a slow path.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class AttentionBackend(Protocol):
    def __call__(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        bias: Tensor | None,
        scale: float,
        dropout: float,
        is_causal: bool,
    ) -> tuple[Tensor, Tensor | None]: ...


_BACKENDS: dict[str, AttentionBackend] = {}


def register_backend(name: str, fn: AttentionBackend | None = None):
    """Register ``fn`` as attention backend ``name`` (usable as a decorator)."""

    def _register(f: AttentionBackend) -> AttentionBackend:
        _BACKENDS[name] = f
        return f

    return _register(fn) if fn is not None else _register


def available_backends() -> list[str]:
    """Names accepted by ``attention(..., backend=...)``."""
    _load_optional_backends()
    return sorted(_BACKENDS)


def get_backend(name: str) -> AttentionBackend:
    if name not in _BACKENDS:
        _load_optional_backends()
    if name not in _BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {sorted(_BACKENDS)}")
    return _BACKENDS[name]


def resolve_backend(backend: str | AttentionBackend, *, need_weights: bool = False) -> AttentionBackend:
    """The callable for a backend name or object; with ``need_weights`` its explicit ``dense`` twin.

    Efficient backends (sliding window, Performer, ...) compute a different function than exact
    attention, so their probabilities come from their own ``dense`` method; the exact backends fall
    back to ``"naive"``.
    """
    fn = get_backend(backend) if isinstance(backend, str) else backend
    if need_weights:
        fn = getattr(fn, "dense", None) or _BACKENDS["naive"]
    return fn


def _load_optional_backends() -> None:
    try:  # the efficient backends register themselves on import
        import attnlab.efficient  # noqa: F401
    except ImportError:
        pass


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _broadcastable(shape: torch.Size, target: tuple[int, ...]) -> bool:
    if len(shape) > len(target):
        return False
    for s, t in zip(reversed(shape), reversed(target)):
        if s != 1 and s != t:
            return False
    return True


def check_attention_inputs(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None
) -> None:
    """Raise ``ValueError`` naming the shapes when the inputs do not fit together."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"attention expects q (B, H, T, Dh) and k, v (B, Hkv, S, Dh); got q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    B, H, T, Dh = q.shape
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must agree in (B, Hkv, S)")
    if k.shape[0] != B or k.shape[-1] != Dh:
        raise ValueError(
            f"q {tuple(q.shape)} and k {tuple(k.shape)} must share batch size and head dim"
        )
    if H % k.shape[1] != 0:
        raise ValueError(
            f"query heads ({H}) must be a multiple of key/value heads ({k.shape[1]}); "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    target = (B, H, T, k.shape[2])
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}; "
                "build it with attnlab.core.masks or pass mask.bool()"
            )
        if not _broadcastable(mask.shape, target):
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to (B, H, T, S) = {target}"
            )
    if bias is not None:
        if not bias.is_floating_point():
            raise ValueError(f"bias must be a float tensor, got dtype {bias.dtype}")
        if not _broadcastable(bias.shape, target):
            raise ValueError(
                f"bias of shape {tuple(bias.shape)} does not broadcast to (B, H, T, S) = {target}"
            )


def _expand_kv(k: Tensor, v: Tensor, n_heads: int) -> tuple[Tensor, Tensor]:
    """Repeat grouped key/value heads so that they match the query heads."""
    rep = n_heads // k.shape[1]
    if rep == 1:
        return k, v
    return k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # (B, H, S, Dh)


def _causal(T: int, S: int, device: torch.device) -> Tensor:
    return torch.ones(T, S, dtype=torch.bool, device=device).tril()  # (T, S)


# --------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------


@register_backend("naive")
def naive_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    bias: Tensor | None,
    scale: float,
    dropout: float,
    is_causal: bool,
) -> tuple[Tensor, Tensor]:
    """softmax(q k^T * scale + bias, masked) v, written out; returns the probabilities too."""
    k, v = _expand_kv(k, v, q.shape[1])
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (B, H, T, S)
    if bias is not None:
        scores = scores + bias
    if is_causal:
        causal = _causal(q.shape[2], k.shape[2], q.device)
        mask = causal if mask is None else mask & causal
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)  # (B, H, T, S)
    if mask is not None:
        weights = weights * mask  # rows with no allowed key become exact zeros
    if dropout > 0.0:
        weights_dropped = F.dropout(weights, p=dropout, training=True)
    else:
        weights_dropped = weights
    out = torch.matmul(weights_dropped, v)  # (B, H, T, Dh)
    return out, weights


@register_backend("sdpa")
def sdpa_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    bias: Tensor | None,
    scale: float,
    dropout: float,
    is_causal: bool,
) -> tuple[Tensor, None]:
    """torch's fused scaled_dot_product_attention, with fully masked rows mended to zeros."""
    gqa = q.shape[1] != k.shape[1]
    if mask is None and bias is None:
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout, is_causal=is_causal, scale=scale, enable_gqa=gqa
        )
        return out, None
    if is_causal:
        causal = _causal(q.shape[2], k.shape[2], q.device)
        mask = causal if mask is None else mask & causal
    row_alive = None
    if mask is not None:
        row_alive = mask.any(dim=-1, keepdim=True)  # (.., T, 1)
        mask = mask | ~row_alive  # a dead row attends everywhere; its output is zeroed below
    if bias is None:
        attn_mask = mask
    else:
        attn_mask = bias.to(q.dtype)
        if mask is not None:
            attn_mask = attn_mask.masked_fill(~mask, torch.finfo(q.dtype).min)
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout, scale=scale, enable_gqa=gqa
    )  # (B, H, T, Dh)
    if row_alive is not None:
        out = out * row_alive.to(out.dtype)
    return out, None


# --------------------------------------------------------------------------------------------
# the function
# --------------------------------------------------------------------------------------------


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    scale: float | None = None,
    dropout: float = 0.0,
    *,
    backend: str | AttentionBackend = "sdpa",
    is_causal: bool = False,
    need_weights: bool = False,
    validate: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention.

    Args:
        q: (B, H, T, Dh) queries. k, v: (B, Hkv, S, Dh) keys and values.
        mask: bool, True = may attend, broadcastable to (B, H, T, S).
        bias: float scores offset, broadcastable to (B, H, T, S).
        scale: multiplies q k^T; default 1/sqrt(Dh).
        dropout: probability of dropping an attention weight (pass 0.0 in eval mode).
        backend: a name from :func:`available_backends`, or a backend object with the same call
            signature (e.g. an ``attnlab.efficient`` variant module holding its own parameters).
        is_causal: add the top-left-aligned causal mask (requires T == S); lets the fused
            kernels skip the mask tensor. With a KV cache, pass an explicit mask instead.
        need_weights: also return the (B, H, T, S) probabilities (computed by the backend's
            ``dense`` twin where it has one, else by ``"naive"``).
        validate: check shapes and dtypes (turn off inside compiled hot loops).

    Returns:
        (out (B, H, T, Dh), weights (B, H, T, S) or None)
    """
    if validate:
        check_attention_inputs(q, k, v, mask, bias)
        if is_causal and q.shape[2] != k.shape[2]:
            raise ValueError(
                f"is_causal needs T == S, got T={q.shape[2]}, S={k.shape[2]}; for cached decoding "
                "pass mask=attnlab.core.masks.causal_mask(T, S) instead"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    fn = resolve_backend(backend, need_weights=need_weights)
    out, weights = fn(q, k, v, mask, bias, scale, dropout, is_causal)
    return out, (weights if need_weights else None)
