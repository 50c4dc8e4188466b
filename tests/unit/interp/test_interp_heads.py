"""Head-role detectors on planted synthetic patterns, end to end on models, and attention rollout."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.data.tokenizer import Tokenizer
from attnlab.interp import (
    analyze_heads,
    attention_rollout,
    induction_probe,
    prepare_inputs,
    ranking_table,
    score_heads,
)
from attnlab.models import Transformer, from_name

T = 12


def causal_allowed(T: int) -> torch.Tensor:
    return torch.ones(T, T, dtype=torch.bool).tril()[None]  # (1, T, T)


def normalize(target: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """A head that spreads its mass evenly over ``target`` (falling back to uniform where empty)."""
    w = (target & allowed).float()
    empty = w.sum(-1, keepdim=True) == 0
    w = torch.where(empty, allowed.float(), w)
    return w / w.sum(-1, keepdim=True)


def planted(heads: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(heads)[None, None]  # (L=1, B=1, H, T, S)


def test_previous_token_head_scores_one_and_uniform_head_zero():
    allowed = causal_allowed(T)
    prev = normalize(torch.eye(T, dtype=torch.bool).roll(-1, dims=1)[None] & allowed, allowed)[0]
    prev[0, 0] = 1.0  # query 0 can only see itself
    uniform = normalize(allowed, allowed)[0]
    res = score_heads(planted([prev, uniform]), allowed=allowed)
    torch.testing.assert_close(res.scores["previous"][0], torch.tensor([1.0, 0.0]))
    assert "next" not in res.scores  # a causal group has no next-token role
    torch.testing.assert_close(res.scores["entropy"][0, 1], torch.tensor(1.0))
    assert res.scores["entropy"][0, 0] < 1e-6
    assert res.ranked("previous", top=1) == [(0, 0, pytest.approx(1.0))]
    assert res.ranked("focused", top=1)[0][:2] == (0, 0) and res.ranked("broad", top=1)[0][:2] == (0, 1)


def test_bidirectional_next_and_previous_heads():
    allowed = torch.ones(1, T, T, dtype=torch.bool)
    nxt = torch.eye(T).roll(1, dims=1)  # row i -> key i + 1 (the last row wraps to 0: not a "next" row)
    prev = torch.eye(T).roll(-1, dims=1)
    res = score_heads(planted([nxt, prev, torch.full((T, T), 1.0 / T)]), allowed=allowed)
    torch.testing.assert_close(res.scores["next"][0], torch.tensor([1.0, -1.0 / (T - 1), 0.0]))
    torch.testing.assert_close(res.scores["previous"][0], torch.tensor([-1.0 / (T - 1), 1.0, 0.0]))


def test_delimiter_and_rare_word_heads():
    allowed = torch.ones(1, T, T, dtype=torch.bool)
    delimiter = torch.zeros(1, T, dtype=torch.bool)
    delimiter[0, [0, 5, T - 1]] = True  # [CLS], a comma, [SEP]
    rarity = torch.linspace(0, 1, T)[None].clone()
    rarity[delimiter] = -math.inf
    rarest = int(rarity.argmax())
    on_delims = normalize(delimiter[:, None, :].expand(1, T, T), allowed)[0]
    on_rare = torch.zeros(T, T)
    on_rare[:, rarest] = 1.0
    res = score_heads(planted([on_delims, on_rare, torch.full((T, T), 1.0 / T)]), allowed=allowed,
                      key_delimiter=delimiter, key_rarity=rarity)
    torch.testing.assert_close(res.scores["delimiter"][0, [0, 2]], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(res.scores["rare"][0, [1, 2]], torch.tensor([1.0, 0.0]))
    assert res.scores["delimiter"][0, 1] < 0 and res.scores["rare"][0, 0] < 0


def test_duplicate_and_induction_heads_on_a_repeated_sequence():
    ids = induction_probe(50, 6, bos_id=0, seed=3)  # (1, 13): BOS, x, x
    n = ids.shape[1]
    allowed = causal_allowed(n)
    same = ids[0, :, None] == ids[0, None, :]
    dup = same & ~torch.eye(n, dtype=torch.bool)
    prev_tok = torch.cat([torch.tensor([-1]), ids[0, :-1]])
    ind = ids[0, :, None] == prev_tok[None, :]
    heads = [normalize(dup[None], allowed)[0], normalize(ind[None], allowed)[0], normalize(allowed, allowed)[0]]
    res = score_heads(planted(heads), allowed=allowed, query_ids=ids, key_ids=ids)
    torch.testing.assert_close(res.scores["duplicate"][0, [0, 2]], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(res.scores["induction"][0, [1, 2]], torch.tensor([1.0, 0.0]))
    assert res.scores["duplicate"][0, 1] < 0.1 and res.scores["induction"][0, 0] < 0.1


def test_cross_attention_has_only_token_roles():
    patterns = torch.softmax(torch.randn(2, 1, 3, 4, 6), -1)
    delimiter = torch.zeros(1, 6, dtype=torch.bool)
    delimiter[0, 5] = True
    res = score_heads(patterns, self_attention=False, key_delimiter=delimiter)
    assert set(res.scores) == {"delimiter", "entropy"}
    assert res.scores["entropy"].shape == (2, 3)


def test_score_heads_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(L, B, H, T, S\)"):
        score_heads(torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="unknown head roles"):
        score_heads(torch.rand(1, 1, 1, 4, 4), roles=["sink"])
    with pytest.raises(ValueError, match="bool"):
        score_heads(torch.rand(1, 1, 1, 4, 4), allowed=torch.ones(1, 4, 4))


@pytest.fixture(scope="module")
def char_tokenizer() -> Tokenizer:
    return Tokenizer.train("char", texts=["the cat sat on the mat, and the dog ran. [x]"])


def test_uniform_model_scores_zero_end_to_end(char_tokenizer, make_gpt):
    """A GPT whose queries are zero attends uniformly: every role scores exactly chance, 0."""
    model = make_gpt(vocab_size=char_tokenizer.vocab_size, bos_id=char_tokenizer.bos_id, eos_id=char_tokenizer.eos_id)
    with torch.no_grad():
        for block in model.blocks:
            block.self_attn.qkv_proj.weight[: model.config.d_model].zero_()
            block.self_attn.qkv_proj.bias[: model.config.d_model].zero_()
    prepared = prepare_inputs(model, char_tokenizer, "the cat sat on the mat, the cat.")
    (res,) = analyze_heads(model, prepared, probe_len=8)
    assert set(res.scores) == {"previous", "delimiter", "rare", "duplicate", "induction", "entropy"}
    for role, grid in res.scores.items():
        expected = torch.ones_like(grid) if role == "entropy" else torch.zeros_like(grid)
        torch.testing.assert_close(grid, expected, atol=1e-5, rtol=0, msg=role)


def test_analyze_heads_encoder_decoder_groups(char_tokenizer):
    torch.manual_seed(0)
    tok = char_tokenizer
    model = Transformer(from_name("tiny", vocab_size=tok.vocab_size, pad_id=tok.pad_id, bos_id=tok.bos_id,
                                  eos_id=tok.eos_id)).eval()
    prepared = prepare_inputs(model, tok, "the cat sat.", target="a dog ran.")
    results = analyze_heads(model, prepared)
    by_group = {r.group: r for r in results}
    assert set(by_group) == {"encoder.self", "decoder.self", "decoder.cross"}
    assert "next" in by_group["encoder.self"].scores and "next" not in by_group["decoder.self"].scores
    assert "previous" not in by_group["decoder.cross"].scores
    for r in results:
        for grid in r.scores.values():
            assert grid.shape == (2, 4) and bool((grid <= 1 + 1e-5).all())
    table = ranking_table(results, top=2)
    assert "decoder.cross" in table and "delimiter" in table and table.count("\n") > 8


def test_attention_rollout_matches_explicit_products():
    patterns = torch.softmax(torch.randn(3, 2, 4, 5, 5), -1)
    eye = torch.eye(5)
    expected = eye.expand(2, 5, 5)
    for layer in patterns:
        a = 0.5 * layer.mean(1) + 0.5 * eye
        expected = (a / a.sum(-1, keepdim=True)) @ expected
    out = attention_rollout(patterns)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 5))
    identity = torch.eye(5).expand(3, 1, 2, 5, 5)
    torch.testing.assert_close(attention_rollout(identity, residual=False), torch.eye(5)[None])
