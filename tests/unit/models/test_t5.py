"""T5: presets and parameter counts, tying, cached decoding, masks, relative bias sharing,
generation, backends, config round trip and input errors."""

import json

import pytest
import torch
from torch.testing import assert_close

from attnlab.generation import generate
from attnlab.models import T5, T5Config, config_from_dict, from_name
from attnlab.models.common import shift_right
from attnlab.positional import T5RelativeBias


def tiny(name: str = "t5-tiny", **overrides) -> T5:
    torch.manual_seed(0)
    return T5(from_name(name, **overrides)).eval()


def batch(B: int = 3, S: int = 10, T: int = 7, V: int = 128):
    torch.manual_seed(1)
    src = torch.randint(2, V, (B, S))
    valid = torch.ones(B, S, dtype=torch.bool)
    valid[1, 6:] = False
    valid[2, 3:] = False
    src = src.masked_fill(~valid, 0)
    tgt_in = shift_right(torch.randint(2, V, (B, T)), start_id=0, pad_id=0)
    return src, valid, tgt_in


def _t5_count(V: int, D: int, inner: int, F: int, n_enc: int, n_dec: int, H: int, *, gated: bool, tied: bool) -> int:
    attn, ffn = 4 * D * inner, (3 if gated else 2) * D * F
    enc = n_enc * (attn + ffn + 2 * D) + D
    dec = n_dec * (2 * attn + ffn + 3 * D) + D
    return V * D * (1 if tied else 2) + enc + dec + 2 * 32 * H


def on_meta(name: str) -> T5:
    """Full-size presets built without memory or init time: only the shapes exist."""
    with torch.device("meta"):
        return T5(from_name(name))


def test_t5_small_has_the_published_60m_parameters():
    n = on_meta("t5-small").num_parameters()
    assert n == _t5_count(32128, 512, 512, 2048, 6, 6, 8, gated=False, tied=True) == 60_506_624


def test_t5_base_and_v1_1_small_counts():
    assert on_meta("t5-base").num_parameters() == 222_903_552  # "220M"
    n = on_meta("t5-v1_1-small").num_parameters()  # 6 heads of 64 on width 512: inner 384
    assert n == _t5_count(32128, 512, 384, 1024, 8, 8, 6, gated=True, tied=False) == 76_961_152  # "77M"


def test_v1_0_ties_and_rescales_v1_1_does_neither():
    v10, v11 = tiny(), tiny("t5-v1_1-tiny")
    assert v10.lm_head.weight is v10.shared.weight and v10.config.scale_decoder_output
    assert v11.lm_head.weight is not v11.shared.weight and not v11.config.scale_decoder_output
    assert v11.decoder.layers[0].ffn.gate is not None and v10.decoder.layers[0].ffn.gate is None
    src, valid, tgt_in = batch()
    plain = tiny(scale_decoder_output=False)
    with torch.no_grad():
        assert_close(v10(src, tgt_in, valid), plain(src, tgt_in, valid) * 32**-0.5)


def test_head_dim_may_differ_from_d_model_over_heads():
    model = tiny(head_dim=5, n_heads=3)
    assert model.encoder.layers[0].self_attn.qkv_proj.weight.shape == (3 * 3 * 5, 32)
    src, valid, tgt_in = batch()
    assert model(src, tgt_in, valid).shape == (3, 7, 128)


@pytest.mark.parametrize("backend", ["sdpa", "naive"])
@pytest.mark.parametrize("name", ["t5-tiny", "t5-v1_1-tiny"])
def test_cached_decoding_equals_full_decode(name, backend):
    model = tiny(name, backend=backend, n_decoder_layers=3)
    src, valid, tgt_in = batch()
    with torch.no_grad():
        memory = model.encode(src, valid)
        full = model.decode(tgt_in, memory, valid)
        caches, cross = model.new_kv_caches(3, 12), model.new_cross_caches()
        steps = [model.decode(tgt_in[:, :3], memory, valid, kv_caches=caches, cross_caches=cross,
                              input_pos=torch.arange(3))]  # a 3-token prefill, then one token a step
        for t in range(3, tgt_in.shape[1]):
            steps.append(model.decode(tgt_in[:, t : t + 1], None, valid, kv_caches=caches, cross_caches=cross,
                                      input_pos=torch.tensor([t])))
    assert all(c.filled for c in cross)
    assert_close(torch.cat(steps, dim=1), full)


def test_sdpa_and_naive_backends_agree():
    src, valid, tgt_in = batch()
    with torch.no_grad():
        assert_close(tiny("t5-v1_1-tiny")(src, tgt_in, valid), tiny("t5-v1_1-tiny", backend="naive")(src, tgt_in, valid))


def test_future_target_tokens_never_change_past_logits():
    model = tiny()
    src, valid, tgt_in = batch()
    changed = tgt_in.clone()
    changed[:, 4:] = torch.randint(2, 128, (3, 3))
    with torch.no_grad():
        assert_close(model(src, tgt_in, valid)[:, :4], model(src, changed, valid)[:, :4])


def test_source_padding_is_invisible():
    """Each padded row gives the logits of its unpadded source alone (the pad tokens' content is ignored)."""
    model = tiny("t5-v1_1-tiny").double()  # float64: no reassociation noise between batch shapes
    src, valid, tgt_in = batch()
    garbage = src.masked_fill(~valid, 77)  # any id under the padding
    with torch.no_grad():
        batched = model(garbage, tgt_in, valid)
        for b in range(3):
            n = int(valid[b].sum())
            alone = model(src[b : b + 1, :n], tgt_in[b : b + 1])
            assert_close(batched[b : b + 1], alone)


def test_src_valid_defaults_to_non_pad_ids():
    model = tiny()
    src, valid, tgt_in = batch()
    with torch.no_grad():
        assert_close(model(src, tgt_in), model(src, tgt_in, valid))
        assert_close(model.encode(src), model.encode(src, valid))


def test_relative_bias_is_computed_once_per_stack_and_shared():
    model = tiny(n_encoder_layers=3)
    calls: list[tuple[int, ...]] = []
    for module in model.modules():
        if isinstance(module, T5RelativeBias):
            module.register_forward_hook(lambda m, args, out: calls.append(tuple(out.shape)))
    src, valid, tgt_in = batch()
    with torch.no_grad():
        model(src, tgt_in, valid)
    assert calls == [(1, 4, 10, 10), (1, 4, 7, 7)]  # encoder once, decoder once
    assert model.enc_rel_bias.bidirectional and not model.dec_rel_bias.bidirectional


def test_forward_with_hidden_follows_hf_convention():
    model = tiny(n_decoder_layers=3)
    src, valid, tgt_in = batch()
    with torch.no_grad():
        out = model.forward_with_hidden(src, tgt_in, valid)
        assert_close(out.logits, model(src, tgt_in, valid))
        assert_close(out.encoder_hidden[-1], model.encode(src, valid))
    assert len(out.encoder_hidden) == 3 and len(out.decoder_hidden) == 4
    assert_close(out.encoder_hidden[0], model.shared(src))


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generation_cached_equals_uncached(num_beams):
    model = tiny("t5-v1_1-tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)  # varied greedy choices
    src, valid, _ = batch()
    opts = dict(attention_mask=valid, max_new_tokens=6, num_beams=num_beams)
    cached = generate(model, src, **opts)
    uncached = generate(model, src, use_cache=False, **opts)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert (cached.sequences[:, 0] == model.config.decoder_start_id).all()


def test_training_step_reduces_the_loss():
    torch.manual_seed(0)
    model = T5(from_name("t5-v1_1-tiny", dropout=0.1)).train()
    src, valid, tgt_in = batch()
    labels = torch.cat([tgt_in[:, 1:], torch.ones(3, 1, dtype=torch.long)], dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(model(src, tgt_in, valid).flatten(0, 1), labels.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert model.shared.weight.grad is not None and model.enc_rel_bias.embedding.weight.grad is not None


def test_config_round_trip_and_defaults(tmp_path):
    cfg = from_name("t5-v1_1-tiny")
    assert isinstance(cfg, T5Config) and cfg.n_decoder_layers == 2 and cfg.decoder_start_id == cfg.pad_id == 0
    assert cfg.eos_id == 1
    cfg.to_json(tmp_path / "c.json")
    assert T5Config.from_json(tmp_path / "c.json") == cfg
    assert config_from_dict(json.loads((tmp_path / "c.json").read_text())) == cfg


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(activation="tanh"), "unknown activation"),
        (dict(num_buckets=2), "num_buckets"),
        (dict(max_distance=8, num_buckets=32), "max_distance"),
        (dict(pad_id=200), "pad_id"),
        (dict(head_dim=0), "head_dim"),
    ],
)
def test_bad_configs_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        from_name("t5-tiny", **overrides)


def test_bad_inputs_raise_clear_errors():
    model = tiny()
    src, valid, tgt_in = batch()
    with pytest.raises(ValueError, match="src_ids must be"):
        model.encode(src[0])
    with pytest.raises(ValueError, match="src_valid must match"):
        model.encode(src, valid[:, :4])
    with pytest.raises(ValueError, match="needs memory"):
        model.decode(tgt_in, None, valid)
    with pytest.raises(ValueError, match="one entry of kv_caches"):
        model.decode(tgt_in, model.encode(src), valid, kv_caches=model.new_kv_caches(3, 8)[:1])
    with pytest.raises(ValueError, match="input_pos must be"):
        model.decode(tgt_in, model.encode(src), valid, input_pos=torch.arange(3))
    with pytest.raises(ValueError, match="token ids must lie"):
        model(src + 200, tgt_in)
    with pytest.raises(ValueError, match="needs a T5Config"):
        T5(from_name("tiny"))
