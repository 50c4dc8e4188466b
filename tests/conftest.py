"""Fixtures shared by every test folder."""

import math

import pytest
import torch


def _attention_reference(q, k, v, mask=None, bias=None, scale=None):
    """softmax(q kᵀ·scale + bias, masked) v in float64, written independently of the library.

    q (B, H, T, Dh); k, v (B, Hkv, S, Dh) with H a multiple of Hkv (grouped-query heads repeated);
    mask broadcastable to (B, H, T, S), True = attend. Fully masked rows give zeros. Returns the
    output (B, H, T, Dh) and the weights (B, H, T, S), both float64.
    """
    q, k, v = q.double(), k.double(), v.double()
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ k.transpose(-1, -2) * scale
    if bias is not None:
        s = s + bias.double()
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1).nan_to_num(0.0)  # fully masked rows -> zeros
    return w @ v, w


@pytest.fixture
def attention_reference():
    """The float64 textbook attention: attention_reference(q, k, v, mask, bias, scale) -> (out, weights)."""
    return _attention_reference
