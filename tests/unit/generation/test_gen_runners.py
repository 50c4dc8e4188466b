"""Runners: prefill/step/reorder against full forwards, and the last-position LM-head hook."""

import pytest
import torch
from torch.testing import assert_close

from attnlab.generation.runners import (
    CachedDecoderOnly,
    CachedEncoderDecoder,
    UncachedDecoderOnly,
    UncachedEncoderDecoder,
    last_position_logits,
)
from attnlab.generation.static import static_capacity

IDS = torch.tensor([[0, 0, 5, 6, 7], [3, 4, 5, 6, 7]])
VALID = IDS != 0


def test_last_position_logits_hook_is_exact_and_removed(make_gpt):
    model = make_gpt("rope")
    with torch.no_grad():
        full = model(IDS)  # (B, T, V)
        with last_position_logits(model):
            last = model(IDS)
        assert last.shape == (2, 1, full.shape[-1])
        assert_close(last[:, 0], full[:, -1])
        assert model(IDS).shape == full.shape  # hook gone
        with pytest.raises(RuntimeError), last_position_logits(model):
            raise RuntimeError("boom")
        assert model(IDS).shape == full.shape  # gone after an exception too


def test_cached_runner_reorder_moves_rows(make_gpt):
    model = make_gpt("alibi")
    tokens = torch.tensor([8, 9])
    with torch.no_grad():
        ref, moved = CachedDecoderOnly(model, IDS, VALID, 3), CachedDecoderOnly(model, IDS, VALID, 3)
        assert_close(ref.prefill(), moved.prefill())
        want = ref.step(tokens)  # (B, V)
        moved.reorder(torch.tensor([1, 0]))
        got = moved.step(tokens.flip(0))
        assert_close(got, want.flip(0))
        ref_unc = UncachedDecoderOnly(model, IDS, VALID, 3)
        ref_unc.prefill()
        assert_close(ref_unc.step(tokens), want)


def test_encoder_decoder_runners_agree_and_expand(make_transformer):
    model = make_transformer("t5")
    src, valid = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]).bool()
    with torch.no_grad():
        cached = CachedEncoderDecoder(model, src, valid, 4, start_id=1, expand=2)
        uncached = UncachedEncoderDecoder(model, src, valid, 4, start_id=1, expand=2)
        assert cached.batch_size == 4
        assert_close(cached.prefill(), uncached.prefill())
        tokens = torch.tensor([3, 4, 5, 6])
        for _ in range(3):
            assert_close(cached.step(tokens), uncached.step(tokens))


def test_static_capacity_rounds_and_caps():
    assert static_capacity(288, 1024) == 320
    assert static_capacity(64, 1024) == 64
    assert static_capacity(1000, 1024) == 1024
    assert static_capacity(60, 62) == 62
    assert static_capacity(70, None) == 128
