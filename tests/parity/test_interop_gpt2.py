"""GPT-2 parity: a tiny random HF GPT2LMHeadModel, loaded through our converter, gives the same
logits and every hidden state; our model saved back loads in HF with the same logits."""

import pytest
import torch
from torch.testing import assert_close

import attnlab
from attnlab.models import GPT

transformers = pytest.importorskip("transformers")

V, T = 96, 11


def hf_model(attn_implementation: str = "sdpa", **overrides):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=V, n_positions=32, n_embd=32, n_layer=3, n_head=4, bos_token_id=V - 1, eos_token_id=V - 1,
        attn_implementation=attn_implementation, **overrides,
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


def padded_batch():
    torch.manual_seed(1)
    ids = torch.randint(0, V, (3, T))
    mask = torch.ones(3, T, dtype=torch.long)
    mask[1, :4] = 0  # left padding
    mask[2, 7:] = 0  # right padding
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def report(name, diff):
    print(f"\n{name}: max abs diff {diff:.3e}")


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_gpt2_hf_to_attnlab_logits_and_hidden_states(tmp_path, attn_implementation):
    theirs = hf_model(attn_implementation)
    theirs.save_pretrained(tmp_path)
    ours = attnlab.from_pretrained(tmp_path)
    assert isinstance(ours, GPT) and not ours.training
    ids, mask, positions = padded_batch()
    valid = mask.bool()
    with torch.no_grad():
        want = theirs(ids, attention_mask=mask, position_ids=positions, output_hidden_states=True)
        logits, hidden = ours.forward_with_hidden(ids, attention_mask=valid, position_ids=positions)
    assert len(hidden) == len(want.hidden_states) == 4
    # padded query rows attend to nothing; HF and we fill them differently, so compare real tokens
    assert_close(logits[valid], want.logits[valid])
    for h_ours, h_hf in zip(hidden, want.hidden_states):
        assert_close(h_ours[valid], h_hf[valid])
    report(f"gpt2 logits ({attn_implementation})", (logits - want.logits)[valid].abs().max().item())
    report("gpt2 hidden states", max((a - b)[valid].abs().max().item() for a, b in zip(hidden, want.hidden_states)))


def test_gpt2_unpadded_fast_path_matches_hf(tmp_path):
    theirs = hf_model()
    theirs.save_pretrained(tmp_path)
    ours = attnlab.from_pretrained(tmp_path)
    ids = torch.randint(0, V, (2, T))
    with torch.no_grad():
        assert_close(ours(ids), theirs(ids).logits)


def test_gpt2_attnlab_to_hf(tmp_path):
    torch.manual_seed(2)
    ours = GPT(attnlab.from_name("gpt-tiny", vocab_size=V, bos_id=V - 1, eos_id=V - 1)).eval()
    ours.save_pretrained(tmp_path)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids, mask, positions = padded_batch()
    valid = mask.bool()
    with torch.no_grad():
        want = theirs(ids, attention_mask=mask, position_ids=positions).logits
        got = ours(ids, attention_mask=valid, position_ids=positions)
    assert_close(got[valid], want[valid])
    report("gpt2 attnlab->HF logits", (got - want)[valid].abs().max().item())
    assert theirs.lm_head.weight.data_ptr() == theirs.transformer.wte.weight.data_ptr()  # tie survived


def test_gpt2_untied_head_round_trip(tmp_path):
    theirs = hf_model(tie_word_embeddings=False)
    theirs.save_pretrained(tmp_path / "hf")
    ours = attnlab.from_pretrained(tmp_path / "hf")
    assert not ours.config.tie_embeddings
    assert ours.lm_head.weight.data_ptr() != ours.tok_embed.weight.data_ptr()
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    ids = torch.randint(0, V, (2, T))
    with torch.no_grad():
        assert_close(back(ids).logits, theirs(ids).logits)


def test_gpt2_kv_cache_decoding_matches_hf(tmp_path):
    theirs = hf_model()
    theirs.save_pretrained(tmp_path)
    ours = attnlab.from_pretrained(tmp_path)
    ids = torch.randint(0, V, (2, T))
    caches = ours.new_kv_caches(2, 16)
    with torch.no_grad():
        steps = [ours(ids[:, :5], kv_caches=caches, input_pos=torch.arange(5))]
        for t in range(5, T):
            steps.append(ours(ids[:, t : t + 1], kv_caches=caches, input_pos=torch.tensor([t])))
        assert_close(torch.cat(steps, dim=1), theirs(ids).logits)


def test_sharded_attnlab_checkpoint_loads_in_hf(tmp_path):
    torch.manual_seed(4)
    ours = GPT(attnlab.from_name("gpt-tiny")).eval()
    ours.save_pretrained(tmp_path, max_shard_bytes=20_000)
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 2
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 128, (2, 6))
    with torch.no_grad():
        assert_close(theirs(ids).logits, ours(ids))
