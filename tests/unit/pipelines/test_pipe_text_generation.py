"""pipeline("text-generation"): HF's output shapes, agreement with attnlab.generate, streaming, cancellation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import attnlab
from attnlab.generation import generate
from attnlab.pipelines import GenerationCancelled, TextGenerationPipeline


@pytest.fixture(scope="module")
def gen(gpt_dir: Path) -> TextGenerationPipeline:
    return attnlab.pipeline("text-generation", model=gpt_dir)


def test_greedy_output_is_the_prompt_plus_what_generate_makes(gen: TextGenerationPipeline) -> None:
    prompt = "the movie was"
    out = gen(prompt, max_new_tokens=8)
    assert isinstance(out, list) and len(out) == 1 and set(out[0]) == {"generated_text"}
    ids = gen.tokenizer.encode(prompt)
    ref = generate(gen.model, [ids], max_new_tokens=8)
    new = ref.new_tokens[0, : int(ref.lengths[0])].tolist()
    new = new[:-1] if new and new[-1] == gen.model.config.eos_id else new
    expected = prompt + gen.tokenizer.decode(ids + new)[len(gen.tokenizer.decode(ids)) :]
    assert out[0]["generated_text"] == expected
    assert gen(prompt, max_new_tokens=8, return_full_text=False)[0]["generated_text"] == expected[len(prompt) :]
    tokens = gen(prompt, max_new_tokens=8, return_tensors=True)[0]["generated_token_ids"]
    assert tokens == ids + new


def test_list_input_gives_one_list_per_prompt_and_batching_changes_nothing(gpt_dir: Path) -> None:
    prompts = ["the cat", "a great story with", "i", "the film was boring and"]
    one = attnlab.pipeline("text-generation", model=gpt_dir, batch_size=1)(prompts, max_new_tokens=6)
    four = attnlab.pipeline("text-generation", model=gpt_dir, batch_size=4)(prompts, max_new_tokens=6)
    assert [len(x) for x in one] == [1, 1, 1, 1]
    assert one == four  # left padding inside a batch does not change any row
    for prompt, group in zip(prompts, one):
        assert group[0]["generated_text"].startswith(prompt)


def test_sampling_with_num_return_sequences_is_seeded(gen: TextGenerationPipeline) -> None:
    kw = dict(max_new_tokens=6, do_sample=True, top_k=20, temperature=0.9, num_return_sequences=3, seed=7)
    a, b = gen(["the cat", "a dog"], **kw), gen(["the cat", "a dog"], **kw)
    assert a == b and [len(g) for g in a] == [3, 3]
    assert len({d["generated_text"] for d in a[0]}) > 1  # three different samples
    beams = gen("the cat", max_new_tokens=5, num_beams=3, num_return_sequences=2)
    assert len(beams) == 2 and all(d["generated_text"].startswith("the cat") for d in beams)


def test_stream_deltas_add_up_to_the_final_text(gen: TextGenerationPipeline) -> None:
    chunks = list(gen.stream("the movie was", max_new_tokens=10))
    final = [c for c in chunks if c.done]
    assert len(final) == 1 and final[0].finish_reason in ("stop", "length")
    assert "".join(c.delta for c in chunks) == final[0].text
    assert "the movie was" + final[0].text == gen("the movie was", max_new_tokens=10)[0]["generated_text"]


def test_stream_of_a_batch_matches_complete(gen: TextGenerationPipeline) -> None:
    kw = dict(max_new_tokens=6, do_sample=True, num_return_sequences=2, seed=3)
    texts: dict[int, str] = {}
    for c in gen.stream(["the cat", "i love"], **kw):
        assert not c.rewritten
        texts[c.index] = texts.get(c.index, "") + c.delta
    completions = gen.complete(["the cat", "i love"], **kw)
    assert [texts[i] for i in range(4)] == [c.text for group in completions for c in group]


def test_cancel_stops_generation(gen: TextGenerationPipeline) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        gen("the cat", max_new_tokens=20, cancel=cancel)
    cancel = threading.Event()
    seen = 0
    with pytest.raises(GenerationCancelled):
        for _ in gen.stream("the cat", max_new_tokens=30, ignore_eos=True, cancel=cancel):
            seen += 1
            cancel.set()
    assert seen == 1  # stopped at the very next token


def test_finish_reasons(gen: TextGenerationPipeline) -> None:
    done = gen.complete(["the cat"], max_new_tokens=5, ignore_eos=True)[0][0]
    assert done.finish_reason == "length" and len(done.token_ids) == 5
    text = done.text
    stop = text[len(text) // 2 :][:2] or text
    stopped = gen.complete(["the cat"], max_new_tokens=5, ignore_eos=True, stop_strings=[stop])[0][0]
    assert stopped.finish_reason == "stop" and stop in stopped.text


def test_bad_options_are_clear_errors(gen: TextGenerationPipeline) -> None:
    with pytest.raises(TypeError, match="max_new_tokens"):
        gen("the cat", max_length=30)
    with pytest.raises(TypeError, match="unknown generation option"):
        gen("the cat", temprature=0.5)
    with pytest.raises(ValueError, match="context max_len=64"):
        gen("the cat", max_new_tokens=200)
    with pytest.raises(TypeError, match="string"):
        gen(42)
    with pytest.raises(ValueError, match="empty list"):
        gen([])


def test_model_object_and_wrong_model_kind(gpt_dir: Path, t5_dir: Path) -> None:
    model = attnlab.from_pretrained(gpt_dir)
    pipe = attnlab.pipeline("text-generation", model=model, tokenizer=gpt_dir)
    assert pipe("the cat", max_new_tokens=4) == attnlab.pipeline("text-generation", model=gpt_dir)(
        "the cat", max_new_tokens=4)
    with pytest.raises(ValueError, match="decoder-only"):
        TextGenerationPipeline(attnlab.from_pretrained(t5_dir))


def test_generation_config_json_sets_the_defaults(gpt_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "gpt"
    shutil.copytree(gpt_dir, folder)
    (folder / "generation_config.json").write_text('{"max_new_tokens": 3, "do_sample": false}')
    pipe = attnlab.pipeline("text-generation", model=folder)
    assert pipe.generation_config.max_new_tokens == 3
    n_prompt = len(pipe.tokenizer.encode("the cat"))
    assert len(pipe("the cat", return_tensors=True, ignore_eos=True)[0]["generated_token_ids"]) == n_prompt + 3


def test_native_rope_gpt_folder_runs_text_generation(gpt_dir: Path, tmp_path: Path) -> None:
    """A GPT with no GPT-2 equivalent (rotary positions, as the char-* LM presets train) is saved in
    attnlab's own format; the pipeline loads it and agrees with generate on the same weights."""
    import torch

    from attnlab.data import Tokenizer
    from attnlab.models import GPT, from_name
    from attnlab.tasks.common import save_model

    tok = Tokenizer.load(gpt_dir)
    torch.manual_seed(3)
    model = GPT(from_name("gpt-tiny", vocab_size=tok.vocab_size, positional="rope", bos_id=tok.bos_id,
                          eos_id=tok.eos_id, pad_id=tok.pad_id)).eval()
    save_model(model, tmp_path / "rope", tokenizer=tok)
    assert (tmp_path / "rope" / "config.json").read_text().count('"attnlab_native": true') == 1
    pipe = attnlab.pipeline("text-generation", model=tmp_path / "rope")
    out = pipe("the cat", max_new_tokens=6, return_tensors=True)[0]["generated_token_ids"]
    ids = tok.encode("the cat")
    ref = generate(model, [ids], max_new_tokens=6)
    new = ref.new_tokens[0, : int(ref.lengths[0])].tolist()
    assert out == ids + (new[:-1] if new and new[-1] == tok.eos_id else new)
    with pytest.raises(ValueError, match="cannot run 'fill-mask'"):
        attnlab.pipeline("fill-mask", model=tmp_path / "rope")
