"""Mask factories and the preallocated KV cache."""

import pytest
import torch
from torch.testing import assert_close

from attnlab.core.attention import attention
from attnlab.core.kv_cache import CrossAttnCache, KVCache
from attnlab.core.masks import (
    causal_mask,
    combine_masks,
    lengths_to_valid,
    padding_mask_from_ids,
    position_causal_mask,
    sliding_window_mask,
)


def test_causal_mask_square_and_offset():
    m = causal_mask(3)[0, 0]
    assert m.tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    m = causal_mask(2, 4)[0, 0]  # two new queries at positions 2, 3 over four cached keys
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_position_causal_mask_batched():
    q_pos = torch.tensor([[2], [0]])
    m = position_causal_mask(q_pos, torch.arange(3))
    assert m.shape == (2, 1, 1, 3)
    assert m[:, 0, 0].tolist() == [[True, True, True], [True, False, False]]


def test_padding_and_lengths():
    ids = torch.tensor([[5, 6, 0], [7, 0, 0]])
    assert padding_mask_from_ids(ids, 0).shape == (2, 1, 1, 3)
    assert lengths_to_valid(torch.tensor([2, 1]), 3).tolist() == [[True, True, False], [True, False, False]]
    assert combine_masks(None, None) is None
    with pytest.raises(ValueError, match="bool"):
        combine_masks(torch.ones(2))


def test_sliding_window_mask_against_loop():
    for causal in (True, False):
        m = sliding_window_mask(6, window=3, causal=causal)[0, 0]
        for i in range(6):
            for j in range(6):
                want = (0 <= i - j < 3) if causal else abs(i - j) <= 1
                assert bool(m[i, j]) == want
    with pytest.raises(ValueError):
        sliding_window_mask(4, window=0)


def test_kv_cache_incremental_equals_full_attention():
    torch.manual_seed(0)
    B, H, T, Dh = 2, 2, 5, 4
    q, k, v = torch.randn(B, H, T, Dh), torch.randn(B, H, T, Dh), torch.randn(B, H, T, Dh)
    full, _ = attention(q, k, v, causal_mask(T))
    cache = KVCache(B, H, 8, Dh)
    steps = []
    prefill = torch.arange(3)
    kc, vc = cache.update(prefill, k[:, :, :3], v[:, :, :3])
    steps.append(attention(q[:, :, :3], kc, vc, position_causal_mask(prefill, torch.arange(8)))[0])
    for t in range(3, T):
        pos = torch.tensor([t])
        kc, vc = cache.update(pos, k[:, :, t : t + 1], v[:, :, t : t + 1])
        assert kc.shape == (B, H, 8, Dh)
        steps.append(attention(q[:, :, t : t + 1], kc, vc, position_causal_mask(pos, torch.arange(8)))[0])
    assert_close(torch.cat(steps, dim=2), full)


def test_kv_cache_reorder_and_errors():
    cache = KVCache(3, 1, 4, 2)
    k = torch.arange(3.0)[:, None, None, None].expand(3, 1, 1, 2)
    cache.update(torch.tensor([0]), k, k)
    cache.reorder(torch.tensor([2, 2, 0]))
    assert cache.k_cache[:, 0, 0, 0].tolist() == [2.0, 2.0, 0.0]
    with pytest.raises(ValueError, match="input_pos has 2 positions"):
        cache.update(torch.tensor([0, 1]), k, k)
    with pytest.raises(ValueError, match="does not fit"):
        cache.update(torch.tensor([0]), torch.zeros(2, 1, 1, 2), torch.zeros(2, 1, 1, 2))
    cache.reset()
    assert cache.k_cache.abs().sum() == 0


def test_cross_cache_store_and_reorder():
    c = CrossAttnCache()
    assert not c.filled
    k = torch.arange(2.0)[:, None, None, None]
    c.store(k, k)
    c.reorder(torch.tensor([1, 1]))
    assert c.filled and c.k.flatten().tolist() == [1.0, 1.0]
