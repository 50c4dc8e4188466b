"""generate(): stopping rules, prompts of every shape, returned sequences, exact beam search, streaming."""

import itertools

import pytest
import torch
from torch.testing import assert_close

from attnlab.generation import GenerationConfig, TextStreamer, generate
from attnlab.models import GPT, from_name

ROWS = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]


def test_eos_ends_a_row_and_pads_after(gpt):
    free = generate(gpt, ROWS, max_new_tokens=10, ignore_eos=True)
    eos = int(free.new_tokens[0, 3])  # a token greedy emits at step 3 of row 0: call it eos
    out = generate(gpt, ROWS, max_new_tokens=10, eos_id=eos, pad_id=0)
    for b in range(len(ROWS)):
        row = free.new_tokens[b].tolist()
        n = row.index(eos) + 1 if eos in row else 10
        assert out.lengths[b] == n
        assert out.new_tokens[b, :n].tolist() == row[:n]
        assert (out.new_tokens[b, n:] == 0).all()
    assert out.lengths[0] <= 4


def test_min_and_max_new_tokens(gpt):
    free = generate(gpt, ROWS, max_new_tokens=8, ignore_eos=True)
    eos = int(free.new_tokens[0, 0])  # would end row 0 immediately
    out = generate(gpt, ROWS, max_new_tokens=8, eos_id=eos, min_new_tokens=3)
    assert (out.new_tokens[:, :3] != eos).all()
    assert out.lengths.min() >= 3
    out = generate(gpt, ROWS, max_new_tokens=5, ignore_eos=True)
    assert out.new_tokens.shape == (3, 5) and out.sequences.shape == (3, 5 + 5)
    assert (out.lengths == 5).all()


def test_stop_strings_end_rows(gpt, tok):
    free = generate(gpt, ROWS, max_new_tokens=10, ignore_eos=True, tokenizer=tok)
    stop = free.texts[1][2:4]  # two characters greedy produces in row 1 at steps 2-3
    out = generate(gpt, ROWS, max_new_tokens=10, ignore_eos=True, tokenizer=tok, stop_strings=[stop])
    assert out.texts[1].endswith(stop) and len(out.texts[1]) <= 4
    for b in range(3):
        assert stop not in out.texts[b][:-1]  # each row stops as soon as the string appears
        assert free.texts[b].startswith(out.texts[b])
    beam = generate(gpt, ROWS, max_new_tokens=10, ignore_eos=True, tokenizer=tok, stop_strings=[stop], num_beams=2)
    assert all(stop in t or n == 10 for t, n in zip(beam.texts, beam.lengths.tolist()))


def test_prompt_forms_agree(gpt, tok):
    ragged = generate(gpt, ROWS, max_new_tokens=6)
    P = 5
    left = torch.zeros(3, P, dtype=torch.long)
    right = torch.zeros(3, P, dtype=torch.long)
    for b, r in enumerate(ROWS):
        left[b, P - len(r):], right[b, : len(r)] = torch.tensor(r), torch.tensor(r)
    mask_l, mask_r = left != 0, right != 0
    assert torch.equal(generate(gpt, left, attention_mask=mask_l, max_new_tokens=6).new_tokens, ragged.new_tokens)
    assert torch.equal(generate(gpt, right, attention_mask=mask_r, max_new_tokens=6).new_tokens, ragged.new_tokens)
    text = generate(gpt, [tok.decode(r) for r in ROWS], tokenizer=tok, max_new_tokens=6)
    assert torch.equal(text.new_tokens, ragged.new_tokens)
    assert text.texts == [tok.decode(r.tolist()) for r in ragged.new_tokens]
    single = generate(gpt, torch.tensor(ROWS[0]), max_new_tokens=6)
    assert torch.equal(single.new_tokens[0], ragged.new_tokens[0])


def test_returned_sequences_and_scores(gpt, transformer):
    out = generate(gpt, ROWS, max_new_tokens=6, do_sample=True, num_return_sequences=4, seed=0)
    assert out.new_tokens.shape == (12, 6)
    assert torch.equal(out.sequences[:4, :5], torch.tensor([ROWS[0]] * 4))
    beams = generate(gpt, ROWS, max_new_tokens=6, num_beams=4, num_return_sequences=3)
    assert beams.new_tokens.shape[0] == 9 and beams.scores.shape == (9,)
    assert (beams.scores.view(3, 3).diff(dim=1) <= 0).all()  # best first
    enc = generate(transformer, ROWS, max_new_tokens=6, num_beams=3, num_return_sequences=2)
    assert (enc.sequences[:, 0] == transformer.config.bos_id).all() and enc.sequences.shape[0] == 6


def test_model_mode_is_restored(gpt):
    gpt.train()
    generate(gpt, ROWS, max_new_tokens=2)
    assert gpt.training


@pytest.mark.parametrize("length_penalty", [1.0, 0.0])
def test_beam_search_is_exact_when_beams_cover_every_prefix(length_penalty, spread):
    """With K >= V^(N-1) beams nothing is pruned: the top beam is the best of all V^N continuations."""
    V, N = 5, 3
    model = spread(GPT(from_name("gpt-tiny", vocab_size=V, bos_id=0, eos_id=1, pad_id=0, tie_embeddings=False)), 2.0)
    prompt = [2, 3]
    out = generate(model, [prompt], max_new_tokens=N, num_beams=V ** (N - 1), num_return_sequences=3,
                   ignore_eos=True, length_penalty=length_penalty)
    conts = torch.tensor(list(itertools.product(range(V), repeat=N)))  # (V^N, N)
    seqs = torch.cat([torch.tensor(prompt).expand(len(conts), -1), conts], dim=1)
    with torch.no_grad():
        logp = model(seqs).log_softmax(-1)[:, len(prompt) - 1 : -1]  # (V^N, N, V)
    total = logp.gather(-1, conts[..., None]).squeeze(-1).sum(-1)  # (V^N,)
    best = total.topk(3)
    assert out.new_tokens.tolist() == conts[best.indices].tolist()
    assert_close(out.scores, best.values / N ** length_penalty)


def test_seeded_sampling_is_reproducible(gpt, transformer):
    for model in (gpt, transformer):
        a = generate(model, ROWS, max_new_tokens=8, do_sample=True, top_k=10, seed=123)
        b = generate(model, ROWS, max_new_tokens=8, do_sample=True, top_k=10, seed=123)
        c = generate(model, ROWS, max_new_tokens=8, do_sample=True, top_k=10, seed=124)
        assert torch.equal(a.new_tokens, b.new_tokens)
        assert not torch.equal(a.new_tokens, c.new_tokens)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = generate(gpt, ROWS, max_new_tokens=8, do_sample=True, generator=g1, num_beams=2)
    y = generate(gpt, ROWS, max_new_tokens=8, do_sample=True, generator=g2, num_beams=2)
    assert torch.equal(x.new_tokens, y.new_tokens)


def test_streaming_greedy_yields_the_text_as_it_grows(gpt, tok):
    prompt = tok.decode(ROWS[0])
    events = list(TextStreamer(gpt, tok, prompt, max_new_tokens=12, ignore_eos=True))
    assert events[-1].done and not any(e.done for e in events[:-1])
    assert not any(e.rewritten for e in events)
    streamed = "".join(e.delta for e in events)
    want = generate(gpt, prompt, tokenizer=tok, max_new_tokens=12, ignore_eos=True).texts[0]
    assert streamed == want == events[-1].text
    assert len(events) >= 6  # it really streamed, piece by piece


def test_streaming_beam_search_ends_with_the_best_hypothesis(gpt, tok):
    prompt = tok.decode(ROWS[1])
    streamer = TextStreamer(gpt, tok, prompt, config=GenerationConfig(num_beams=3, max_new_tokens=10, ignore_eos=True))
    events = list(streamer)
    want = generate(gpt, prompt, tokenizer=tok, max_new_tokens=10, num_beams=3, ignore_eos=True)
    assert events[-1].text == want.texts[0] == streamer.text
    assert torch.equal(streamer.output.new_tokens, want.new_tokens)
    for prev, ev in itertools.pairwise(events):  # each event is a delta unless marked rewritten
        assert ev.text == (ev.delta if ev.rewritten else prev.text + ev.delta)


def test_streaming_rejects_batches(gpt, tok):
    with pytest.raises(ValueError, match="one prompt"):
        list(TextStreamer(gpt, tok, ["ab", "cd"]))
    with pytest.raises(TypeError, match="decode"):
        TextStreamer(gpt, object(), "ab")


def test_streaming_holds_back_incomplete_characters(spread):
    class Bytes:  # ids are bytes; a partial UTF-8 sequence decodes to U+FFFD
        def decode(self, ids):
            return bytes(ids).decode("utf-8", errors="replace")

    model = spread(GPT(from_name("gpt-tiny", vocab_size=256, bos_id=1, eos_id=2, pad_id=0)), 2.0)
    events = list(TextStreamer(model, Bytes(), [65, 66], max_new_tokens=12, ignore_eos=True))
    assert all(not e.text.endswith("\ufffd") for e in events[:-1])
    assert "".join(e.delta for e in events) == events[-1].text

