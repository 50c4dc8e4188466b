"""Shared helpers for the efficient-attention tests: the float64 textbook reference and random inputs."""

import pytest
import torch


@pytest.fixture
def reference(attention_reference):
    """The float64 textbook attention of tests/conftest.py."""
    return attention_reference


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
