"""Generation parity with HF transformers ``generate`` on tiny random GPT-2 and T5 models, same weights
(HF model saved, loaded through attnlab's converter), left-padded batches.

Greedy and beam search (every early_stopping mode, several length penalties, num_return_sequences)
give identical token ids; sampled tokens always lie in HF's filtered (temperature / top-k / top-p)
distribution, and their frequencies follow it; beam sampling under the same global seed draws the
same tokens as HF."""

import pytest
import torch

import attnlab
from attnlab.generation import generate

transformers = pytest.importorskip("transformers")
hf_lp = pytest.importorskip("transformers.generation.logits_process")
transformers.logging.set_verbosity_error()

V, PAD, BOS, EOS = 12, 0, 1, 2  # a tiny vocabulary: eos does get generated
N = 10
OPTIONS = [
    dict(),
    dict(num_beams=3),
    dict(num_beams=4, num_return_sequences=3, length_penalty=0.5),
    dict(num_beams=3, early_stopping=True),
    dict(num_beams=3, early_stopping="never", length_penalty=2.0),
    dict(num_beams=3, early_stopping="never", length_penalty=-1.0),
    dict(num_beams=5, length_penalty=0.0),
    dict(num_beams=2, min_new_tokens=4),
    dict(min_new_tokens=3),
]


def left_padded(lengths: list[int], vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    P = max(lengths)
    ids = torch.full((len(lengths), P), PAD, dtype=torch.long)
    mask = torch.zeros(len(lengths), P, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, P - n :] = torch.randint(3, vocab, (n,), generator=g)
        mask[b, P - n :] = 1
    return ids, mask


def gpt2_pair(tmp_path, seed: int):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=BOS, eos_token_id=EOS,
        pad_token_id=PAD, initializer_range=0.2,
    )
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path / f"gpt2-{seed}")
    return hf, attnlab.from_pretrained(tmp_path / f"gpt2-{seed}").eval()


def t5_pair(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.T5Config(
        vocab_size=V, d_model=24, d_kv=6, d_ff=40, num_layers=2, num_decoder_layers=2, num_heads=3,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
        feed_forward_proj="relu", decoder_start_token_id=PAD, pad_token_id=PAD, eos_token_id=1,
    )
    hf = transformers.T5ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.4)
    hf.save_pretrained(tmp_path / "t5")
    return hf, attnlab.from_pretrained(tmp_path / "t5").eval()


def assert_same_generation(ours, theirs: torch.Tensor, prefix_len: int, eos: int) -> int:
    """Token ids equal up to each of our rows' end; HF's tail is padding. Returns rows ending in eos."""
    theirs = theirs[:, prefix_len:]
    assert ours.new_tokens.shape == theirs.shape
    ended = 0
    for b in range(theirs.shape[0]):
        n = int(ours.lengths[b])
        assert ours.new_tokens[b, :n].tolist() == theirs[b, :n].tolist(), f"row {b}"
        assert set(theirs[b, n:].tolist()) <= {PAD, eos}
        ended += int(ours.new_tokens[b, n - 1] == eos and n < theirs.shape[1])
    return ended


@pytest.mark.parametrize("seed", [0, 1])
def test_gpt2_greedy_and_beam_match_hf_with_left_padding(tmp_path, seed):
    hf, ours = gpt2_pair(tmp_path, seed)
    ids, mask = left_padded([6, 2, 4, 1], V, seed)
    ended = 0
    for options in OPTIONS:
        with torch.no_grad():
            want = hf.generate(ids, attention_mask=mask, max_new_tokens=N, do_sample=False, **options)
        got = generate(ours, ids, attention_mask=mask, max_new_tokens=N, **options)
        assert torch.equal(got.sequences[:, : ids.shape[1]], ids.repeat_interleave(got.sequences.shape[0] // 4, 0))
        ended += assert_same_generation(got, want, ids.shape[1], EOS)
    assert ended > 0  # some rows stopped at eos: stopping and finished-beam handling were exercised


def test_gpt2_penalties_match_hf_without_padding(tmp_path):
    """Repetition penalty and no-repeat n-grams (HF counts pad tokens as text, so no padding here)."""
    hf, ours = gpt2_pair(tmp_path, 0)
    ids, mask = left_padded([5, 5, 5], V, 3)
    for options in (dict(repetition_penalty=1.5), dict(no_repeat_ngram_size=2), dict(num_beams=3, no_repeat_ngram_size=3)):
        with torch.no_grad():
            want = hf.generate(ids, attention_mask=mask, max_new_tokens=N, do_sample=False, **options)
        assert_same_generation(generate(ours, ids, max_new_tokens=N, **options), want, ids.shape[1], EOS)


def test_t5_greedy_and_beam_match_hf_with_padding(tmp_path):
    hf, ours = t5_pair(tmp_path)
    ids, mask = left_padded([7, 3, 5], V, 0)
    ended = 0
    for options in OPTIONS:
        with torch.no_grad():
            want = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=N, do_sample=False, **options)
        got = generate(ours, ids, attention_mask=mask, max_new_tokens=N, **options)
        assert (got.sequences[:, 0] == PAD).all()  # the decoder start token
        ended += assert_same_generation(got, want, 1, 1)
    assert ended > 0


def hf_warpers(temperature: float, top_k: int, top_p: float):
    return [hf_lp.TemperatureLogitsWarper(temperature), hf_lp.TopKLogitsWarper(top_k), hf_lp.TopPLogitsWarper(top_p)]


def test_sampled_tokens_lie_in_hf_filtered_distribution(tmp_path):
    hf, ours = gpt2_pair(tmp_path, 0)
    ids, mask = left_padded([6, 2, 4], V, 0)
    P, warpers = ids.shape[1], hf_warpers(0.8, 4, 0.7)
    out = generate(ours, ids, attention_mask=mask, max_new_tokens=N, do_sample=True, temperature=0.8, top_k=4,
                   top_p=0.7, ignore_eos=True, seed=0)
    seq = out.sequences  # (B, P + N)
    full_mask = torch.cat([mask, torch.ones(3, N, dtype=torch.long)], dim=1)
    with torch.no_grad():
        logits = hf(seq, attention_mask=full_mask, position_ids=(full_mask.cumsum(1) - 1).clamp(min=0)).logits
    for t in range(N):
        scores = logits[:, P - 1 + t]
        for w in warpers:
            scores = w(seq[:, : P + t], scores)
        allowed = scores.isfinite()
        assert allowed.gather(1, seq[:, P + t, None]).all(), f"step {t}"
        assert (allowed.sum(1) < V).all()  # the filters did remove tokens


def test_sampling_frequencies_follow_hf_filtered_distribution(tmp_path):
    hf, ours = gpt2_pair(tmp_path, 1)
    ids = torch.tensor([[4, 7, 9]])
    n = 2000
    out = generate(ours, ids, max_new_tokens=1, do_sample=True, temperature=1.5, top_k=6, top_p=0.9,
                   num_return_sequences=n, seed=0)
    with torch.no_grad():
        scores = hf(ids).logits[:, -1]
    for w in hf_warpers(1.5, 6, 0.9):
        scores = w(ids, scores)
    want = torch.softmax(scores, dim=-1)[0].double()
    freq = torch.bincount(out.new_tokens[:, 0], minlength=V).double() / n
    assert (freq[want == 0] == 0).all()
    assert 0.5 * (freq - want).abs().sum() < 0.05  # total variation; ~0.02 expected at n = 2000


def test_gpt2_beam_sampling_matches_hf_with_the_same_global_seed(tmp_path):
    """Beam sampling draws candidates with torch.multinomial from torch's global RNG, as HF does."""
    hf, ours = gpt2_pair(tmp_path, 0)
    ids, mask = left_padded([6, 2, 4, 1], V, 0)
    options = dict(max_new_tokens=N, do_sample=True, num_beams=3, temperature=0.8, top_k=5)
    for seed in range(3):
        torch.manual_seed(seed)
        with torch.no_grad():
            want = hf.generate(ids, attention_mask=mask, top_p=1.0, **options)
        torch.manual_seed(seed)
        assert_same_generation(generate(ours, ids, attention_mask=mask, **options), want, ids.shape[1], EOS)
