"""Performer attention with FAVOR+ positive orthogonal random features (Choromanski et al. 2021).

Dimension key: B batch, H query heads, Hkv key/value heads, T query length, S key length, Dh head dim,
M random features, c chunk length.

The softmax kernel is estimated with positive random features. With x' = x·sqrt(scale) (so that
q'·k' = scale·q·k) and rows w_i of the (M, Dh) projection,

    phi(x) = exp(w_i · x' - |x'|² / 2) / sqrt(M)          E[phi(q)·phi(k)] = exp(scale · q·k)
    out_t  = phi(q_t) · Σ_s phi(k_s) v_sᵀ  /  phi(q_t) · Σ_s phi(k_s)

The rows w_i come in blocks of Dh exactly orthogonal directions with Gaussian-distributed lengths,
which lowers the estimator's variance; the error shrinks as M grows (about 1/sqrt(M)).

Non-causal: two (M, Dh) / (M,) sums over all keys, O((T + S)·M·Dh) time, O(M·Dh) extra memory.
Causal: the sums become prefix sums over s <= t. They are carried from chunk to chunk (a running
(M, Dh) state), and inside a chunk of c queries the same prefix sums are taken as a lower-triangular
(c, c) product, so memory is O(c² + c·M + M·Dh) per (batch, head) and never O(T·M·Dh) or O(T²).

Numerical stability: the exponent of each query's features is shifted by its own maximum and that of
the keys by one maximum over all valid keys of the (batch, head); both shifts cancel in the ratio.
(Under a causal pattern the key shift is computed over the whole sequence; it cancels exactly, so
earlier outputs depend on later keys only through rounding.)

Limits: no additive bias (ALiBi, T5) and no attention dropout (there are no explicit weights to drop);
masks must be key padding, query padding and/or causal (checked); no KV-cache decoding.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from attnlab.core.attention import register_backend
from attnlab.efficient.masking import SplitMask, repeat_kv, split_mask
from attnlab.efficient.variant import (
    AttentionVariant,
    BackendEntry,
    BackendFn,
    UnsupportedAttentionError,
    register_variant,
)

DEFAULT_FEATURES = 256
DEFAULT_CHUNK = 128


def orthogonal_features(
    n_features: int, head_dim: int, *, orthogonal: bool = True, generator: torch.Generator | None = None
) -> Tensor:
    """(M, Dh) float32 projection: blocks of Dh orthogonal rows with chi(Dh)-distributed lengths.

    With ``orthogonal=False`` the rows are plain i.i.d. standard Gaussians (the unstructured estimator).
    """
    if n_features < 1 or head_dim < 1:
        raise ValueError(f"n_features and head_dim must be >= 1, got {n_features} and {head_dim}")
    gauss = torch.randn(n_features, head_dim, generator=generator, dtype=torch.float64)  # (M, Dh)
    if not orthogonal:
        return gauss.float()
    blocks = []
    for _ in range(math.ceil(n_features / head_dim)):
        q, r = torch.linalg.qr(torch.randn(head_dim, head_dim, generator=generator, dtype=torch.float64))
        blocks.append((q * torch.sign(torch.diagonal(r))).T)  # (Dh, Dh) Haar-random orthonormal rows
    directions = torch.cat(blocks)[:n_features]  # (M, Dh)
    return (directions * gauss.norm(dim=1, keepdim=True)).float()  # rows distributed like Gaussians


@lru_cache(maxsize=16)
def _seeded_features(n_features: int, head_dim: int, seed: int) -> Tensor:
    return orthogonal_features(n_features, head_dim, generator=torch.Generator().manual_seed(seed))


def _log_features(x: Tensor, projection: Tensor, scale: float) -> Tensor:
    """(.., L, Dh) -> (.., L, M): the exponent w·x' - |x'|²/2 of the positive features."""
    x = x * math.sqrt(scale)
    return x @ projection.to(x).T - 0.5 * (x * x).sum(dim=-1, keepdim=True)  # (.., L, M)


def favor_features(q: Tensor, k: Tensor, projection: Tensor, scale: float, split: SplitMask) -> tuple[Tensor, Tensor]:
    """Stabilized positive features (phi_q (B, H, T, M), phi_k (B, H, S, M)); invalid keys get zeros."""
    m = projection.shape[0]
    log_q = _log_features(q, projection, scale)  # (B, H, T, M)
    log_k = repeat_kv(_log_features(k, projection, scale), q.shape[1])  # (B, H, S, M)
    phi_q = torch.exp(log_q - log_q.amax(dim=-1, keepdim=True).detach()) / math.sqrt(m)
    valid = None if split.key_valid is None else split.key_valid.transpose(-1, -2)  # (B|1, H|1, S, 1)
    shift_src = log_k if valid is None else log_k.masked_fill(~valid, float("-inf"))
    shift = shift_src.amax(dim=(-2, -1), keepdim=True).detach()  # (B, H, 1, 1)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))  # all keys masked
    phi_k = torch.exp(log_k - shift) / math.sqrt(m)
    if valid is not None:
        phi_k = phi_k * valid
    return phi_q, phi_k


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)  # a row with no visible key -> zeros


def linear_attention(phi_q: Tensor, phi_k: Tensor, v: Tensor) -> Tensor:
    """Non-causal: (B, H, T, M), (B, H, S, M), (B, H, S, Dh) -> (B, H, T, Dh)."""
    kv = phi_k.transpose(-1, -2) @ v  # (B, H, M, Dh)
    z = phi_k.sum(dim=-2).unsqueeze(-1)  # (B, H, M, 1)
    return _ratio(phi_q @ kv, phi_q @ z)


def causal_linear_attention(phi_q: Tensor, phi_k: Tensor, v: Tensor, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Causal via prefix sums carried across chunks: (B, H, T, M), (B, H, T, M), (B, H, T, Dh) -> (B, H, T, Dh)."""
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk}")
    B, H, T, M = phi_q.shape
    state = phi_q.new_zeros(B, H, M, v.shape[-1])  # Σ_{s < chunk start} phi(k_s) v_sᵀ  (B, H, M, Dh)
    norm = phi_q.new_zeros(B, H, M, 1)  # Σ_{s < chunk start} phi(k_s)                  (B, H, M, 1)
    outs = []
    for start in range(0, T, chunk):
        qc, kc, vc = (x[:, :, start : start + chunk] for x in (phi_q, phi_k, v))  # (B, H, c, .)
        local = (qc @ kc.transpose(-1, -2)).tril()  # (B, H, c, c): prefix sums inside the chunk
        num = local @ vc + qc @ state  # (B, H, c, Dh)
        den = local.sum(dim=-1, keepdim=True) + qc @ norm  # (B, H, c, 1)
        outs.append(_ratio(num, den))
        state = state + kc.transpose(-1, -2) @ vc
        norm = norm + kc.sum(dim=-2).unsqueeze(-1)
    return torch.cat(outs, dim=2)  # (B, H, T, Dh)


def _prepare(
    q: Tensor, k: Tensor, mask: Tensor | None, bias: Tensor | None, dropout: float, is_causal: bool
) -> SplitMask:
    if bias is not None:
        raise UnsupportedAttentionError(
            "Performer attention cannot add a score bias (ALiBi, T5 relative bias): it never forms the "
            "scores; use positional='rope' or an absolute encoding"
        )
    if dropout > 0.0:
        raise UnsupportedAttentionError(
            f"Performer attention has no explicit weights to drop (dropout={dropout}); set the model's "
            "attention dropout to 0.0 (e.g. attn_dropout=0.0)"
        )
    split = split_mask(mask, q.shape[2], k.shape[2], method="Performer", allow_causal=True)
    if (is_causal or split.causal) and q.shape[2] != k.shape[2]:
        raise ValueError(f"causal Performer attention needs T == S, got T={q.shape[2]}, S={k.shape[2]}")
    split.causal = split.causal or is_causal
    return split


def performer_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float, dropout: float,
    is_causal: bool, *, projection: Tensor, chunk_size: int = DEFAULT_CHUNK,
) -> tuple[Tensor, None]:
    """FAVOR+ attention: q (B, H, T, Dh), k, v (B, Hkv, S, Dh), projection (M, Dh) -> (out, None)."""
    split = _prepare(q, k, mask, bias, dropout, is_causal)
    phi_q, phi_k = favor_features(q, k, projection, scale, split)  # (B, H, T, M), (B, H, S, M)
    v = repeat_kv(v, q.shape[1])  # (B, H, S, Dh)
    if split.causal:
        out = causal_linear_attention(phi_q, phi_k, v, chunk_size)
    else:
        out = linear_attention(phi_q, phi_k, v)  # (B, H, T, Dh)
    return (out if split.query_alive is None else out * split.query_alive), None


def performer_dense(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float, dropout: float,
    is_causal: bool, *, projection: Tensor, chunk_size: int = DEFAULT_CHUNK,
) -> tuple[Tensor, Tensor]:
    """The implicit attention matrix made explicit: (out (B, H, T, Dh), weights (B, H, T, S))."""
    del chunk_size
    split = _prepare(q, k, mask, bias, dropout, is_causal)
    phi_q, phi_k = favor_features(q, k, projection, scale, split)
    scores = phi_q @ phi_k.transpose(-1, -2)  # (B, H, T, S)
    if split.causal:
        scores = scores.tril()
    weights = scores / scores.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
    if split.query_alive is not None:
        weights = weights * split.query_alive
    return weights @ repeat_kv(v, q.shape[1]), weights  # (B, H, T, Dh)


@register_variant
class PerformerAttention(AttentionVariant):
    """FAVOR+ attention holding its (M, Dh) random projection as a (non-persistent) buffer.

    Args:
        head_dim: Dh (filled in by MultiHeadAttention).
        n_features: M random features (error ~ 1/sqrt(M); cost linear in M).
        seed: the projection is drawn from this seed, so a rebuilt model has the same features.
        chunk_size: queries per chunk of the causal prefix sums.
        orthogonal: orthogonal random features (FAVOR+) or plain i.i.d. Gaussian ones.
    """

    name = "performer"
    projection: Tensor

    def __init__(
        self, head_dim: int, n_features: int = DEFAULT_FEATURES, seed: int = 0, chunk_size: int = DEFAULT_CHUNK,
        orthogonal: bool = True,
    ) -> None:
        super().__init__()
        self.head_dim, self.n_features, self.seed = head_dim, n_features, seed
        self.chunk_size, self.orthogonal = chunk_size, orthogonal
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "projection", orthogonal_features(n_features, head_dim, orthogonal=orthogonal, generator=gen),
            persistent=False,
        )

    @torch.no_grad()
    def redraw(self, generator: torch.Generator | None = None) -> None:
        """Draw new random features in place (Performer's periodic feature redrawing during training)."""
        fresh = orthogonal_features(self.n_features, self.head_dim, orthogonal=self.orthogonal, generator=generator)
        self.projection.copy_(fresh)

    def _check(self, q: Tensor) -> None:
        if q.shape[-1] != self.head_dim:
            raise ValueError(f"this Performer was built for head_dim {self.head_dim}, got q {tuple(q.shape)}")

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
        scale: float, dropout: float, is_causal: bool,
    ) -> tuple[Tensor, None]:
        self._check(q)
        return performer_attention(
            q, k, v, mask, bias, scale, dropout, is_causal, projection=self.projection, chunk_size=self.chunk_size
        )

    def dense(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None,
        scale: float, dropout: float, is_causal: bool,
    ) -> tuple[Tensor, Tensor]:
        self._check(q)
        return performer_dense(q, k, v, mask, bias, scale, dropout, is_causal, projection=self.projection)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, n_features={self.n_features}, seed={self.seed}, chunk_size={self.chunk_size}"


def _registry_call(dense: bool) -> BackendFn:
    """The registry form: seed-0 features with DEFAULT_FEATURES rows, drawn once per head dim."""
    fn = performer_dense if dense else performer_attention

    def call(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, scale: float,
             dropout: float, is_causal: bool) -> tuple[Tensor, Tensor | None]:
        projection = _seeded_features(DEFAULT_FEATURES, q.shape[-1], 0)
        return fn(q, k, v, mask, bias, scale, dropout, is_causal, projection=projection)

    return call


register_backend(
    "performer",
    BackendEntry(_registry_call(False), _registry_call(True), f"Performer FAVOR+, {DEFAULT_FEATURES} features, seed 0"),
)
