"""Linformer: exact at identity projections, shorter sequences, padding, gradients, and its stated limits."""

import math

import pytest
import torch
from torch.testing import assert_close

from attnlab.core.attention import attention
from attnlab.core.masks import (
    causal_mask,
    combine_masks,
    padding_mask,
    query_padding_mask,
)
from attnlab.efficient import (
    LinformerAttention,
    UnsupportedAttentionError,
    linformer_attention,
)


def identity_linformer(n, dtype=torch.float64):
    module = LinformerAttention(max_len=n, proj_len=n).to(dtype)
    with torch.no_grad():
        module.proj_k.copy_(torch.eye(n))
        module.proj_v.copy_(torch.eye(n))
    return module


@pytest.mark.parametrize("Hkv", [4, 2])
def test_identity_projections_at_full_length_equal_exact_attention(qkv, reference, Hkv):
    q, k, v = qkv(2, 4, 16, 8, Hkv=Hkv)
    out, _ = attention(q, k, v, backend=identity_linformer(16))
    assert_close(out, reference(q, k, v)[0])


def test_identity_projections_with_a_padding_mask_equal_exact_attention_on_real_tokens(qkv, reference):
    q, k, v = qkv(2, 2, 12, 8)
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[1, 8:] = False
    mask = combine_masks(padding_mask(valid), query_padding_mask(valid))  # (B, 1, T, T)
    out, _ = attention(q, k, v, mask, backend=identity_linformer(12))
    want, _ = reference(q[1:, :, :8], k[1:, :, :8], v[1:, :, :8])
    assert_close(out[1, :, :8], want[0])
    assert_close(out[0], reference(q[:1], k[:1], v[:1])[0][0])
    assert bool((out[1, :, 8:] == 0).all())  # padded queries give zeros


def test_shorter_sequences_use_the_leading_columns_like_zero_padding(qkv):
    module = LinformerAttention(max_len=20, proj_len=6).double()
    q, k, v = qkv(1, 2, 13, 8)
    pad = torch.zeros(1, 2, 7, 8, dtype=torch.float64)
    short = module(q, k, v, None, None, 0.3, 0.0, False)[0]
    long = module(q, torch.cat([k, pad], 2), torch.cat([v, pad], 2), None, None, 0.3, 0.0, False)[0]
    assert_close(short, long)


def test_right_padding_leaves_real_tokens_unchanged(qkv):
    module = LinformerAttention(max_len=16, proj_len=5).double()
    q, k, v = qkv(1, 2, 16, 8)
    valid = torch.ones(1, 16, dtype=torch.bool)
    valid[0, 11:] = False
    padded = module(q, k, v, padding_mask(valid), None, 0.3, 0.0, False)[0]
    alone = module(q[:, :, :11], k[:, :, :11], v[:, :, :11], None, None, 0.3, 0.0, False)[0]
    assert_close(padded[:, :, :11], alone)


def test_dense_twin_returns_weights_over_projected_keys(qkv):
    module = LinformerAttention(max_len=10, proj_len=4, share_kv=True).double()
    q, k, v = qkv(2, 2, 10, 8)
    fast = module(q, k, v, None, None, 0.3, 0.0, False)[0]
    out, w = attention(q, k, v, None, None, 0.3, backend=module, need_weights=True)
    assert w.shape == (2, 2, 10, 4)
    assert_close(out, fast)
    assert_close(w.sum(-1), torch.ones(2, 2, 10, dtype=torch.float64))
    assert module.proj_v is None and module.projections()[1] is module.proj_k


def test_gradients_reach_the_projections(qkv):
    module = LinformerAttention(max_len=12, proj_len=3)
    q, k, v = (x.float() for x in qkv(1, 2, 12, 4))
    module(q, k, v, None, None, 0.5, 0.0, False)[0].square().sum().backward()
    assert module.proj_k.grad is not None and module.proj_k.grad.abs().sum() > 0
    assert module.proj_v is not None and module.proj_v.grad is not None


def test_unsupported_combinations_raise_clearly(qkv):
    module = LinformerAttention(max_len=8, proj_len=4).double()
    q, k, v = qkv(1, 2, 8, 4)
    with pytest.raises(UnsupportedAttentionError, match="non-causal"):
        module(q, k, v, None, None, 0.5, 0.0, True)
    with pytest.raises(UnsupportedAttentionError, match="non-causal"):
        module(q, k, v, causal_mask(8), None, 0.5, 0.0, False)
    with pytest.raises(UnsupportedAttentionError, match="bias"):
        module(q, k, v, None, torch.zeros(1, 2, 8, 8, dtype=torch.float64), 0.5, 0.0, False)
    with pytest.raises(UnsupportedAttentionError, match="KV cache"):
        module.decode_mask(torch.tensor([2]), 8)
    with pytest.raises(ValueError, match="max_len=8"):
        module(*qkv(1, 2, 9, 4), None, None, 0.5, 0.0, False)
    with pytest.raises(ValueError, match="needs max_len"):
        LinformerAttention()
    with pytest.raises(UnsupportedAttentionError, match="learned projections"):
        attention(q, k, v, backend="linformer")
    proj = torch.eye(8, dtype=torch.float64)
    out, _ = linformer_attention(q, k, v, None, None, 1 / math.sqrt(4), 0.0, False, proj_k=proj, proj_v=proj)
    assert_close(out, attention(q, k, v, backend="naive")[0])


@pytest.mark.parametrize("S", [16, 11])
def test_pool_init_at_full_resolution_is_exact_for_any_length(qkv, reference, S):
    """proj_len == max_len makes every pooled segment one position: the identity, at any S <= max_len."""
    module = LinformerAttention(max_len=16, proj_len=16, init="pool").double()
    q, k, v = qkv(1, 2, S, 8)
    assert_close(module(q, k, v, None, None, 1 / math.sqrt(8), 0.0, False)[0], reference(q, k, v)[0])


def test_pool_init_averages_segments(qkv):
    module = LinformerAttention(max_len=12, proj_len=3, init="pool")
    assert_close(module.proj_k.sum(1), torch.ones(3))
    assert bool((module.proj_k[0, :4] == 0.25).all()) and bool((module.proj_k[0, 4:] == 0).all())
    with pytest.raises(ValueError, match="proj_len <= max_len"):
        LinformerAttention(max_len=4, proj_len=8, init="pool")
    with pytest.raises(ValueError, match="init must be"):
        LinformerAttention(max_len=4, init="random")
