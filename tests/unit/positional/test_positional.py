"""Positional encodings against their defining formulas and properties."""

import math

import pytest
import torch
from torch.testing import assert_close

from attnlab.positional import (
    ALiBi,
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    T5RelativeBias,
    alibi_slopes,
    apply_rope,
    relative_position_bucket,
    sinusoidal_table,
)
from attnlab.positional.sinusoidal import relative_shift_matrix


def test_sinusoidal_matches_paper_formula_elementwise():
    table = sinusoidal_table(50, 16)
    for pos in (0, 1, 7, 49):
        for i in range(8):
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert sinusoidal_table(5, 7).shape == (5, 7)  # odd width works


def test_sinusoidal_shift_is_a_fixed_linear_map():
    d = 32
    table = sinusoidal_table(200, d).double()
    for k in (1, 5, 17):
        m = relative_shift_matrix(k, d)
        assert_close(table[: 200 - k] @ m, table[k:], atol=1e-5, rtol=0)  # same map for every position
        # and the map is a rotation: orthogonal
        assert_close(m @ m.T, torch.eye(d, dtype=torch.float64))


def test_absolute_positions_reject_out_of_range():
    for module in (SinusoidalPositionalEncoding(8, max_len=10), LearnedPositionalEmbedding(10, 8)):
        assert module(torch.arange(10)).shape == (10, 8)
        with pytest.raises(ValueError, match=r"positions must lie in \[0, 10\)"):
            module(torch.arange(11))


def test_rope_scores_depend_only_on_relative_offset():
    torch.manual_seed(0)
    rope = RotaryEmbedding(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        cq, sq = rope(torch.tensor([m]))
        ck, sk = rope(torch.tensor([n]))
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum().item()

    for offset in (0, 3, 11):
        vals = [score(m + offset, m) for m in (0, 5, 40, 300)]
        assert max(vals) - min(vals) < 1e-4
    assert abs(score(3, 0) - score(0, 3)) > 1e-3  # but direction and size of the offset matter


def test_rope_preserves_norm_and_matches_rotation_formula():
    rope = RotaryEmbedding(8, base=100.0)
    x = torch.randn(2, 3, 5, 8)
    cos, sin = rope(torch.arange(5))
    y = apply_rope(x, cos, sin)
    assert_close(y.norm(dim=-1), x.norm(dim=-1))
    # channel pair (i, i + 4) at position p is rotated by p * 100^(-2i/8)
    p, i = 3, 1
    theta = p * 100 ** (-2 * i / 8)
    a, b = x[..., p, i], x[..., p, i + 4]
    assert_close(y[..., p, i], a * math.cos(theta) - b * math.sin(theta))
    assert_close(y[..., p, i + 4], b * math.cos(theta) + a * math.sin(theta))
    with pytest.raises(ValueError, match="even head dim"):
        RotaryEmbedding(7)


def test_alibi_slopes_and_bias_formula():
    assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    # paper's rule for 6 heads: the 4-head sequence, then every other slope of the 8-head sequence
    want6 = [2.0 ** (-2 * (i + 1)) for i in range(4)] + [2.0 ** -1, 2.0 ** -3]
    assert_close(alibi_slopes(6), torch.tensor(want6))
    m = alibi_slopes(4)
    bias = ALiBi(4, causal=True)(torch.arange(5), torch.arange(5))
    bias_bi = ALiBi(4, causal=False)(torch.arange(5), torch.arange(5))
    for h in range(4):
        for i in range(5):
            for j in range(5):
                assert bias[0, h, i, j].item() == pytest.approx(-m[h].item() * (i - j))
                assert bias_bi[0, h, i, j].item() == pytest.approx(-m[h].item() * abs(i - j))


def test_t5_buckets_match_hf_reference():
    transformers = pytest.importorskip("transformers")
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = torch.arange(-300, 300)[None, :]
    for bidirectional in (True, False):
        for nb, md in ((32, 128), (16, 64)):
            want = T5Attention._relative_position_bucket(rel, bidirectional=bidirectional, num_buckets=nb, max_distance=md)
            got = relative_position_bucket(rel, bidirectional=bidirectional, num_buckets=nb, max_distance=md)
            assert torch.equal(got, want), (bidirectional, nb, md)


def test_t5_bias_formula_small_offsets_exact():
    bias = T5RelativeBias(2, bidirectional=True, num_buckets=32, max_distance=128)
    out = bias(torch.arange(6), torch.arange(6))
    assert out.shape == (1, 2, 6, 6)
    table = bias.embedding.weight  # (NB, H)
    for i in range(6):
        for j in range(6):
            d = j - i  # small offsets: key after query -> bucket 16 + d, before -> |d|
            bucket = 16 + d if d > 0 else -d
            assert_close(out[0, :, i, j], table[bucket])
