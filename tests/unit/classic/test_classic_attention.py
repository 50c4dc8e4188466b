"""Alignment models against float64 formulas written out: masked softmax, the dot / general /
additive scores, global and local-p attention (window, Gaussian, predicted centre)."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from attnlab.classic import (
    AdditiveScore,
    DotScore,
    GeneralScore,
    GlobalAttention,
    LocalPAttention,
    make_score,
    masked_softmax,
)

B, T, S, D = 3, 4, 6, 8
LENGTHS = torch.tensor([6, 3, 1])


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(B, T, D, generator=g)
    memory = torch.randn(B, S, D, generator=g)
    valid = torch.arange(S)[None, :] < LENGTHS[:, None]
    memory = memory * valid[..., None]  # the encoder leaves zeros on padding
    return query, memory, valid


def _ref_scores(score: torch.nn.Module, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """(B, T, S) raw scores in float64, one (t, s) pair at a time."""
    q, m = query.double(), memory.double()
    out = torch.empty(B, T, S, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            for s in range(S):
                h, hs = q[b, t], m[b, s]
                if isinstance(score, GeneralScore):
                    out[b, t, s] = h @ (score.key_proj.weight.double() @ hs)
                elif isinstance(score, AdditiveScore):
                    inner = score.query_proj.weight.double() @ h + score.key_proj.weight.double() @ hs
                    out[b, t, s] = score.v.weight.double()[0] @ torch.tanh(inner + score.key_proj.bias.double())
                else:
                    out[b, t, s] = h @ hs
    return out


def _ref_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    e = torch.exp(scores - scores.max()) * allowed
    return e / e.sum(-1, keepdim=True)


@pytest.mark.parametrize("name", ["dot", "general", "concat", "additive"])
def test_global_attention_matches_float64_formula(name):
    torch.manual_seed(0)
    attn = GlobalAttention(make_score(name, D, D, 5))
    query, memory, valid = _inputs()
    context, weights = attn(query, attn.prepare(memory), memory, valid, LENGTHS)
    assert context.shape == (B, T, D) and weights.shape == (B, T, S)
    ref_w = _ref_softmax(_ref_scores(attn.score, query, memory), valid[:, None, :])
    assert_close(weights.double(), ref_w, rtol=1e-5, atol=1e-6)
    assert_close(context.double(), ref_w @ memory.double(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["dot", "general", "concat"])
def test_global_weights_sum_to_one_and_vanish_on_padding(name):
    torch.manual_seed(1)
    attn = GlobalAttention(make_score(name, D, D, 5))
    query, memory, valid = _inputs(1)
    _, weights = attn(query, attn.prepare(memory), memory, valid, LENGTHS)
    assert_close(weights.sum(-1), torch.ones(B, T))
    assert bool((weights.masked_select(~valid[:, None, :].expand(B, T, S)) == 0).all())
    assert weights[2, :, 0].eq(1).all()  # a one-token source gets all the weight


def test_masked_softmax_dead_rows_are_zero_and_grads_finite():
    scores = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.tensor([[True, False, True, False], [False] * 4])[:, None, :]
    w = masked_softmax(scores, mask)
    assert_close(w[0].sum(-1), torch.ones(3))
    assert bool((w[1] == 0).all())
    w.sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_dot_score_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="general"):
        keys = torch.randn(1, 3, 5)
        DotScore()(torch.randn(1, 1, 4), keys, keys, torch.ones(1, 1, 3, dtype=torch.bool))


def test_make_score_unknown_name():
    with pytest.raises(ValueError, match="unknown attention score 'cosine'"):
        make_score("cosine", D, D, D)


@pytest.mark.parametrize("name", ["dot", "general", "concat"])
@pytest.mark.parametrize("window", [1, 2])
def test_local_p_matches_luong_equations(name, window):
    """a_t(s) = softmax_{|s - p_t| <= D}(score) * exp(-(s - p_t)^2 / (2 (D/2)^2)), p_t = (len-1) sigmoid(.)."""
    torch.manual_seed(2)
    attn = LocalPAttention(make_score(name, D, D, 5), D, window)
    query, memory, valid = _inputs(2)
    context, weights = attn(query, attn.prepare(memory), memory, valid, LENGTHS)
    q = query.double()
    gate = torch.sigmoid(torch.tanh(q @ attn.position_proj.weight.double().T) @ attn.position_v.weight.double().T)
    centre = (LENGTHS.double() - 1)[:, None] * gate[..., 0]  # (B, T)
    offset = torch.arange(S, dtype=torch.float64)[None, None, :] - centre[..., None]  # (B, T, S)
    inside = (offset.abs() <= window) & valid[:, None, :]
    ref = _ref_softmax(_ref_scores(attn.score, query, memory), inside)
    ref = ref * torch.exp(-offset**2 / (2 * (window / 2) ** 2))
    assert_close(attn.predict_position(query, LENGTHS).double(), centre)
    assert_close(weights.double(), ref, rtol=1e-5, atol=1e-6)
    assert_close(context.double(), ref @ memory.double(), rtol=1e-5, atol=1e-6)


def test_local_p_attends_only_inside_its_window():
    torch.manual_seed(3)
    window = 1
    attn = LocalPAttention(GeneralScore(D, D), D, window)
    g = torch.Generator().manual_seed(3)
    S_long, lengths = 20, torch.tensor([20, 13])
    valid = torch.arange(S_long)[None, :] < lengths[:, None]
    memory = torch.randn(2, S_long, D, generator=g) * valid[..., None]
    query = torch.randn(2, 7, D, generator=g) * 3
    with torch.no_grad():
        _, weights = attn(query, attn.prepare(memory), memory, valid, lengths)
        centre = attn.predict_position(query, lengths)  # (2, 7)
    assert bool(((centre >= 0) & (centre <= (lengths - 1)[:, None])).all())
    dist = (torch.arange(S_long)[None, None, :] - centre[..., None]).abs()  # (2, 7, S)
    outside = (dist > window) | ~valid[:, None, :]
    assert bool((weights[outside] == 0).all())
    assert bool((weights[~outside] > 0).all())
    # at most 2 * window + 1 positions, and the sum stays at most 1 (no renormalization)
    assert int((weights > 0).sum(-1).max()) <= 2 * window + 1
    assert bool((weights.sum(-1) <= 1 + 1e-6).all())


def test_local_p_rejects_bad_window():
    with pytest.raises(ValueError, match="half-width must be >= 1"):
        LocalPAttention(DotScore(), D, 0)


def test_local_p_gradient_reaches_the_position_predictor():
    torch.manual_seed(4)
    attn = LocalPAttention(GeneralScore(D, D), D, 2)
    query, memory, valid = _inputs(4)
    context, _ = attn(query, attn.prepare(memory), memory, valid, LENGTHS)
    context.square().sum().backward()
    assert attn.position_v.weight.grad is not None and attn.position_v.weight.grad.abs().sum() > 0
