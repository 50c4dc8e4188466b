"""Capture points: patterns equal the naive backend's weights, capturing changes no output, only the
requested layers/heads/rows are kept, the fused kernel keeps running, caches and GQA work."""

from __future__ import annotations

import importlib

import pytest
import torch

from attnlab.interp import CaptureMixin, attention_sites, capturing, run_with_capture, select_sites
from attnlab.models import Transformer, from_name

core_attention = importlib.import_module("attnlab.core.attention")  # the module, not the function

GPT_VARIANTS = {
    "learned": {},
    "rope-gqa": dict(positional="rope", n_kv_heads=2),
    "alibi": dict(positional="alibi"),
    "sliding-window": dict(backend="sliding_window:window=3"),
}


@pytest.mark.parametrize("variant", sorted(GPT_VARIANTS))
def test_gpt_patterns_equal_naive_weights(variant, ids, make_gpt, naive_weights):
    model = make_gpt(**GPT_VARIANTS[variant])
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, :3] = False  # left padding in row 1
    with naive_weights(model) as ref:
        expected_logits = model(ids, attention_mask=mask)
    logits, cap = run_with_capture(model, ids, attention_mask=mask, heads=[3, 1])
    torch.testing.assert_close(logits, expected_logits)
    for site in attention_sites(model):
        torch.testing.assert_close(cap[f"{site.name}.pattern"], ref[site.name][0][:, [3, 1]])


def test_encoder_decoder_patterns_equal_naive_weights(transformer, naive_weights):
    src = torch.randint(3, 97, (2, 7), generator=torch.Generator().manual_seed(2))
    src[0, 5:] = 0  # source padding
    tgt = torch.randint(3, 97, (2, 5), generator=torch.Generator().manual_seed(3))
    with naive_weights(transformer) as ref:
        transformer(src, tgt)
    _, cap = run_with_capture(transformer, src, tgt)
    assert cap.groups == ["encoder.self", "decoder.self", "decoder.cross"]
    for site in attention_sites(transformer):
        torch.testing.assert_close(cap[f"{site.name}.pattern"], ref[site.name][0])
    cross = cap.pattern(1, "decoder.cross")  # (B, H, T, S)
    assert cross.shape == (2, 4, 5, 7)
    assert cross[0, :, :, 5:].abs().max() == 0  # padded source keys get no attention


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_bert_patterns_equal_naive_weights(family, naive_weights):
    bert = pytest.importorskip("attnlab.models.bert")
    torch.manual_seed(0)
    model = bert.BertForMaskedLM(from_name(f"{family}-tiny")).eval()
    x = torch.randint(5, 128, (2, 6))
    valid = torch.ones_like(x, dtype=torch.bool)
    valid[0, 4:] = False
    with naive_weights(model) as ref:
        model(x, attention_mask=valid)
    _, cap = run_with_capture(model, x, attention_mask=valid, points=("pattern", "allowed"))
    assert cap.groups == ["self"]
    for site in attention_sites(model):
        torch.testing.assert_close(cap[f"{site.name}.pattern"], ref[site.name][0])
    assert not cap[f"{cap.sites[0].name}.allowed"][0, 0, :, 4:].any()


def test_t5_patterns_equal_naive_weights(naive_weights):
    t5 = pytest.importorskip("attnlab.models.t5")
    torch.manual_seed(0)
    model = t5.T5(from_name("t5-tiny")).eval()
    src, tgt = torch.randint(2, 100, (2, 7)), torch.randint(2, 100, (2, 5))
    src[1, 5:] = model.config.pad_id
    with naive_weights(model) as ref:
        model(src, tgt)
    _, cap = run_with_capture(model, src, tgt, heads=[0, -1])
    assert cap.groups == ["encoder.self", "decoder.self", "decoder.cross"]
    for site in attention_sites(model):  # relative-position bias included
        torch.testing.assert_close(cap[f"{site.name}.pattern"], ref[site.name][0][:, [0, -1]])


def test_vit_patterns_equal_naive_weights(naive_weights):
    vit = pytest.importorskip("attnlab.models.vit")
    torch.manual_seed(0)
    model = vit.ViTForImageClassification(from_name("vit-tiny")).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with naive_weights(model) as ref:
        expected = model(pixels)
    logits, cap = run_with_capture(model, pixels, points=("pattern", "resid_post"))
    torch.testing.assert_close(logits, expected)
    assert cap.stack().shape == (2, 2, 4, 1 + 16, 1 + 16)  # [CLS] + 4 x 4 patches
    for site in attention_sites(model):
        torch.testing.assert_close(cap[f"{site.name}.pattern"], ref[site.name][0])


@pytest.mark.parametrize("points", [("pattern",), ("q", "k", "v", "pattern", "allowed", "resid_pre", "resid_post")])
def test_capturing_changes_no_output(transformer, points):
    src = torch.randint(3, 97, (2, 6))
    tgt = torch.randint(3, 97, (2, 4))
    with torch.no_grad():
        plain = transformer(src, tgt)
    captured, _ = run_with_capture(transformer, src, tgt, points=points, heads=[0, 2])
    assert torch.equal(plain, captured)


def test_fused_kernel_keeps_running(gpt, ids, monkeypatch):
    calls = {"sdpa": 0, "naive": 0}
    for name in calls:
        original = core_attention._BACKENDS[name]

        def counting(*args, _name=name, _orig=original):
            calls[_name] += 1
            return _orig(*args)

        monkeypatch.setitem(core_attention._BACKENDS, name, counting)
    run_with_capture(gpt, ids, layers=[1], heads=[0])
    assert calls == {"sdpa": 2, "naive": 1}  # every layer fused; one recomputation for the layer asked for


def test_memory_is_what_was_asked_for(gpt, ids):
    B, T = ids.shape
    _, cap = run_with_capture(gpt, ids, layers=[-1], heads=[2])
    assert cap.names() == ["blocks.1.self_attn.pattern"]
    assert cap.nbytes == B * 1 * T * T * 4
    _, rows = run_with_capture(gpt, ids, layers=[0], heads=[2], queries=[-1])
    assert rows.nbytes == B * 1 * 1 * T * 4
    _, full = run_with_capture(gpt, ids, layers=[0], heads=[2])
    torch.testing.assert_close(rows.pattern(0), full.pattern(0)[:, :, -1:])


def test_hooks_only_during_capture_and_removed_on_error(gpt, ids):
    sites = attention_sites(gpt)
    with pytest.raises(RuntimeError, match="boom"):
        with capturing(gpt, layers=[0]):
            assert sites[0].module.capture_fn is not None
            assert sites[1].module.capture_fn is None  # unrequested layers carry no hook
            raise RuntimeError("boom")
    assert all(s.module.capture_fn is None for s in sites)
    assert all(not s.block._forward_hooks and not s.block._forward_pre_hooks for s in sites)


def test_nested_sessions_both_record(gpt, ids):
    with capturing(gpt, layers=[0], heads=[0]) as outer, capturing(gpt, layers=[0], heads=[1]) as inner:
        gpt(ids)
    assert outer.pattern(0).shape[1] == inner.pattern(0).shape[1] == 1
    assert not torch.equal(outer.pattern(0), inner.pattern(0))


def test_residual_stream_matches_hidden_states(gpt, ids):
    _, hidden = gpt.forward_with_hidden(ids)
    _, cap = run_with_capture(gpt, ids, points=("resid_pre", "resid_post"))
    resid_pre = cap.stack("resid_pre")  # (L, B, T, D)
    for i in range(len(gpt.blocks)):
        torch.testing.assert_close(resid_pre[i], hidden[i])
    torch.testing.assert_close(cap["blocks.0.resid_post"], hidden[1])
    torch.testing.assert_close(gpt.final_norm(cap["blocks.1.resid_post"]), hidden[2])


def test_gqa_keys_are_the_serving_kv_head(ids, make_gpt):
    model = make_gpt(positional="rope", n_kv_heads=2)  # 4 query heads, 2 kv heads
    _, all_heads = run_with_capture(model, ids, points=("q", "k", "v"))
    _, one = run_with_capture(model, ids, heads=[3], points=("q", "k", "v"))
    site = "blocks.0.self_attn"
    assert all_heads[f"{site}.k"].shape[1] == 4
    torch.testing.assert_close(one[f"{site}.k"][:, 0], all_heads[f"{site}.k"][:, 2])  # kv head 1 serves q heads 2, 3
    torch.testing.assert_close(all_heads[f"{site}.k"][:, 2], all_heads[f"{site}.k"][:, 3])
    torch.testing.assert_close(one[f"{site}.q"][:, 0], all_heads[f"{site}.q"][:, 3])


def test_incremental_decoding_with_kv_cache_joins_steps(gpt, ids):
    x = ids[:1]
    T = x.shape[1]
    _, full = run_with_capture(gpt, x, layers=[0])
    caches = gpt.new_kv_caches(1, 16)
    with capturing(gpt, layers=[0], points=("pattern", "allowed")) as cap, torch.no_grad():
        gpt(x[:, :4], kv_caches=caches, input_pos=torch.arange(4))
        for t in range(4, T):
            gpt(x[:, t : t + 1], kv_caches=caches, input_pos=torch.tensor([t]))
    steps = cap.pattern(0)  # (1, H, T, 16): rows joined across calls
    assert steps.shape == (1, 4, T, 16)
    torch.testing.assert_close(steps[..., :T], full.pattern(0))
    assert steps[..., T:].abs().max() == 0 and not cap.stack("allowed")[..., T:].any()
    assert len(cap.calls("blocks.0.self_attn.pattern")) == 1 + T - 4


def test_calls_that_do_not_join_raise(gpt, ids):
    with capturing(gpt, layers=[0]) as cap, torch.no_grad():
        gpt(ids[:, :4])
        gpt(ids[:, :5])
    with pytest.raises(ValueError, match="calls"):
        cap.pattern(0)
    assert [c.shape[-1] for c in cap.calls("blocks.0.self_attn.pattern")] == [4, 5]


def test_layer_selection(transformer):
    sites = attention_sites(transformer)
    names = lambda chosen: [s.name for s in chosen]  # noqa: E731
    assert names(select_sites(sites, 0)) == [
        "encoder.layers.0.self_attn", "decoder.layers.0.self_attn", "decoder.layers.0.cross_attn"]
    assert names(select_sites(sites, "decoder.cross")) == ["decoder.layers.0.cross_attn", "decoder.layers.1.cross_attn"]
    assert names(select_sites(sites, {"encoder.self": [-1]})) == ["encoder.layers.1.self_attn"]
    assert names(select_sites(sites, ["encoder.layers.0.*", 1])) == [
        "encoder.layers.0.self_attn", "encoder.layers.1.self_attn", "decoder.layers.1.self_attn",
        "decoder.layers.1.cross_attn"]
    with pytest.raises(ValueError, match="out of range"):
        select_sites(sites, 5)
    with pytest.raises(ValueError, match="no attention site matches"):
        select_sites(sites, "decoder.nothing")
    with pytest.raises(ValueError, match="unknown attention group"):
        select_sites(sites, {"middle.self": [0]})


def test_bad_arguments_raise_clear_errors(gpt, ids):
    with pytest.raises(ValueError, match="out of range"):
        run_with_capture(gpt, ids, heads=[4])
    with pytest.raises(ValueError, match="unknown capture points"):
        run_with_capture(gpt, ids, points=("attn",))
    with pytest.raises(ValueError, match="outside"):
        run_with_capture(gpt, ids, queries=[40])
    with pytest.raises(ValueError, match="no attnlab MultiHeadAttention"):
        run_with_capture(torch.nn.Linear(2, 2), torch.zeros(1, 2))


@pytest.mark.parametrize("family", ["transformer", "gpt"])
def test_every_family_has_the_run_with_capture_method(family):
    from attnlab.models import GPT

    torch.manual_seed(0)
    model = (Transformer(from_name("tiny")) if family == "transformer" else GPT(from_name("gpt-tiny"))).eval()
    assert isinstance(model, CaptureMixin) or hasattr(type(model), "run_with_capture")
    x = torch.randint(3, 50, (1, 6))
    args = (x, x[:, :4]) if family == "transformer" else (x,)
    out, cap = model.run_with_capture(*args, layers=[0])
    torch.testing.assert_close(out, model(*args))


def test_capture_mixin_gives_models_the_method(ids):
    torch.manual_seed(0)
    model = Transformer(from_name("tiny", dropout=0.0)).eval()
    out, cap = model.run_with_capture(ids[:, :5] % 90 + 3, ids[:, 5:] % 90 + 3, layers="decoder.cross", heads=0)
    assert out.shape == (2, 4, 97) and cap.stack().shape == (2, 2, 1, 4, 5)
