"""Logits processors against HF transformers' processors, and their handling of padding (-1)."""

import pytest
import torch
from torch.testing import assert_close

from attnlab.generation import (
    GenerationConfig,
    MinNewTokens,
    NoRepeatNGram,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
    build_processors,
)
from attnlab.generation.processors import token_set
from attnlab.generation.sampling import greedy_step, sample_step

hf_lp = pytest.importorskip("transformers.generation.logits_process")

B, L, V = 4, 12, 20


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 6, (B, L), generator=g)  # few distinct ids: n-grams do repeat
    scores = torch.randn(B, V, generator=g) * 3
    return ids, scores


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (RepetitionPenalty(1.7), lambda: hf_lp.RepetitionPenaltyLogitsProcessor(1.7)),
        (RepetitionPenalty(0.6), lambda: hf_lp.RepetitionPenaltyLogitsProcessor(0.6)),
        (NoRepeatNGram(1), lambda: hf_lp.NoRepeatNGramLogitsProcessor(1)),
        (NoRepeatNGram(2), lambda: hf_lp.NoRepeatNGramLogitsProcessor(2)),
        (NoRepeatNGram(3), lambda: hf_lp.NoRepeatNGramLogitsProcessor(3)),
        (Temperature(0.7), lambda: hf_lp.TemperatureLogitsWarper(0.7)),
        (TopK(5), lambda: hf_lp.TopKLogitsWarper(5)),
        (TopK(50), lambda: hf_lp.TopKLogitsWarper(50)),
        (TopP(0.3), lambda: hf_lp.TopPLogitsWarper(0.3)),
        (TopP(0.9), lambda: hf_lp.TopPLogitsWarper(0.9)),
        (TopP(0.01, min_keep=3), lambda: hf_lp.TopPLogitsWarper(0.01, min_tokens_to_keep=3)),
        (MinNewTokens(L - 2, 5, [2, 7]), lambda: hf_lp.MinNewTokensLengthLogitsProcessor(L - 2, 5, [2, 7])),
        (MinNewTokens(L - 5, 5, [2]), lambda: hf_lp.MinNewTokensLengthLogitsProcessor(L - 5, 5, [2])),
    ],
)
def test_processor_matches_hf(batch, ours, theirs):
    ids, scores = batch
    want = theirs()(ids, scores.clone())
    got = ours(ids, scores)
    assert_close(got, want)
    assert got.isinf().sum() == want.isinf().sum()


def test_ngram_actually_bans_something(batch):
    ids, scores = batch
    assert NoRepeatNGram(2)(ids, scores).isinf().any()


def test_padding_is_ignored(batch):
    """A row with -1 (no token) slots is processed exactly like the row without them."""
    ids, scores = batch
    padded = torch.cat([torch.full((B, 5), -1), ids], dim=1)
    for proc in (RepetitionPenalty(1.5), NoRepeatNGram(2), NoRepeatNGram(3), NoRepeatNGram(1)):
        assert_close(proc(padded, scores), proc(ids, scores))
    short = torch.tensor([[-1, -1, -1, 4]])  # fewer real tokens than the n-gram size
    assert not NoRepeatNGram(3)(short, scores[:1]).isinf().any()


def test_token_set_against_python_sets(batch):
    ids, _ = batch
    ids = ids.clone()
    ids[0, :3] = -1
    got = token_set(ids, V)
    for b in range(B):
        want = {t for t in ids[b].tolist() if t >= 0}
        assert set(got[b].nonzero().flatten().tolist()) == want


def test_processors_do_not_modify_their_input(batch):
    ids, scores = batch
    before = scores.clone()
    for proc in (RepetitionPenalty(1.5), NoRepeatNGram(2), MinNewTokens(L - 1, 5, [2]), TopK(3), TopP(0.5)):
        proc(ids, scores)
    assert torch.equal(scores, before)


def test_build_processors_order_and_switches():
    cfg = GenerationConfig(
        do_sample=True, temperature=0.5, top_k=4, top_p=0.8, repetition_penalty=1.2, no_repeat_ngram_size=2,
        min_new_tokens=1,
    )
    kinds = [type(p).__name__ for p in build_processors(cfg, prompt_len=3, eos_ids=[2])]
    assert kinds == ["RepetitionPenalty", "NoRepeatNGram", "MinNewTokens", "Temperature", "TopK", "TopP"]
    assert build_processors(GenerationConfig(), prompt_len=3, eos_ids=[2]) == []
    # greedy ignores the sampling warpers; beam sampling keeps one token more than there are eos ids
    assert build_processors(GenerationConfig(top_k=3), prompt_len=3, eos_ids=[2]) == []
    beam = build_processors(GenerationConfig(do_sample=True, num_beams=2, top_k=1), prompt_len=3, eos_ids=[2], beams=True)
    assert beam[0].min_keep == 2


def test_greedy_and_sampling_steps():
    scores = torch.tensor([[0.0, 3.0, 3.0, -1.0], [float("-inf"), float("-inf"), 0.5, float("-inf")]])
    assert greedy_step(scores).tolist() == [1, 2]
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_step(scores, g) for _ in range(2000)])  # (2000, 2)
    assert (draws[:, 1] == 2).all()  # -inf is never drawn
    freq = torch.bincount(draws[:, 0], minlength=4).double() / 2000
    want = torch.softmax(scores[0].double(), dim=0)
    assert (freq - want).abs().max() < 0.04  # ~4 standard errors at n = 2000
