"""T5 parity (v1.0 and v1.1): tiny random HF T5ForConditionalGeneration models, loaded through our
converter, give the same logits and every encoder and decoder hidden state on padded batches; our
models saved back load in HF with the same logits; greedy generation and cached decoding agree.

Run with ``-s`` to see the max abs differences."""

import json

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import attnlab
from attnlab.generation import generate
from attnlab.interop import CheckpointError
from attnlab.models import T5, from_name

transformers = pytest.importorskip("transformers")

V, S, T = 80, 13, 9
VARIANTS = {"v1.0": dict(feed_forward_proj="relu", tie=True), "v1.1": dict(feed_forward_proj="gated-gelu", tie=False)}


def report(name: str, diff: float) -> None:
    print(f"\n{name}: max abs diff {diff:.3e}")


def hf_model(
    variant: str, attn_implementation: str = "sdpa", *, own_head: bool | None = None, n_dec: int = 3
) -> nn.Module:
    """A tiny HF T5; d_kv * num_heads != d_model on purpose, and (by default) 3 decoder vs 2 encoder blocks."""
    torch.manual_seed(0)
    spec = VARIANTS[variant]
    cfg = transformers.T5Config(
        vocab_size=V, d_model=24, d_kv=6, d_ff=40, num_layers=2, num_decoder_layers=n_dec, num_heads=3,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        feed_forward_proj=spec["feed_forward_proj"], tie_word_embeddings=spec["tie"], decoder_start_token_id=0,
        attn_implementation=attn_implementation,
    )
    model = transformers.T5ForConditionalGeneration(cfg).eval()
    if not spec["tie"] if own_head is None else own_head:
        # a v1.1 checkpoint stores its own head (transformers 5 ties the head of a fresh model)
        model.lm_head.weight = nn.Parameter(torch.randn(V, 24) * 0.5)
        model.config.tie_word_embeddings = False
    return model


def padded_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source ids with right padding (pad 0) and its mask; decoder input = labels shifted right."""
    torch.manual_seed(1)
    src = torch.randint(2, V, (3, S))
    mask = torch.ones(3, S, dtype=torch.long)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    src = src.masked_fill(mask == 0, 0)
    labels = torch.randint(2, V, (3, T))
    labels[2, 6:] = -100  # loss padding becomes pad in the shifted decoder input
    tgt_in = attnlab.models.common.shift_right(labels, start_id=0, pad_id=0)
    return src, mask, tgt_in


def save_and_load(model: nn.Module, path) -> T5:
    model.save_pretrained(path)
    ours = attnlab.from_pretrained(path)
    assert isinstance(ours, T5) and not ours.training
    return ours


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("variant", ["v1.0", "v1.1"])
def test_t5_hf_to_attnlab_logits_and_hidden_states(tmp_path, variant, attn_implementation):
    theirs = hf_model(variant, attn_implementation)
    ours = save_and_load(theirs, tmp_path)
    assert ours.config.tie_embeddings == ours.config.scale_decoder_output == VARIANTS[variant]["tie"]
    src, mask, tgt_in = padded_batch()
    with torch.no_grad():
        want = theirs(input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in, output_hidden_states=True)
        got = ours.forward_with_hidden(src, tgt_in, mask.bool())
    assert len(got.encoder_hidden) == len(want.encoder_hidden_states) == 3
    assert len(got.decoder_hidden) == len(want.decoder_hidden_states) == 4
    assert_close(got.logits, want.logits)
    for a, b in zip(got.encoder_hidden, want.encoder_hidden_states, strict=True):
        assert_close(a, b)  # padded positions too: they still compute, as in HF
    for a, b in zip(got.decoder_hidden, want.decoder_hidden_states, strict=True):
        assert_close(a, b)
    tag = f"t5 {variant} ({attn_implementation})"
    report(f"{tag} logits", (got.logits - want.logits).abs().max().item())
    pairs = [*zip(got.encoder_hidden, want.encoder_hidden_states), *zip(got.decoder_hidden, want.decoder_hidden_states)]
    report(f"{tag} hidden states", max((a - b).abs().max().item() for a, b in pairs))


@pytest.mark.parametrize("variant", ["v1.0", "v1.1"])
def test_t5_attnlab_to_hf(tmp_path, variant):
    torch.manual_seed(2)
    name = "t5-tiny" if variant == "v1.0" else "t5-v1_1-tiny"
    ours = T5(from_name(name, vocab_size=V, num_buckets=8, max_distance=16)).eval()
    ours.save_pretrained(tmp_path)
    hf_config = json.loads((tmp_path / "config.json").read_text())
    assert hf_config["architectures"] == ["T5ForConditionalGeneration"]
    theirs = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    src, mask, tgt_in = padded_batch()
    with torch.no_grad():
        want = theirs(input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in).logits
        got = ours(src, tgt_in, mask.bool())
    assert_close(got, want)
    report(f"t5 {variant} attnlab->HF logits", (got - want).abs().max().item())
    tied = theirs.lm_head.weight.data_ptr() == theirs.shared.weight.data_ptr()
    assert tied == (variant == "v1.0")


def test_t5_round_trip_is_lossless(tmp_path):
    first = save_and_load(hf_model("v1.1"), tmp_path / "a")
    second = save_and_load(first, tmp_path / "b")
    assert first.config == second.config
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_t5_tied_head_without_rescale_matches_hf(tmp_path):
    """transformers 5 ties a fresh v1.1 model's head and only drops the rescale: load that too."""
    theirs = hf_model("v1.1", own_head=False)
    theirs.save_pretrained(tmp_path)
    hf_config = json.loads((tmp_path / "config.json").read_text())
    if hf_config.get("scale_decoder_outputs") is not False or not hf_config.get("tie_word_embeddings"):
        pytest.skip("this transformers version unties v1.1 heads itself")
    ours = attnlab.from_pretrained(tmp_path)
    assert ours.config.tie_embeddings and not ours.config.scale_decoder_output
    src, mask, tgt_in = padded_batch()
    with torch.no_grad():
        want = theirs(input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in).logits
        assert_close(ours(src, tgt_in, mask.bool()), want)
    ours.save_pretrained(tmp_path / "back")  # and the same combination written back
    back = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "back").eval()
    assert back.config.scale_decoder_outputs is False
    with torch.no_grad():
        assert_close(back(input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in).logits, want)


def _spread_weights(model: nn.Module) -> None:
    """Random weights large enough that greedy decoding does not repeat one token."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.4)


@pytest.mark.parametrize("variant", ["v1.0", "v1.1"])
def test_t5_cached_decoding_and_greedy_generation_match_hf(tmp_path, variant):
    theirs = hf_model(variant, n_dec=2)  # HF's generate sizes its cache by the encoder depth
    _spread_weights(theirs)
    ours = save_and_load(theirs, tmp_path)
    src, mask, _ = padded_batch()
    n = 8
    with torch.no_grad():
        want = theirs.generate(
            input_ids=src, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, num_beams=1
        )
    got = generate(ours, src, attention_mask=mask, max_new_tokens=n, min_new_tokens=n)
    assert want[:, 1:].unique().numel() > 3  # a real test: the tokens vary
    assert torch.equal(got.sequences, want)
    # step-by-step cached decoding of HF's sequences equals HF's full teacher-forced logits
    caches, cross = ours.new_kv_caches(3, n + 1), ours.new_cross_caches()
    with torch.no_grad():
        full = theirs(input_ids=src, attention_mask=mask, decoder_input_ids=want).logits
        memory = ours.encode(src, mask.bool())
        steps = [
            ours.decode(want[:, t : t + 1], memory if t == 0 else None, mask.bool(), kv_caches=caches,
                        cross_caches=cross, input_pos=torch.tensor([t]))
            for t in range(n + 1)
        ]
    assert_close(torch.cat(steps, dim=1), full)
    report(f"t5 {variant} cached decode vs HF", (torch.cat(steps, dim=1) - full).abs().max().item())


def test_t5_bad_configs_raise_checkpoint_error(tmp_path):
    theirs = hf_model("v1.0")
    theirs.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    for bad, match in (
        ({"feed_forward_proj": "gated-tanh"}, "feed_forward_proj"),
        ({"d_kv": None}, "inconsistent|d_kv"),
        ({"is_encoder_decoder": False}, "decoder-only"),
        ({"eos_token_id": [1, 2]}, "single id"),
    ):
        (tmp_path / "config.json").write_text(json.dumps({**cfg, **bad}))
        with pytest.raises(CheckpointError, match=match):
            attnlab.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "d_ff"}))
    with pytest.raises(CheckpointError, match="lacks the field 'd_ff'"):
        attnlab.from_pretrained(tmp_path)


def test_t5_checkpoint_with_wrong_shapes_or_missing_head_is_refused(tmp_path):
    theirs = hf_model("v1.1")
    theirs.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "d_ff": 41}))
    with pytest.raises(CheckpointError, match="DenseReluDense"):
        attnlab.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "feed_forward_proj": "relu"}))
    with pytest.raises(CheckpointError, match="missing|unexpected"):
        attnlab.from_pretrained(tmp_path)
