"""Sliding-window attention with global tokens: blocked computation vs float64 dense references."""

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
    sliding_window_mask,
)
from attnlab.efficient import (
    SlidingWindowAttention,
    UnsupportedAttentionError,
    sliding_window_attention,
)


def swa(q, k, v, mask=None, bias=None, *, causal, scale=None, **options):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    return sliding_window_attention(q, k, v, mask, bias, scale, 0.0, causal, **options)[0]


@pytest.mark.parametrize("causal", [True, False])
def test_window_covering_the_sequence_is_exact_attention(qkv, reference, causal):
    q, k, v = qkv(2, 4, 23, 8)
    window = 23 if causal else 2 * 23  # bidirectional reach is window // 2 on each side
    want, _ = reference(q, k, v, causal_mask(23) if causal else None)
    assert_close(swa(q, k, v, causal=causal, window=window, block_size=5), want)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("T", "window", "block"), [(37, 1, None), (37, 5, 4), (37, 8, 7), (40, 16, 8), (9, 4, 64), (64, 7, 1)])
def test_matches_sliding_window_mask_with_naive_float64(qkv, reference, causal, T, window, block):
    q, k, v = qkv(2, 3, T, 8)
    want, _ = reference(q, k, v, sliding_window_mask(T, window=window, causal=causal))
    assert_close(swa(q, k, v, causal=causal, window=window, block_size=block), want)


def test_padding_mask_bias_and_grouped_heads(qkv, reference):
    q, k, v = qkv(2, 4, 30, 8, Hkv=2)
    valid = torch.ones(2, 30, dtype=torch.bool)
    valid[1, 21:] = False
    mask = combine_masks(padding_mask(valid), query_padding_mask(valid))  # (B, 1, T, T)
    bias = torch.randn(1, 4, 30, 30, dtype=torch.float64)
    want, _ = reference(q, k, v, combine_masks(mask, sliding_window_mask(30, window=6, causal=False)), bias)
    assert_close(swa(q, k, v, mask, bias, causal=False, window=6, block_size=4), want)


def test_a_dense_causal_mask_selects_the_causal_window(qkv):
    """A model that passes causal & padding instead of is_causal must get the same causal window."""
    q, k, v = qkv(2, 2, 25, 8)
    valid = torch.ones(2, 25, dtype=torch.bool)
    valid[1, :4] = False  # left padding
    mask = combine_masks(causal_mask(25), padding_mask(valid))
    got = swa(q, k, v, mask, causal=False, window=5)
    want = swa(q, k, v, padding_mask(valid), causal=True, window=5)
    assert_close(got, want)


def _global_pattern(T, window, causal, globals_):
    pattern = sliding_window_mask(T, window=window, causal=causal).clone()
    pattern[..., globals_] = True
    pattern[..., globals_, :] = True
    return pattern & causal_mask(T) if causal else pattern


@pytest.mark.parametrize("causal", [True, False])
def test_global_tokens_attend_to_and_are_attended_by_all(qkv, reference, causal):
    T, window, globals_ = 33, 4, [0, 7, 31]
    q, k, v = qkv(2, 2, T, 8)
    out = swa(q, k, v, causal=causal, window=window, global_tokens=globals_, block_size=8)
    want, want_w = reference(q, k, v, _global_pattern(T, window, causal, globals_))
    assert_close(out, want)
    # the global rows are exact full attention rows
    full, _ = reference(q, k, v, causal_mask(T) if causal else None)
    assert_close(out[:, :, globals_], full[:, :, globals_])
    # and the weights (from the dense twin) show it: a global key gets weight from every (later) query
    _, w = attention(q, k, v, backend=SlidingWindowAttention(window, globals_), is_causal=causal, need_weights=True)
    assert_close(w, want_w)
    later = causal_mask(T)[0, 0] if causal else torch.ones(T, T, dtype=torch.bool)
    assert bool((w[..., globals_] > 0).all(dim=(0, 1))[later[:, globals_]].all())
    assert bool((w[..., globals_, :] > 0).all(dim=(0, 1))[later[globals_]].all())


def test_global_tokens_with_padding_and_positions_beyond_length(qkv, reference):
    T = 20
    q, k, v = qkv(2, 2, T, 8)
    valid = torch.ones(2, T, dtype=torch.bool)
    valid[0, 15:] = False
    mask = padding_mask(valid)
    out = swa(q, k, v, mask, causal=False, window=4, global_tokens=[0, 3, 500])  # 500 is ignored
    want, _ = reference(q, k, v, combine_masks(mask, _global_pattern(T, 4, False, [0, 3])))
    assert_close(out, want)


def test_gradients_match_the_dense_form(qkv):
    q, k, v = (x.requires_grad_() for x in qkv(1, 2, 19, 4))
    bias = torch.randn(1, 2, 19, 19, dtype=torch.float64, requires_grad=True)
    variant = SlidingWindowAttention(window=5, global_tokens=[2], block_size=4)
    fast = variant(q, k, v, None, bias, 0.5, 0.0, True)[0]
    slow = variant.dense(q, k, v, None, bias, 0.5, 0.0, True)[0]
    upstream = torch.randn_like(fast)
    g_fast = torch.autograd.grad(fast, (q, k, v, bias), upstream)
    g_slow = torch.autograd.grad(slow, (q, k, v, bias), upstream)
    for a, b in zip(g_fast, g_slow):
        assert_close(a, b)


def test_long_sequence_runs_in_linear_memory():
    """T = 131072: dense scores alone would need 64 GiB here; the blocked path needs ~70 MB."""
    T = 131072
    q = torch.randn(1, 1, T, 8)
    out = swa(q, q, q, causal=True, window=64, global_tokens=[0])
    assert out.shape == (1, 1, T, 8) and bool(torch.isfinite(out).all())
    # spot-check a late row against its window computed by hand
    p = T - 5
    keys = torch.cat([q[0, 0, :1], q[0, 0, p - 63 : p + 1]])
    w = torch.softmax(q[0, 0, p] @ keys.T / math.sqrt(8), -1)
    assert_close(out[0, 0, p], w @ keys)


def test_registry_backend_and_need_weights(qkv, reference):
    q, k, v = qkv(1, 2, 300, 4)
    out, _ = attention(q, k, v, backend="sliding_window", is_causal=True)  # default window 256
    want, want_w = reference(q, k, v, sliding_window_mask(300, window=256))
    assert_close(out, want)
    _, w = attention(q, k, v, backend="sliding_window", is_causal=True, need_weights=True)
    assert_close(w, want_w)
    assert bool((w[..., 299, :44] == 0).all())  # outside the window: exactly zero weight


def test_dropout_is_applied_in_training_form(qkv):
    q, k, v = qkv(1, 2, 16, 4)
    plain = sliding_window_attention(q, k, v, None, None, 0.5, 0.0, True, window=4)[0]
    dropped = sliding_window_attention(q, k, v, None, None, 0.5, 0.5, True, window=4)[0]
    assert torch.isfinite(dropped).all() and not torch.allclose(plain, dropped)


def test_errors_are_clear(qkv):
    q, k, v = qkv(1, 1, 8, 4, S=12)
    with pytest.raises(ValueError, match=r"T == S"):
        swa(q, k, v, causal=False, window=4)
    q, k, v = qkv(1, 1, 8, 4)
    with pytest.raises(ValueError, match="window must be >= 1"):
        swa(q, k, v, causal=False, window=0)
    with pytest.raises(ValueError, match="global token positions must be >= 0"):
        swa(q, k, v, causal=False, window=2, global_tokens=[-1])
    with pytest.raises(UnsupportedAttentionError, match="self-attention only"):
        SlidingWindowAttention.from_options({"window": 4}, head_dim=4, cross=True)
