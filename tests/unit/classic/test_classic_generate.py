"""Greedy and beam decoding of the RNN models: agreement with teacher forcing, beam 1 == greedy,
returned scores equal the model's log-probabilities, batch invariance, errors."""

from __future__ import annotations

import pytest
import torch
from conftest import padded_batch, tiny_model
from torch.testing import assert_close

from attnlab.classic import beam_search, greedy_decode
from attnlab.models.common import shift_right

LENGTHS = [6, 3, 5]
EOS = 2


def _eos_prone(variant: str):
    """A random model whose EOS logit is raised, so that rows stop at different steps."""
    model = tiny_model(variant, seed=3)
    with torch.no_grad():
        model.decoder.readout.out.bias[EOS] += 0.35
    return model


def _teacher_forced_logp(model, src, valid, tokens):
    """log p(tokens) under teacher forcing, summed up to and including EOS: (B,)."""
    tgt_in = shift_right(tokens, start_id=model.config.bos_id, pad_id=0)
    logp = torch.log_softmax(model(src, tgt_in, valid), dim=-1).gather(2, tokens[..., None])[..., 0]
    return (logp * (tokens != 0)).sum(1)


def test_greedy_agrees_with_teacher_forcing(variant):
    model = _eos_prone(variant)
    src, valid = padded_batch(LENGTHS)
    out = greedy_decode(model, src, valid, max_new_tokens=8)
    tgt_in = shift_right(out.tokens, start_id=1, pad_id=0)
    logits, align = model.forward_with_alignments(src, tgt_in, valid)
    logits[..., 0] = float("-inf")
    alive = out.tokens != 0
    assert torch.equal(logits.argmax(-1)[alive], out.tokens[alive])
    assert_close(out.scores, _teacher_forced_logp(model, src, valid, out.tokens))
    assert torch.equal(out.lengths, alive.sum(1))
    if align is None:
        assert out.alignments is None
    else:
        assert_close(out.alignments, align * alive[..., None])


def test_some_rows_finish_early_and_are_padded():
    model = _eos_prone("bahdanau-gru")
    src, valid = padded_batch([6, 3, 5, 2, 4, 6], seed=2)
    out = greedy_decode(model, src, valid, max_new_tokens=10)
    finished = (out.tokens == EOS).any(1)
    assert finished.any(), "the test model should stop some rows (raise the EOS bias if this fails)"
    for row, n in zip(out.tokens, out.lengths):
        if (row == EOS).any():
            assert int(row.tolist().index(EOS)) + 1 == n
            assert bool((row[n:] == 0).all())
            assert not bool((row[:n] == 0).any())


def test_beam_of_one_is_greedy(variant):
    model = _eos_prone(variant)
    src, valid = padded_batch(LENGTHS)
    greedy = greedy_decode(model, src, valid, max_new_tokens=7)
    beam = beam_search(model, src, valid, beam_size=1, max_new_tokens=7, length_penalty=0.0)
    assert torch.equal(beam.tokens, greedy.tokens)
    assert_close(beam.scores, greedy.scores)
    if greedy.alignments is not None:
        assert_close(beam.alignments, greedy.alignments)


@pytest.mark.parametrize("variant_name", ["noattn-lstm", "bahdanau-gru", "luong-local-p"])
def test_beam_scores_are_model_log_probs_and_rows_are_independent(variant_name):
    model = _eos_prone(variant_name)
    src, valid = padded_batch(LENGTHS)
    out = beam_search(model, src, valid, beam_size=3, max_new_tokens=7)
    assert_close(out.scores, _teacher_forced_logp(model, src, valid, out.tokens))
    for b, n in enumerate(LENGTHS):
        one = beam_search(model, src[b : b + 1, :n], beam_size=3, max_new_tokens=7)
        width = one.tokens.shape[1]
        assert torch.equal(out.tokens[b, :width], one.tokens[0])
        assert bool((out.tokens[b, width:] == 0).all())
        if one.alignments is not None:
            assert_close(out.alignments[b, :width, :n], one.alignments[0], rtol=1e-5, atol=1e-6)


def test_wider_beam_never_returns_a_worse_first_step_than_greedy():
    """After one step the beam holds the K most likely tokens, the greedy token among them."""
    model = _eos_prone("luong-general")
    src, valid = padded_batch(LENGTHS)
    greedy = greedy_decode(model, src, valid, max_new_tokens=1)
    beam = beam_search(model, src, valid, beam_size=4, max_new_tokens=1, length_penalty=0.0)
    assert torch.equal(beam.tokens, greedy.tokens)


def test_generation_argument_errors():
    model = tiny_model("bahdanau-gru")
    src, valid = padded_batch(LENGTHS)
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        beam_search(model, src, valid, beam_size=0)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        greedy_decode(model, src, valid, max_new_tokens=0)


def test_runner_protocol_expands_reorders_and_records_alignments():
    model = tiny_model("bahdanau-gru")
    src, valid = padded_batch(LENGTHS)
    runner = model.make_runner(src, valid, 5, expand=2)
    first = runner.prefill()  # (B * 2, V)
    assert runner.batch_size == 6 and first.shape == (6, 40)
    assert_close(first[0::2], first[1::2])  # each source row repeated twice, in place
    runner.reorder(torch.tensor([5, 4, 3, 2, 1, 0]))
    logits = runner.step(torch.tensor([7, 8, 7, 8, 7, 8]))
    assert runner.alignments.shape == (6, 2, 6) and runner.fed == 1
    state = model.start(model.encode(src[2:3, :5], valid[2:3, :5]))
    _, state, _ = model.decode_step(torch.tensor([1]), state)
    alone, _, align = model.decode_step(torch.tensor([7]), state)  # row 0 after reorder came from source 2
    assert_close(logits[0:1], alone, rtol=1e-5, atol=1e-5)
    assert_close(runner.alignments[0, 1, :5], align[0], rtol=1e-5, atol=1e-6)


# ----- the RNN models through attnlab.generation.generate (every strategy of the generation package) -----
def _no_pad(model):
    """Padding never wins, so generate (which does not forbid it, like HF) and greedy_decode agree."""
    with torch.no_grad():
        model.decoder.readout.out.bias[0] = -1e4
    return model


def test_generate_greedy_equals_classic_greedy(variant):
    from attnlab.generation import generate

    model = _no_pad(_eos_prone(variant))
    src, valid = padded_batch(LENGTHS)
    ours = generate(model, src, attention_mask=valid, max_new_tokens=8)
    ref = greedy_decode(model, src, valid, max_new_tokens=8)
    width = ref.tokens.shape[1]
    assert torch.equal(ours.new_tokens[:, :width], ref.tokens)
    assert torch.equal(ours.lengths, ref.lengths)
    assert (ours.sequences[:, 0] == model.config.bos_id).all()  # the decoder start token leads


def test_generate_beam_scores_are_model_log_probs():
    from attnlab.generation import generate

    model = _no_pad(_eos_prone("luong-general"))
    src, valid = padded_batch(LENGTHS)
    out = generate(model, src, attention_mask=valid, max_new_tokens=8, num_beams=3, length_penalty=0.0)
    tokens = out.new_tokens.masked_fill(torch.arange(out.new_tokens.shape[1]) >= out.lengths[:, None], 0)
    assert_close(out.scores, _teacher_forced_logp(model, src, valid, tokens), rtol=1e-4, atol=1e-4)
    greedy = greedy_decode(model, src, valid, max_new_tokens=8)
    assert (out.scores >= greedy.scores - 1e-5).all()  # beam 3 finds at least the greedy path here


def test_generate_seeded_sampling_and_padding_invariance():
    from attnlab.generation import generate

    model = tiny_model("bahdanau-lstm", seed=5)
    src, valid = padded_batch(LENGTHS)
    kw = {"max_new_tokens": 6, "do_sample": True, "top_k": 10, "ignore_eos": True}
    a = generate(model, src, attention_mask=valid, seed=7, **kw).new_tokens
    assert torch.equal(a, generate(model, src, attention_mask=valid, seed=7, **kw).new_tokens)
    greedy_rows = [generate(model, src[i : i + 1, :n], max_new_tokens=6, ignore_eos=True).new_tokens
                   for i, n in enumerate(LENGTHS)]
    batch = generate(model, src, attention_mask=valid, max_new_tokens=6, ignore_eos=True).new_tokens
    assert torch.equal(batch, torch.cat(greedy_rows))


def test_generate_rejects_output_past_the_cap():
    from attnlab.generation import generate

    model = tiny_model("noattn-gru")
    src, valid = padded_batch(LENGTHS)
    with pytest.raises(ValueError, match="max_len=32"):
        generate(model, src, attention_mask=valid, max_new_tokens=33)
    long_src = torch.randint(3, 40, (1, 50))  # a source longer than max_len is fine for an RNN encoder
    assert generate(model, long_src, max_new_tokens=3, ignore_eos=True).new_tokens.shape == (1, 3)
