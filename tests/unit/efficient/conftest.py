"""Shared helpers for the efficient-attention tests: a float64 textbook reference and random inputs."""

import math

import pytest
import torch


def _reference(q, k, v, mask=None, bias=None, scale=None):
    """softmax(q kᵀ·scale + bias, masked) v in float64, written independently of the library."""
    q, k, v = q.double(), k.double(), v.double()
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ k.transpose(-1, -2) * scale
    if bias is not None:
        s = s + bias.double()
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    w = torch.softmax(s, -1).nan_to_num(0.0)
    return w @ v, w


@pytest.fixture
def reference():
    return _reference


@pytest.fixture
def qkv():
    """qkv(B, H, T, Dh, Hkv=None, S=None, dtype=float64) -> seeded random q, k, v."""

    def make(B, H, T, Dh, Hkv=None, S=None, dtype=torch.float64, seed=0):
        gen = torch.Generator().manual_seed(seed)
        Hkv, S = Hkv or H, S or T
        q = torch.randn(B, H, T, Dh, generator=gen, dtype=dtype)
        k = torch.randn(B, Hkv, S, Dh, generator=gen, dtype=dtype)
        v = torch.randn(B, Hkv, S, Dh, generator=gen, dtype=dtype)
        return q, k, v

    return make
