"""Linformer: attention over keys and values projected to a fixed length (Wang et al. 2020).

Dimension key: B batch, H query heads, Hkv key/value heads, T query length, S key length
(S <= N), N the maximum length the projections were built for, P projected length, Dh head dim.

    K' = E[:, :S] K      V' = F[:, :S] V          E, F: (P, N) learned, shared by all heads
    out = softmax(scale · q K'ᵀ) V'               (B, H, T, P) scores instead of (B, H, T, S)

Cost O(T·P·Dh + S·P·Dh) time and O(T·P) memory: linear in the sequence length for a fixed P.
Using the first S columns of E for a shorter sequence is the same as zero-padding it to N. The
projections mix all key positions, so:

- Linformer is **non-causal**: ``is_causal`` or a causal mask raises, and so does decoding with a
  KV cache;
- sequences longer than ``max_len`` (N) raise;
- masks can only be key padding and query padding (checked): padded keys are zeroed before the
  projection, projected slots that no real key reaches (padding, or positions beyond a short
  sequence under a pooling projection) are hidden, padded queries give zeros; so right padding
  leaves the real tokens' outputs unchanged, and identity projections stay exact;
- no additive bias (ALiBi, T5), which lives on the (T, S) scores that are never formed.

Attention dropout applies to the (T, P) weights.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnlab.core.attention import attention, register_backend
from attnlab.efficient.masking import SplitMask, repeat_kv, split_mask
from attnlab.efficient.variant import (
    AttentionVariant,
    BackendEntry,
    UnsupportedAttentionError,
    register_variant,
)


def _project(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, is_causal: bool,
    proj_k: Tensor, proj_v: Tensor,
) -> tuple[Tensor, Tensor, Tensor | None, SplitMask]:
    """(K', V') each (B, Hkv or H, P, Dh), the projected-slot mask (B|1, H|1, 1, P) or None, and the
    split mask; raises for unsupported inputs."""
    T, S, max_len = q.shape[2], k.shape[2], proj_k.shape[1]
    if is_causal:
        raise UnsupportedAttentionError(
            "Linformer attention is non-causal (its projections mix every key position); use it in "
            "encoders, and a causal backend ('sdpa', 'sliding_window', 'performer') in decoders"
        )
    if bias is not None:
        raise UnsupportedAttentionError(
            "Linformer attention cannot add a score bias (ALiBi, T5 relative bias) to scores over "
            "projected keys; use an absolute positional encoding or rope"
        )
    if S > max_len:
        raise ValueError(f"Linformer was built for at most max_len={max_len} keys, got S={S}; rebuild with a larger max_len")
    split = split_mask(mask, T, S, method="Linformer", allow_causal=False)
    keep = torch.ones(S, 1, dtype=k.dtype, device=k.device)  # (S, 1)
    if split.key_valid is not None:  # zero padded keys before they are mixed in
        if split.key_valid.shape[1] > 1:  # a per-head mask: work on query heads
            k, v = repeat_kv(k, q.shape[1]), repeat_kv(v, q.shape[1])  # (B, H, S, Dh)
        keep = split.key_valid.expand(*split.key_valid.shape[:-1], S).transpose(-1, -2).to(k.dtype)  # (B|1, H|1, S, 1)
        k, v = k * keep, v * keep
    slots: Tensor | None = None
    if split.key_valid is not None or S < max_len:  # a slot that no real key reaches holds nothing: hide it
        slots = (proj_k[:, :S].detach().abs().to(keep) @ keep).transpose(-1, -2) > 0  # (B|1, H|1, 1, P) or (1, P)
    k_proj = proj_k[:, :S].to(k) @ k  # (B, Hkv, P, Dh)
    v_proj = proj_v[:, :S].to(v) @ v  # (B, Hkv, P, Dh)
    return k_proj, v_proj, slots, split


def linformer_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float, dropout: float,
    is_causal: bool, *, proj_k: Tensor, proj_v: Tensor,
) -> tuple[Tensor, None]:
    """q (B, H, T, Dh), k, v (B, Hkv, S, Dh), proj_k, proj_v (P, N) -> (out (B, H, T, Dh), None)."""
    k_proj, v_proj, slots, split = _project(q, k, v, mask, bias, is_causal, proj_k, proj_v)
    out, _ = attention(q, k_proj, v_proj, slots, None, scale, dropout, backend="sdpa", validate=False)
    return (out if split.query_alive is None else out * split.query_alive), None  # (B, H, T, Dh)


def linformer_dense(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float, dropout: float,
    is_causal: bool, *, proj_k: Tensor, proj_v: Tensor,
) -> tuple[Tensor, Tensor]:
    """The same with its weights over the P projected keys: (out (B, H, T, Dh), weights (B, H, T, P))."""
    k_proj, v_proj, slots, split = _project(q, k, v, mask, bias, is_causal, proj_k, proj_v)
    out, weights = attention(q, k_proj, v_proj, slots, None, scale, dropout, backend="naive", need_weights=True)
    assert weights is not None
    if split.query_alive is not None:
        out, weights = out * split.query_alive, weights * split.query_alive
    return out, weights


@register_variant
class LinformerAttention(AttentionVariant):
    """Linformer with learned (P, N) key and value projections shared across heads.

    Args:
        max_len: N, the longest key sequence (the model's context length).
        proj_len: P, the projected length (the paper's k).
        share_kv: one projection for keys and values (the paper's key-value sharing).
        init: "gaussian": N(0, 1/P) entries, the Johnson-Lindenstrauss scaling the paper uses;
            "pool": each projected slot starts as the mean of one contiguous segment of N / P
            positions (the pooling projection the paper also discusses), a usable approximation
            before any training.
    """

    name = "linformer"

    def __init__(
        self, max_len: int | None = None, proj_len: int = 256, share_kv: bool = False, init: str = "gaussian"
    ) -> None:
        super().__init__()
        if max_len is None:
            raise ValueError(
                "Linformer needs max_len, the longest sequence its projections cover: e.g. "
                "LinformerAttention(max_len=512) or backend='linformer:max_len=512,proj_len=64'"
            )
        if max_len < 1 or proj_len < 1:
            raise ValueError(f"max_len and proj_len must be >= 1, got {max_len} and {proj_len}")
        if init not in ("gaussian", "pool"):
            raise ValueError(f"init must be 'gaussian' or 'pool', got {init!r}")
        if init == "pool" and proj_len > max_len:
            raise ValueError(f"init='pool' needs proj_len <= max_len, got proj_len={proj_len} > max_len={max_len}")
        self.max_len, self.proj_len, self.share_kv, self.init = max_len, proj_len, share_kv, init
        self.proj_k = nn.Parameter(self._initial(max_len, proj_len, init))
        self.proj_v = None if share_kv else nn.Parameter(self._initial(max_len, proj_len, init))

    @staticmethod
    def _initial(max_len: int, proj_len: int, init: str) -> Tensor:
        """(P, N) starting projection."""
        if init == "gaussian":
            return torch.randn(proj_len, max_len) / math.sqrt(proj_len)
        segment = torch.arange(max_len) * proj_len // max_len  # (N,) slot of each position
        onehot = torch.nn.functional.one_hot(segment, proj_len).T.float()  # (P, N)
        return onehot / onehot.sum(dim=1, keepdim=True).clamp_min(1.0)

    def projections(self) -> tuple[Tensor, Tensor]:
        """(E, F), each (P, N)."""
        return self.proj_k, (self.proj_k if self.proj_v is None else self.proj_v)

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
        scale: float, dropout: float, is_causal: bool,
    ) -> tuple[Tensor, None]:
        proj_k, proj_v = self.projections()
        return linformer_attention(q, k, v, mask, bias, scale, dropout, is_causal, proj_k=proj_k, proj_v=proj_v)

    def dense(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
        scale: float, dropout: float, is_causal: bool,
    ) -> tuple[Tensor, Tensor]:
        proj_k, proj_v = self.projections()
        return linformer_dense(q, k, v, mask, bias, scale, dropout, is_causal, proj_k=proj_k, proj_v=proj_v)

    def decode_mask(self, input_pos: Tensor, S: int) -> Tensor:
        raise UnsupportedAttentionError(
            "Linformer attention cannot decode with a KV cache: it is non-causal and projects the whole "
            "key sequence at once; use it in encoders and an exact backend ('sdpa') for generation"
        )

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, proj_len={self.proj_len}, share_kv={self.share_kv}, init={self.init!r}"


def _needs_module(*args: object) -> tuple[Tensor, None]:
    raise UnsupportedAttentionError(
        "Linformer has learned projections, so it has no parameter-free backend function: use "
        "MultiHeadAttention(backend='linformer:max_len=512,proj_len=64') (or a model config's backend "
        "field), or call attnlab.efficient.LinformerAttention(max_len=...) / linformer_attention(...)"
    )


register_backend("linformer", BackendEntry(_needs_module, _needs_module, "Linformer: needs its module"))
