"""GPT: presets and parameter counts, causality, KV-cache and padding invariants, masks, errors."""

import json
import math

import pytest
import torch
from torch.testing import assert_close

from attnlab.models import GPT, GPTConfig, config_from_dict, from_name


def tiny(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(from_name("gpt-tiny", **overrides)).eval()


def test_gpt2_preset_has_the_published_124m_parameters():
    with torch.device("meta"):  # counts only: skip allocating and initializing 124M weights
        model = GPT(from_name("gpt2"))
    # wte 50257x768 + wpe 1024x768 + 12 blocks x 7,087,872 + ln_f; the LM head is tied
    assert model.num_parameters() == 50257 * 768 + 1024 * 768 + 12 * 7_087_872 + 2 * 768 == 124_439_808
    assert model.lm_head.weight is model.tok_embed.weight


def test_gpt2_medium_preset_has_355m_parameters():
    with torch.device("meta"):
        assert GPT(from_name("gpt2-medium")).num_parameters() == 354_823_168


def test_untied_head_adds_a_vocab_by_width_matrix():
    assert tiny(tie_embeddings=False).num_parameters() - tiny().num_parameters() == 128 * 32


def test_config_round_trips_through_json():
    cfg = from_name("gpt-tiny", positional="rope")
    again = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert isinstance(again, GPTConfig) and again == cfg and again.d_ff == 128


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(d_model=30), "divisible by n_heads"),
        (dict(positional="spiral"), "unknown positional"),
        (dict(eos_id=128), "outside the vocabulary"),
        (dict(n_layers=0), "n_layers must be >= 1"),
    ],
)
def test_bad_configs_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        from_name("gpt-tiny", **overrides)


def test_init_scales_residual_projections():
    model = GPT(from_name("gpt-tiny", n_layers=8, d_model=256, n_heads=4))
    block = model.blocks[0]
    assert block.self_attn.qkv_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert block.self_attn.out_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert block.ffn.fc2.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert torch.all(block.self_attn.qkv_proj.bias == 0)


def test_forward_with_hidden_returns_logits_and_l_plus_one_states():
    model = tiny()
    ids = torch.randint(0, 128, (2, 9))
    logits, hidden = model.forward_with_hidden(ids)
    assert logits.shape == (2, 9, 128) and len(hidden) == 3
    assert all(h.shape == (2, 9, 32) for h in hidden)
    assert_close(logits, model(ids))
    assert_close(model.lm_head(hidden[-1]), logits)  # the last state is after the final norm


@pytest.mark.parametrize("positional", ["learned", "rope", "alibi", "sinusoidal", "none"])
def test_future_tokens_never_change_past_logits(positional):
    model = tiny(positional=positional)
    ids = torch.randint(0, 128, (2, 10))
    changed = ids.clone()
    changed[:, 6:] = torch.randint(0, 128, (2, 4))
    assert_close(model(ids)[:, :6], model(changed)[:, :6])
    assert not torch.allclose(model(ids)[:, 6:], model(changed)[:, 6:])


@pytest.mark.parametrize("positional", ["learned", "rope", "alibi", "sinusoidal", "none"])
@pytest.mark.parametrize("backend", ["sdpa", "naive"])
def test_kv_cache_decoding_equals_full_forward(positional, backend):
    model = tiny(positional=positional, backend=backend, n_kv_heads=2)
    ids = torch.randint(0, 128, (2, 12))
    caches = model.new_kv_caches(2, 20)
    steps = [model(ids[:, :5], kv_caches=caches, input_pos=torch.arange(5))]
    steps.append(model(ids[:, 5:8], kv_caches=caches, input_pos=torch.arange(5, 8)))  # a multi-token chunk
    for t in range(8, 12):
        steps.append(model(ids[:, t : t + 1], kv_caches=caches, input_pos=torch.tensor([t])))
    assert_close(torch.cat(steps, dim=1), model(ids))


def test_causal_fast_path_equals_explicit_all_true_mask():
    model = tiny()
    ids = torch.randint(0, 128, (3, 10))
    assert_close(model(ids), model(ids, attention_mask=torch.ones(3, 10, dtype=torch.bool)))


@pytest.mark.parametrize("positional", ["learned", "rope"])
def test_left_padding_with_position_ids_matches_unpadded_rows(positional):
    model = tiny(positional=positional)
    short, long = torch.randint(0, 128, (1, 5)), torch.randint(0, 128, (1, 8))
    ids = torch.zeros(2, 8, dtype=torch.long)
    ids[0, 3:], ids[1] = short[0], long[0]
    mask = ids.new_ones(2, 8, dtype=torch.bool)
    mask[0, :3] = False
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(ids, attention_mask=mask, position_ids=positions)
    assert_close(out[0, 3:], model(short)[0])
    assert_close(out[1], model(long)[0])
    assert torch.isfinite(out).all()  # fully masked pad rows give zeros, never NaN


def test_left_padded_cached_decoding_matches_unpadded():
    model = tiny()
    prompt = torch.randint(0, 128, (1, 4))
    ids = torch.cat([torch.zeros(1, 2, dtype=torch.long), prompt], dim=1)  # 2 pad slots on the left
    smax = 10
    mask = torch.zeros(1, smax, dtype=torch.bool)
    mask[0, 2:] = True  # slots not yet written are masked by causality anyway
    caches = model.new_kv_caches(1, smax)
    pos = torch.tensor([[0, 0, 0, 1, 2, 3]])
    first = model(ids, attention_mask=mask, position_ids=pos, kv_caches=caches, input_pos=torch.arange(6))
    nxt = torch.randint(0, 128, (1, 1))
    second = model(
        nxt, attention_mask=mask, position_ids=torch.tensor([[4]]), kv_caches=caches, input_pos=torch.tensor([6])
    )
    want = model(torch.cat([prompt, nxt], dim=1))
    assert_close(first[0, 2:], want[0, :4])
    assert_close(second[0], want[0, 4:])


def test_gradients_flow_and_dropout_is_active_in_training():
    model = tiny(dropout=0.5)
    ids = torch.randint(0, 128, (2, 6))
    model.train()
    a, b = model(ids), model(ids)
    assert not torch.allclose(a, b)
    a.sum().backward()
    assert model.tok_embed.weight.grad is not None and model.blocks[0].self_attn.qkv_proj.weight.grad.abs().sum() > 0


def test_bad_inputs_raise_clear_errors():
    model = tiny()
    ids = torch.randint(0, 128, (2, 5))
    with pytest.raises(ValueError, match=r"ids must be \(B, T\)"):
        model(ids[0])
    with pytest.raises(ValueError, match="attention_mask must be"):
        model(ids, attention_mask=torch.ones(2, 4, dtype=torch.bool))
    caches = model.new_kv_caches(2, 8)
    with pytest.raises(ValueError, match="pass input_pos"):
        model(ids, kv_caches=caches)
    with pytest.raises(ValueError, match="one KV cache per layer"):
        model(ids, kv_caches=caches[:1], input_pos=torch.arange(5))
    with pytest.raises(ValueError, match="Smax"):
        model(ids, kv_caches=caches, input_pos=torch.arange(5), attention_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="token ids must lie in"):
        model(torch.full((1, 3), 128))
    with pytest.raises(ValueError, match="positions must lie in"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_new_kv_caches_follow_dtype_and_heads():
    caches = tiny(n_kv_heads=2).new_kv_caches(3, 16, dtype=torch.float64)
    assert len(caches) == 2
    assert caches[0].k_cache.shape == (3, 2, 16, 8) and caches[0].k_cache.dtype == torch.float64


def test_float64_model_matches_float32_closely():
    model = tiny()
    ids = torch.randint(0, 128, (2, 7))
    out32 = model(ids)
    out64 = model.double()(ids)
    assert_close(out32.double(), out64, atol=1e-5, rtol=1e-4)
