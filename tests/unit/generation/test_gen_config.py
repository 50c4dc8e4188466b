"""GenerationConfig validation and the bad-input errors of generate(): each names its limit."""

import pytest
import torch

from attnlab.generation import GenerationConfig, generate
from attnlab.models import GPT, from_name


@pytest.mark.parametrize(
    "options, words",
    [
        (dict(max_new_tokens=0), "max_new_tokens must be >= 1"),
        (dict(max_new_tokens=-3), "max_new_tokens must be >= 1"),
        (dict(min_new_tokens=-1), "min_new_tokens must be >= 0"),
        (dict(min_new_tokens=5, max_new_tokens=4), "must not exceed max_new_tokens"),
        (dict(do_sample=True, temperature=0.0), "temperature must be > 0"),
        (dict(do_sample=True, temperature=-1.0), "temperature must be > 0"),
        (dict(top_p=0.0), "top_p must lie in (0, 1]"),
        (dict(top_p=1.5), "top_p must lie in (0, 1]"),
        (dict(top_k=-1), "top_k must be >= 0"),
        (dict(repetition_penalty=0.0), "repetition_penalty must be a finite number > 0"),
        (dict(no_repeat_ngram_size=-2), "no_repeat_ngram_size must be >= 0"),
        (dict(num_beams=0), "num_beams must be >= 1"),
        (dict(num_beams=2, num_return_sequences=3), "must be <= num_beams"),
        (dict(num_return_sequences=2), "greedy search returns one sequence"),
        (dict(early_stopping="sometimes"), "early_stopping must be True, False or 'never'"),
        (dict(num_beams=2, return_logits=True), "return_logits is for greedy/sampling"),
        (dict(stop_strings=("",)), "stop_strings must be non-empty"),
    ],
)
def test_invalid_options_raise_value_error_naming_the_limit(options, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        GenerationConfig(**options)


def test_temperature_zero_is_fine_for_greedy_and_strategy_names():
    assert GenerationConfig(temperature=0.0).strategy == "greedy"
    assert GenerationConfig(do_sample=True).strategy == "sample"
    assert GenerationConfig(num_beams=3).strategy == "beam"
    assert GenerationConfig(num_beams=3, do_sample=True).strategy == "beam_sample"


def test_replace_validates_and_rejects_unknown_options():
    cfg = GenerationConfig()
    assert cfg.replace(max_new_tokens=7).max_new_tokens == 7
    with pytest.raises(ValueError, match="max_new_tokens"):
        cfg.replace(max_new_tokens=0)
    with pytest.raises(TypeError, match="unknown generation option"):
        cfg.replace(max_tokens=5)
    assert GenerationConfig(stop_strings="\n").stop_strings == ("\n",)


def test_generate_errors(gpt):
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        generate(gpt, [[3, 4]], max_new_tokens=0)
    ctx = gpt.config.max_len
    with pytest.raises(ValueError, match=f"= {ctx + 1} exceeds the model's context max_len={ctx}"):
        generate(gpt, [[3] * 10], max_new_tokens=ctx - 9)
    generate(gpt, [[3] * 10], max_new_tokens=ctx - 10)  # exactly the context is fine
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate(gpt, [[3]], do_sample=True, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        generate(gpt, [[3]], top_p=0)
    with pytest.raises(ValueError, match="top_k"):
        generate(gpt, [[3]], top_k=-5)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(gpt, [[3, 999]])
    with pytest.raises(ValueError, match="need a tokenizer"):
        generate(gpt, [[3]], stop_strings=["x"])
    with pytest.raises(ValueError, match="text prompts need a tokenizer"):
        generate(gpt, "hello")


def test_encoder_decoder_context_errors(transformer):
    ctx = transformer.config.max_len
    with pytest.raises(ValueError, match=f"source length {ctx + 1} exceeds"):
        generate(transformer, [[3] * (ctx + 1)], max_new_tokens=2)
    with pytest.raises(ValueError, match=f"lower max_new_tokens to <= {ctx - 1}"):
        generate(transformer, [[3]], max_new_tokens=ctx)


def test_empty_prompt_needs_bos():
    cfg = from_name("gpt-tiny", vocab_size=32, bos_id=None, eos_id=2, pad_id=0)
    model = GPT(cfg).eval()
    with pytest.raises(ValueError, match=r"row\(s\) \[1\] are empty and the model has no BOS"):
        generate(model, [[3, 4], []])
    with pytest.raises(ValueError, match="no BOS"):
        generate(model, torch.zeros(2, 0, dtype=torch.long))
    # with a BOS (from the generation config) an empty row starts from it, exactly like [bos]
    a = generate(model, [[3, 4], []], bos_id=1, max_new_tokens=4)
    b = generate(model, [[1]], max_new_tokens=4)
    assert torch.equal(a.new_tokens[1], b.new_tokens[0])


def test_nan_logits_raise(gpt):
    with torch.no_grad():
        gpt.lm_head.weight[5, 0] = float("nan")
    for options in (dict(), dict(num_beams=2), dict(do_sample=True, seed=0)):
        with pytest.raises(ValueError, match="NaN logits"):
            generate(gpt, [[3, 4]], max_new_tokens=3, **options)
