"""Generation invariants: KV-cached decoding == uncached recomputation (tokens identical, logits
close) for every positional scheme and for encoder-decoder models; a padded batch gives each row
what that row gives alone; the compiled static-cache step gives the same tokens."""

import pytest
import torch
from torch.testing import assert_close

from attnlab.generation import generate
from attnlab.models import GPT, Transformer, from_name

ROWS = [[3, 4, 5, 6, 7, 8], [9, 10], [11, 12, 13, 14]]  # ragged: left padding for GPT
N = 10


def spread(model: torch.nn.Module, k: float) -> torch.nn.Module:
    """Large random weights (matrices std k/sqrt(fan_in), biases 0.1, norms kept) for varied tokens."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * k / p.shape[-1] ** 0.5)
            elif "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def gpt(positional: str) -> GPT:
    cfg = from_name("gpt-tiny", vocab_size=32, positional=positional, bos_id=1, eos_id=2, pad_id=0,
                    tie_embeddings=False)
    return spread(GPT(cfg), 2.0)


def transformer(positional: str) -> Transformer:
    cfg = from_name("tiny", vocab_size=32, positional=positional, pad_id=0, bos_id=1, eos_id=2, norm_first=True,
                    tie_embeddings=False)
    return spread(Transformer(cfg), 1.0)


def assert_cache_matches_recompute(model, **options):
    cached = generate(model, ROWS, max_new_tokens=N, return_logits=True, ignore_eos=True, **options)
    uncached = generate(model, ROWS, max_new_tokens=N, return_logits=True, ignore_eos=True, use_cache=False, **options)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert_close(cached.logits, uncached.logits)
    assert cached.new_tokens.unique().numel() > 3  # varied tokens: the comparison means something


@pytest.mark.parametrize("positional", ["learned", "rope", "alibi", "sinusoidal", "none"])
def test_gpt_cached_equals_uncached(positional):
    assert_cache_matches_recompute(gpt(positional))


@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "rope", "alibi", "t5"])
def test_encoder_decoder_cached_equals_uncached(positional):
    assert_cache_matches_recompute(transformer(positional))


def test_t5_cached_equals_uncached():
    from attnlab.models import T5

    assert_cache_matches_recompute(spread(T5(from_name("t5-tiny")), 1.0))


@pytest.mark.parametrize("make, positional", [(gpt, "rope"), (gpt, "alibi"), (transformer, "t5")])
def test_beam_search_cached_equals_uncached(make, positional):
    model = make(positional)
    options = dict(max_new_tokens=N, num_beams=3, num_return_sequences=2, length_penalty=0.7)
    cached, uncached = generate(model, ROWS, **options), generate(model, ROWS, use_cache=False, **options)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert_close(cached.scores, uncached.scores)


@pytest.mark.parametrize(
    "make, positional", [(gpt, "learned"), (gpt, "alibi"), (gpt, "rope"), (transformer, "sinusoidal")]
)
@pytest.mark.parametrize("options", [dict(), dict(num_beams=3), dict(repetition_penalty=1.4, no_repeat_ngram_size=2)])
def test_padded_batch_rows_equal_rows_alone(make, positional, options):
    model = make(positional)
    batch = generate(model, ROWS, max_new_tokens=N, **options)
    for b, row in enumerate(ROWS):
        alone = generate(model, [row], max_new_tokens=N, **options)
        n = int(alone.lengths[0])
        assert batch.lengths[b] == n
        assert batch.new_tokens[b, :n].tolist() == alone.new_tokens[0, :n].tolist()


def test_sampled_rows_are_reproducible_per_seed():
    model = gpt("learned")
    a = generate(model, ROWS, max_new_tokens=N, do_sample=True, top_p=0.9, seed=7)
    b = generate(model, ROWS, max_new_tokens=N, do_sample=True, top_p=0.9, seed=7)
    assert torch.equal(a.sequences, b.sequences)


@pytest.mark.slow
def test_compiled_static_step_matches_eager():
    """The torch.compile'd fixed-shape decode step (CUDA graphs on GPU) gives the eager tokens."""
    model = gpt("rope")
    eager = generate(model, ROWS, max_new_tokens=N, return_logits=True, ignore_eos=True)
    fast = generate(model, ROWS, max_new_tokens=N, return_logits=True, ignore_eos=True, compile=True)
    again = generate(model, ROWS, max_new_tokens=N, ignore_eos=True, compile=True)  # reuses the compiled step
    assert torch.equal(fast.sequences, eager.sequences) and torch.equal(again.sequences, eager.sequences)
    assert_close(fast.logits, eager.logits)
    beams = dict(max_new_tokens=N, num_beams=2, length_penalty=0.5)  # cache and mask reordered in place
    assert torch.equal(generate(model, ROWS, compile=True, **beams).sequences, generate(model, ROWS, **beams).sequences)
    with torch.no_grad():  # new weights: the fast path must not keep using stale copies of the old ones
        for p in model.parameters():
            p.mul_(1.1)
    eager = generate(model, ROWS, max_new_tokens=N, return_logits=True, ignore_eos=True)
    fast = generate(model, ROWS, max_new_tokens=N, return_logits=True, ignore_eos=True, compile=True)
    assert torch.equal(fast.sequences, eager.sequences)
    assert_close(fast.logits, eager.logits)
