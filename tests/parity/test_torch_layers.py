"""Our layers with weights copied from torch.nn built-ins give the same outputs."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from attnlab.core.masks import causal_mask, combine_masks, padding_mask, query_padding_mask
from attnlab.layers import BlockConfig, DecoderLayer, EncoderLayer, FeedForward, MultiHeadAttention, RMSNorm

D, H, FF = 32, 4, 64


@torch.no_grad()
def copy_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    if ours.cross:
        ours.q_proj.weight.copy_(theirs.in_proj_weight[:D])
        ours.q_proj.bias.copy_(theirs.in_proj_bias[:D])
        ours.kv_proj.weight.copy_(theirs.in_proj_weight[D:])
        ours.kv_proj.bias.copy_(theirs.in_proj_bias[D:])
    else:
        ours.qkv_proj.weight.copy_(theirs.in_proj_weight)
        ours.qkv_proj.bias.copy_(theirs.in_proj_bias)
    ours.out_proj.weight.copy_(theirs.out_proj.weight)
    ours.out_proj.bias.copy_(theirs.out_proj.bias)


@torch.no_grad()
def copy_linear_norm(pairs) -> None:
    for a, b in pairs:
        a.weight.copy_(b.weight)
        a.bias.copy_(b.bias)


def key_padding(lengths, S):
    return torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]  # True = real token


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_mha_matches_torch_multihead_attention(cross, backend):
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention(D, H, cross=cross, backend=backend).eval()
    copy_mha(ours, theirs)
    x = torch.randn(3, 5, D)
    ctx = torch.randn(3, 7, D) if cross else x
    valid = key_padding([7, 4, 2] if cross else [5, 3, 1], ctx.shape[1])
    want, want_w = theirs(x, ctx, ctx, key_padding_mask=~valid, need_weights=True, average_attn_weights=True)
    out, w = ours(x, ctx if cross else None, mask=padding_mask(valid), need_weights=True)
    assert_close(out, want)
    assert_close(w.mean(dim=1), want_w)
    out_fast, none = ours(x, ctx if cross else None, mask=padding_mask(valid))
    assert none is None
    assert_close(out_fast, want)


def test_mha_causal_matches_torch():
    torch.manual_seed(1)
    theirs = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention(D, H).eval()
    copy_mha(ours, theirs)
    x = torch.randn(2, 6, D)
    want, _ = theirs(x, x, x, attn_mask=~causal_mask(6)[0, 0])
    assert_close(ours(x, is_causal=True)[0], want)
    assert_close(ours(x, mask=causal_mask(6))[0], want)


def test_mha_errors():
    with pytest.raises(ValueError, match=r"d_model \(30\) must be divisible by n_heads \(4\)"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        MultiHeadAttention(32, 4, n_kv_heads=3)
    m = MultiHeadAttention(D, H)
    with pytest.raises(ValueError, match=r"expected x of shape \(B, T, 32\), got \(2, 5, 16\)"):
        m(torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match="needs a context"):
        MultiHeadAttention(D, H, cross=True)(torch.randn(1, 2, D))


def block_cfg(norm_first: bool, activation: str = "relu") -> BlockConfig:
    return BlockConfig(d_model=D, n_heads=H, d_ff=FF, dropout=0.0, activation=activation, norm_first=norm_first)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first, activation):
    torch.manual_seed(2)
    theirs = nn.TransformerEncoderLayer(
        D, H, FF, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).eval()
    ours = EncoderLayer(block_cfg(norm_first, activation)).eval()
    copy_mha(ours.self_attn, theirs.self_attn)
    copy_linear_norm([
        (ours.ffn.fc1, theirs.linear1), (ours.ffn.fc2, theirs.linear2),
        (ours.norm1, theirs.norm1), (ours.norm2, theirs.norm2),
    ])
    x = torch.randn(3, 6, D)
    valid = key_padding([6, 4, 2], 6)
    with torch.inference_mode():
        want = theirs(x, src_key_padding_mask=~valid)
        got = ours(x, mask=combine_masks(padding_mask(valid), query_padding_mask(valid)))
    # torch's fast path leaves padded query rows as zeros; compare real tokens
    assert_close(got[valid], want[valid])
    # causal self-attention block (GPT use)
    with torch.no_grad():
        want = theirs(x, src_mask=~causal_mask(6)[0, 0], is_causal=True)
        assert_close(ours(x, is_causal=True), want)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first):
    torch.manual_seed(3)
    theirs = nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    ours = DecoderLayer(block_cfg(norm_first)).eval()
    copy_mha(ours.self_attn, theirs.self_attn)
    copy_mha(ours.cross_attn, theirs.multihead_attn)
    copy_linear_norm([
        (ours.ffn.fc1, theirs.linear1), (ours.ffn.fc2, theirs.linear2),
        (ours.norm1, theirs.norm1), (ours.norm2, theirs.norm2), (ours.norm3, theirs.norm3),
    ])
    x, memory = torch.randn(2, 5, D), torch.randn(2, 7, D)
    mem_valid = key_padding([7, 3], 7)
    with torch.no_grad():
        want = theirs(x, memory, tgt_mask=~causal_mask(5)[0, 0], memory_key_padding_mask=~mem_valid)
        got = ours(x, memory, self_mask=causal_mask(5), cross_mask=padding_mask(mem_valid))
    assert_close(got, want)


def test_rmsnorm_matches_torch_and_gradcheck():
    torch.manual_seed(4)
    ours, theirs = RMSNorm(8, eps=1e-6), nn.RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(8))
        theirs.weight.copy_(ours.weight)
    x = torch.randn(3, 4, 8)
    assert_close(ours(x), theirs(x))
    assert ours.bfloat16()(x.bfloat16()).dtype == torch.bfloat16  # statistic in fp32, output in bf16
    norm64 = RMSNorm(5).double()
    xin = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(norm64, (xin,))


@pytest.mark.parametrize(
    "activation, fn",
    [
        ("relu", lambda g, u: torch.relu(u)),
        ("gelu", lambda g, u: nn.functional.gelu(u)),
        ("gelu_tanh", lambda g, u: nn.functional.gelu(u, approximate="tanh")),
        ("swiglu", lambda g, u: nn.functional.silu(g) * u),
        ("geglu", lambda g, u: nn.functional.gelu(g, approximate="tanh") * u),
    ],
)
def test_feedforward_formulas(activation, fn):
    torch.manual_seed(5)
    ff = FeedForward(D, FF, activation=activation).eval()
    x = torch.randn(2, 3, D)
    u = x @ ff.fc1.weight.T + ff.fc1.bias
    g = None if ff.gate is None else x @ ff.gate.weight.T + ff.gate.bias
    want = fn(g, u) @ ff.fc2.weight.T + ff.fc2.bias
    assert_close(ff(x), want)


def test_unknown_activation_and_norm():
    with pytest.raises(ValueError, match="unknown activation"):
        FeedForward(4, 8, activation="tanhh")
    with pytest.raises(ValueError, match="unknown norm"):
        BlockConfig(d_model=4, n_heads=1, d_ff=8, norm="batchnorm").norm_layer()
