"""Performer FAVOR+: convergence to softmax attention, chunked prefix sums, masks, features, limits."""

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from attnlab.core.attention import attention
from attnlab.core.masks import (
    causal_mask,
    combine_masks,
    padding_mask,
    sliding_window_mask,
)
from attnlab.efficient import (
    PerformerAttention,
    UnsupportedAttentionError,
    causal_linear_attention,
    orthogonal_features,
    performer_attention,
)


def perf(q, k, v, mask=None, *, causal, projection, chunk_size=128, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    return performer_attention(
        q, k, v, mask, None, scale, 0.0, causal, projection=projection, chunk_size=chunk_size
    )[0]


def features(m, d, seed=0):
    return orthogonal_features(m, d, generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("causal", [False, True])
def test_estimate_converges_to_softmax_attention_as_features_grow(qkv, reference, causal):
    q, k, v = qkv(4, 4, 32, 16)
    q, k = q * 0.5, k * 0.5
    want, _ = reference(q, k, v, causal_mask(32) if causal else None)
    errors = []
    for m in (16, 64, 256, 1024):
        got = perf(q, k, v, causal=causal, projection=features(m, 16))
        errors.append(float((got - want).norm() / want.norm()))
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.3 * errors[0], errors  # about 1/sqrt(M): x0.5 per 4x features


def _prefix_sum_reference(phi_q, phi_k, v):
    """out_t = phi_q_t · cumsum_s(phi_k_s v_sᵀ) / phi_q_t · cumsum_s(phi_k_s), taken literally."""
    kv = torch.cumsum(phi_k[..., :, None] * v[..., None, :], dim=-3)  # (B, H, T, M, Dh)
    z = torch.cumsum(phi_k, dim=-2)  # (B, H, T, M)
    num = (phi_q[..., :, None] * kv).sum(-2)
    return num / (phi_q * z).sum(-1, keepdim=True)


@pytest.mark.parametrize("chunk", [1, 5, 16, 23, 64])
def test_chunked_causal_prefix_sums_equal_the_literal_cumsum(chunk):
    gen = torch.Generator().manual_seed(1)
    phi_q, phi_k = (torch.rand(2, 3, 23, 12, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 3, 23, 8, generator=gen, dtype=torch.float64)
    assert_close(causal_linear_attention(phi_q, phi_k, v, chunk), _prefix_sum_reference(phi_q, phi_k, v))


@pytest.mark.parametrize("causal", [False, True])
def test_fast_path_equals_the_explicit_implicit_matrix(qkv, causal):
    q, k, v = qkv(2, 4, 21, 8, Hkv=2)
    module = PerformerAttention(8, n_features=32, chunk_size=4).double()
    fast = module(q, k, v, None, None, 0.3, 0.0, causal)[0]
    slow, weights = module.dense(q, k, v, None, None, 0.3, 0.0, causal)
    assert_close(fast, slow)
    assert_close(weights.sum(-1), torch.ones(2, 4, 21, dtype=torch.float64))
    if causal:
        assert bool((weights.triu(1) == 0).all())


def test_padded_keys_are_ignored_exactly(qkv):
    q, k, v = qkv(1, 2, 12, 8)
    proj = features(32, 8)
    valid = torch.ones(1, 12, dtype=torch.bool)
    valid[0, 9:] = False
    got = perf(q, k, v, padding_mask(valid), causal=False, projection=proj)
    want = perf(q, k[:, :, :9], v[:, :, :9], causal=False, projection=proj)
    assert_close(got, want)


def test_dense_causal_mask_is_recognised_and_padded_queries_give_zeros(qkv):
    q, k, v = qkv(2, 2, 10, 8)
    proj = features(32, 8)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[1, :3] = False  # left padding
    got = perf(q, k, v, combine_masks(causal_mask(10), padding_mask(valid)), causal=False, projection=proj, chunk_size=3)
    want = perf(q, k, v, padding_mask(valid), causal=True, projection=proj, chunk_size=3)
    assert_close(got[0], want[0])
    assert_close(got[1, :, 3:], want[1, :, 3:])
    assert bool((got[1, :, :3] == 0).all())  # a left-padded query sees no key at or before it


def test_causal_outputs_ignore_future_tokens(qkv):
    q, k, v = qkv(1, 2, 40, 8)
    proj = features(64, 8)
    before = perf(q, k, v, causal=True, projection=proj, chunk_size=16)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 25:] += 3.0
    v2[:, :, 25:] -= 5.0
    after = perf(q, k2, v2, causal=True, projection=proj, chunk_size=16)
    assert_close(after[:, :, :25], before[:, :, :25])
    assert not torch.allclose(after[:, :, 25:], before[:, :, 25:])


def test_orthogonal_features_are_orthogonal_blocks_with_gaussian_lengths():
    proj = orthogonal_features(2048, 16, generator=torch.Generator().manual_seed(0)).double()
    block = proj[:16] / proj[:16].norm(dim=1, keepdim=True)
    assert_close(block @ block.T, torch.eye(16, dtype=torch.float64))
    assert abs(float((proj**2).sum(1).mean()) - 16.0) < 0.6  # E|w|² = Dh, as for a Gaussian row
    iid = orthogonal_features(8, 4, orthogonal=False, generator=torch.Generator().manual_seed(0))
    assert iid.shape == (8, 4)


def test_module_seed_redraw_and_registry_backend(qkv):
    a, b = PerformerAttention(8, n_features=16, seed=3), PerformerAttention(8, n_features=16, seed=3)
    assert torch.equal(a.projection, b.projection)
    assert "projection" not in a.state_dict()  # rebuilt from the seed, not saved
    a.redraw(torch.Generator().manual_seed(9))
    assert not torch.equal(a.projection, b.projection)
    q, k, v = qkv(1, 2, 10, 8)
    out, w = attention(q.float(), k.float(), v.float(), backend="performer", is_causal=True, need_weights=True)
    assert out.shape == (1, 2, 10, 8) and bool((w.triu(1) == 0).all())


def test_long_causal_sequence_runs_in_chunks():
    """T = 65536: a (T, T) score matrix would need 16 GiB; the chunks need a few MB."""
    T = 65536
    q = torch.randn(1, 1, T, 8) * 0.3
    out = perf(q, q, q, causal=True, projection=features(16, 8).float(), chunk_size=256)
    assert out.shape == (1, 1, T, 8) and bool(torch.isfinite(out).all())


def test_unsupported_combinations_raise(qkv):
    q, k, v = qkv(1, 2, 8, 4)
    module = PerformerAttention(4, n_features=8).double()
    with pytest.raises(UnsupportedAttentionError, match="bias"):
        module(q, k, v, None, torch.zeros(1, 2, 8, 8, dtype=torch.float64), 0.5, 0.0, False)
    with pytest.raises(UnsupportedAttentionError, match="dropout"):
        module(q, k, v, None, None, 0.5, 0.1, False)
    with pytest.raises(UnsupportedAttentionError, match="padding masks and causal masks"):
        module(q, k, v, sliding_window_mask(8, window=3), None, 0.5, 0.0, False)
    with pytest.raises(UnsupportedAttentionError, match="KV cache"):
        module.decode_mask(torch.tensor([3]), 8)
    with pytest.raises(ValueError, match="head_dim 4"):
        module(*qkv(1, 2, 8, 6), None, None, 0.5, 0.0, False)
