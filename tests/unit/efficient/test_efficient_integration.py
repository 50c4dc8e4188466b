"""Backend specs, the variant table, and the variants inside MultiHeadAttention and real model families."""

import pytest
import torch
from torch.testing import assert_close

from attnlab.core.attention import attention, available_backends
from attnlab.core.masks import sliding_window_mask
from attnlab.efficient import (
    LinformerAttention,
    PerformerAttention,
    SlidingWindowAttention,
    UnsupportedAttentionError,
    build_variant,
    parse_backend_spec,
    variant_names,
)
from attnlab.layers import BlockConfig, EncoderLayer, MultiHeadAttention
from attnlab.models.config import from_name
from attnlab.models.gpt import GPT


def test_spec_parsing():
    assert parse_backend_spec("sdpa") == ("sdpa", {})
    assert parse_backend_spec("sliding_window:window=64, global_tokens=0+5,block_size=none") == (
        "sliding_window", {"window": 64, "global_tokens": (0, 5), "block_size": None},
    )
    assert parse_backend_spec("performer:orthogonal=false,n_features=32") == (
        "performer", {"orthogonal": False, "n_features": 32},
    )
    with pytest.raises(ValueError, match="key=value"):
        parse_backend_spec("performer:n_features")
    with pytest.raises(ValueError, match="'\\+'"):
        parse_backend_spec("sliding_window:global_tokens=0+x")


def test_build_variant_table_and_errors():
    assert set(variant_names()) == {"sliding_window", "linformer", "performer"}
    assert {"sliding_window", "linformer", "performer", "naive", "sdpa"} <= set(available_backends())
    assert build_variant("sdpa", head_dim=8) is None
    swa = build_variant("sliding_window:window=9,global_tokens=3", head_dim=8)
    assert isinstance(swa, SlidingWindowAttention) and swa.window == 9 and swa.global_tokens == (3,)
    perf = build_variant("performer:n_features=12", head_dim=8)
    assert isinstance(perf, PerformerAttention) and perf.projection.shape == (12, 8)
    lin = build_variant("linformer:max_len=32,proj_len=4", head_dim=8, cross=True)
    assert isinstance(lin, LinformerAttention) and lin.proj_k.shape == (4, 32)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['windw'\].*accepts"):
        build_variant("sliding_window:windw=3", head_dim=8)
    with pytest.raises(ValueError, match="takes no options"):
        build_variant("sdpa:window=3", head_dim=8)
    with pytest.raises(UnsupportedAttentionError, match="self-attention only"):
        MultiHeadAttention(16, 2, cross=True, backend="sliding_window")


def test_multihead_attention_holds_the_variant_and_its_parameters():
    mha = MultiHeadAttention(16, 2, backend="linformer:max_len=10,proj_len=3")
    assert isinstance(mha.attn_variant, LinformerAttention)
    assert {"attn_variant.proj_k", "attn_variant.proj_v"} <= set(mha.state_dict())
    x = torch.randn(2, 10, 16)
    out, w = mha(x, need_weights=True)
    assert out.shape == (2, 10, 16) and w is not None and w.shape == (2, 2, 10, 3)
    assert MultiHeadAttention(16, 2).attn_variant is None


def test_sliding_window_layer_equals_a_masked_exact_layer():
    torch.manual_seed(0)
    cfg = BlockConfig(d_model=16, n_heads=2, d_ff=32, dropout=0.0, backend="sliding_window:window=4,block_size=3")
    fast = EncoderLayer(cfg).eval()
    exact = EncoderLayer(BlockConfig(d_model=16, n_heads=2, d_ff=32, dropout=0.0, backend="naive")).eval()
    exact.load_state_dict(fast.state_dict())
    x = torch.randn(2, 11, 16)
    assert_close(fast(x, is_causal=True), exact(x, mask=sliding_window_mask(11, window=4)))
    assert_close(fast(x), exact(x, mask=sliding_window_mask(11, window=4, causal=False)))


def test_gpt_with_sliding_window_decodes_with_a_kv_cache_like_the_full_forward():
    torch.manual_seed(0)
    model = GPT(from_name("gpt-tiny", backend="sliding_window:window=6,global_tokens=0", positional="rope")).eval()
    ids = torch.randint(0, 128, (2, 20))
    full = model(ids)
    caches = model.new_kv_caches(2, 24)
    prefix = model(ids[:, :12], kv_caches=caches, input_pos=torch.arange(12))
    steps = [model(ids[:, t : t + 1], kv_caches=caches, input_pos=torch.tensor([t])) for t in range(12, 20)]
    assert_close(prefix, full[:, :12])
    assert_close(torch.cat(steps, dim=1), full[:, 12:])


@pytest.mark.parametrize("backend", ["sliding_window:window=5", "performer:n_features=32"])
def test_gpt_left_padding_matches_the_unpadded_rows(backend):
    """GPT passes a dense causal & padding mask here; both variants must read it as causal."""
    torch.manual_seed(0)
    model = GPT(from_name("gpt-tiny", backend=backend, positional="rope")).eval()
    ids = torch.randint(0, 128, (1, 12))
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), ids], dim=1)
    valid = torch.cat([torch.zeros(1, 4, dtype=torch.bool), torch.ones(1, 12, dtype=torch.bool)], dim=1)
    pos = (valid.cumsum(1) - 1).clamp(min=0)
    got = model(padded, attention_mask=valid, position_ids=pos)[:, 4:]
    assert_close(got, model(ids), atol=1e-5, rtol=1e-4)


def test_gpt_with_performer_trains_and_refuses_a_kv_cache():
    torch.manual_seed(0)
    model = GPT(from_name("gpt-tiny", backend="performer:n_features=16", positional="rope"))
    ids = torch.randint(0, 128, (2, 16))
    loss = torch.nn.functional.cross_entropy(model(ids)[:, :-1].reshape(-1, 128), ids[:, 1:].reshape(-1))
    loss.backward()
    assert torch.isfinite(loss) and model.blocks[0].self_attn.qkv_proj.weight.grad is not None
    with pytest.raises(UnsupportedAttentionError, match="KV cache"):
        model.eval()(ids[:, :4], kv_caches=model.new_kv_caches(2, 8), input_pos=torch.arange(4))


def test_linformer_in_a_decoder_raises_and_encoder_layer_runs():
    model = GPT(from_name("gpt-tiny", backend="linformer:max_len=64,proj_len=8"))
    with pytest.raises(UnsupportedAttentionError, match="non-causal"):
        model(torch.randint(0, 128, (1, 8)))
    layer = EncoderLayer(BlockConfig(d_model=16, n_heads=2, d_ff=32, backend="linformer:max_len=32,proj_len=8"))
    assert layer(torch.randn(2, 20, 16)).shape == (2, 20, 16)


def test_attention_accepts_a_variant_object_and_validates_inputs():
    variant = SlidingWindowAttention(window=3)
    q = torch.randn(1, 2, 6, 4)
    with pytest.raises(ValueError, match="is_causal needs T == S"):
        attention(q, torch.randn(1, 2, 7, 4), torch.randn(1, 2, 7, 4), backend=variant, is_causal=True)
    out, w = attention(q, q, q, backend=variant, is_causal=True)
    assert out.shape == q.shape and w is None
