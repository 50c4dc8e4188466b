"""Alignment models of the RNN era: Bahdanau's additive score, Luong's dot / general / concat
scores, and Luong's global and local-p attention.

Dimension key: B batch, T decoder steps (queries), S source length, Dq query width, D memory width,
A additive-score width.

Every attention module maps

    query (B, T, Dq), keys (B, S, K), values (B, S, D), valid (B, S), lengths (B,)
        -> context (B, T, D), alignment (B, T, S)

where ``keys = score.prepare(values)`` is computed once per source sentence. Scores:

    dot       score(h, h_s) = h . h_s                       through attnlab.core.attention, scale 1
    general   score(h, h_s) = h . (W_a h_s)                 a dot product with projected keys
    additive  score(h, h_s) = v_a . tanh(W_q h + U_a h_s)   Bahdanau; Luong's "concat" is the same form

Global attention normalizes over every valid source position, so each alignment row sums to 1 and
is 0 on padding. Local-p (Luong et al. 2015, eq. 9-10) predicts a centre
``p_t = (len - 1) * sigmoid(v_p . tanh(W_p h_t))``, normalizes the score over the positions
``|s - p_t| <= window`` only, and multiplies by ``exp(-(s - p_t)^2 / (2 sigma^2))`` with
``sigma = window / 2`` — as in the paper, the result is not renormalized, so a local-p row sums to
at most 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.core.attention import attention


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """softmax over the last axis restricted to ``mask`` (bool, True = may attend, broadcastable).

    Masked positions get exactly 0, and a row with no allowed position is all zeros (never NaN).
    """
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * mask  # (B, T, S)


class DotScore(nn.Module):
    """Luong's dot score: softmax(h_t . h_s), computed by the core attention function with scale 1."""

    def prepare(self, memory: Tensor) -> Tensor:
        return memory  # (B, S, D)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """query (B, T, Dq), keys (B, S, Dq), values (B, S, D), mask (B, T or 1, S) -> context, weights."""
        if query.shape[-1] != keys.shape[-1]:
            raise ValueError(
                f"the dot score needs equal query and key widths, got {query.shape[-1]} and {keys.shape[-1]}; "
                "use the 'general' score to learn a projection"
            )
        out, weights = attention(
            query[:, None], keys[:, None], values[:, None], mask[:, None], scale=1.0, need_weights=True
        )  # (B, 1, T, D), (B, 1, T, S)
        assert weights is not None
        return out[:, 0], weights[:, 0]  # (B, T, D), (B, T, S)


class GeneralScore(DotScore):
    """Luong's general (bilinear) score h_t . W_a h_s: the dot score on keys W_a h_s."""

    def __init__(self, d_query: int, d_key: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(d_key, d_query, bias=False)

    def prepare(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)  # (B, S, Dq)


class AdditiveScore(nn.Module):
    """Bahdanau's score v_a . tanh(W_q h + U_a h_s) (Luong's "concat"), normalized by masked softmax."""

    def __init__(self, d_query: int, d_key: int, d_attn: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(d_query, d_attn, bias=False)
        self.key_proj = nn.Linear(d_key, d_attn)
        self.v = nn.Linear(d_attn, 1, bias=False)

    def prepare(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)  # (B, S, A)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        q = self.query_proj(query)  # (B, T, A)
        hidden = torch.tanh(q[:, :, None, :] + keys[:, None, :, :])  # (B, T, S, A)
        weights = masked_softmax(self.v(hidden).squeeze(-1), mask)  # (B, T, S)
        return torch.bmm(weights, values), weights  # (B, T, D), (B, T, S)


Score = DotScore | AdditiveScore


def make_score(name: str, d_query: int, d_key: int, d_attn: int) -> Score:
    """``"dot"``, ``"general"``, ``"concat"`` (Luong) or ``"additive"`` (Bahdanau; same as concat)."""
    if name == "dot":
        return DotScore()
    if name == "general":
        return GeneralScore(d_query, d_key)
    if name in ("concat", "additive"):
        return AdditiveScore(d_query, d_key, d_attn)
    raise ValueError(f"unknown attention score {name!r}; choose dot, general, concat or additive")


class GlobalAttention(nn.Module):
    """Attend over every valid source position."""

    def __init__(self, score: Score) -> None:
        super().__init__()
        self.score = score

    def prepare(self, memory: Tensor) -> Tensor:
        return self.score.prepare(memory)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, valid: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor]:
        return self.score(query, keys, values, valid[:, None, :])  # (B, T, D), (B, T, S)


class LocalPAttention(GlobalAttention):
    """Luong's local-p attention: a predicted centre, a window of half-width D, a Gaussian weight."""

    def __init__(self, score: Score, d_query: int, window: int) -> None:
        super().__init__(score)
        if window < 1:
            raise ValueError(f"the local-p window half-width must be >= 1, got {window}")
        self.window = window
        self.position_proj = nn.Linear(d_query, d_query, bias=False)  # W_p
        self.position_v = nn.Linear(d_query, 1, bias=False)  # v_p

    def predict_position(self, query: Tensor, lengths: Tensor) -> Tensor:
        """p_t in [0, len - 1] (B, T): real-valued centres of the windows."""
        gate = torch.sigmoid(self.position_v(torch.tanh(self.position_proj(query)))).squeeze(-1)  # (B, T)
        return (lengths - 1).to(gate.dtype)[:, None] * gate

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, valid: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor]:
        centre = self.predict_position(query, lengths)  # (B, T)
        positions = torch.arange(values.shape[1], device=values.device, dtype=centre.dtype)
        offset = positions[None, None, :] - centre[:, :, None]  # (B, T, S)
        inside = (offset.abs() <= self.window) & valid[:, None, :]  # (B, T, S)
        _, weights = self.score(query, keys, values, inside)
        sigma = self.window / 2.0
        weights = weights * torch.exp(-offset.square() / (2.0 * sigma**2))  # (B, T, S)
        return torch.bmm(weights, values), weights  # (B, T, D), (B, T, S)
