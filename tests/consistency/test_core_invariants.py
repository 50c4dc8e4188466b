"""Invariants of the encoder-decoder: causality, padding, permutation equivariance, cache == no cache."""

import pytest
import torch
from torch.testing import assert_close

from attnlab.models import Transformer, from_name
from attnlab.positional.scheme import POSITION_KINDS


def tiny(positional="sinusoidal", **kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(from_name("tiny", positional=positional, **kw)).eval()


def ids(*shape, lo=3, hi=97):
    return torch.randint(lo, hi, shape)


@pytest.mark.parametrize("positional", POSITION_KINDS)
def test_decoder_is_causal(positional):
    model = tiny(positional)
    src, tgt = ids(2, 7), ids(2, 9)
    base = model(src, tgt)
    for t in range(8):
        changed = tgt.clone()
        changed[:, t + 1 :] = ids(2, 8 - t)
        out = model(src, changed)
        assert_close(out[:, : t + 1], base[:, : t + 1])
        assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


@pytest.mark.parametrize("positional", POSITION_KINDS)
@pytest.mark.parametrize("norm_first", [False, True])
def test_appending_padding_changes_nothing(positional, norm_first):
    model = tiny(positional, norm_first=norm_first)
    src, tgt = ids(2, 6), ids(2, 5)
    base = model(src, tgt)
    pad = torch.zeros(2, 4, dtype=torch.long)
    assert_close(model(torch.cat([src, pad], 1), tgt), base)  # padded source
    assert_close(model(src, torch.cat([tgt, pad], 1))[:, :5], base)  # right-padded target
    memory = model.encode(src)
    assert_close(model.encode(torch.cat([src, pad], 1))[:, :6], memory)


def test_batch_rows_are_independent_of_other_rows_padding():
    model = tiny()
    a, b = ids(1, 8), ids(1, 4)
    tgt = ids(2, 5)
    batch = torch.cat([a, torch.cat([b, torch.zeros(1, 4, dtype=torch.long)], 1)])
    out = model(batch, tgt)
    assert_close(out[0:1], model(a, tgt[0:1]))
    assert_close(out[1:2], model(b, tgt[1:2]))


@pytest.mark.parametrize("positional", POSITION_KINDS)
def test_permutation_equivariance_only_without_positions(positional):
    model = tiny(positional)
    src = ids(1, 6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])  # "dog bites man" -> "man bites dog"
    memory = model.encode(src)
    permuted = model.encode(src[:, perm])
    if positional == "none":
        assert_close(permuted, memory[:, perm])
    else:
        assert not torch.allclose(permuted, memory[:, perm], atol=1e-4)


@pytest.mark.parametrize("positional", POSITION_KINDS)
def test_cached_decoding_equals_full_decode(positional):
    model = tiny(positional)
    src = torch.cat([ids(2, 5), torch.zeros(2, 2, dtype=torch.long)], 1)
    src_valid = src != 0
    tgt = ids(2, 6)
    memory = model.encode(src, src_valid)
    full = model.decode(tgt, memory, src_valid)
    caches, cross = model.new_kv_caches(2, 16), model.new_cross_caches()
    steps = [model.decode(tgt[:, :2], memory, src_valid, kv_caches=caches, cross_caches=cross, input_pos=torch.arange(2))]
    for t in range(2, 6):
        steps.append(
            model.decode(tgt[:, t : t + 1], None, src_valid, kv_caches=caches, cross_caches=cross, input_pos=torch.tensor([t]))
        )
    assert_close(torch.cat(steps, 1), full)


def test_encoder_decoder_with_an_efficient_self_attention_backend():
    model = tiny("sinusoidal", backend="sliding_window:window=64")
    assert model.decoder.layers[0].cross_attn.backend == "sdpa"
    exact = tiny("sinusoidal")
    exact.load_state_dict(model.state_dict())
    src, tgt = ids(2, 7), ids(2, 5)
    # a window wider than the sequence is exact attention
    assert_close(model(src, tgt), exact(src, tgt))
