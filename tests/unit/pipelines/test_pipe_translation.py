"""pipeline("translation") / ("text2text-generation"): encoder-decoder models and T5's task prefixes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import attnlab
from attnlab.generation import generate
from attnlab.pipelines import Text2TextGenerationPipeline, TranslationPipeline

from_name = attnlab.from_name


def test_t5_prefix_from_the_task_name(t5_dir: Path) -> None:
    tr: TranslationPipeline = attnlab.pipeline("translation_en_to_fr", model=t5_dir)
    assert tr.prefix == "translate English to French: "
    src = tr.encode_prompts(["the cat"])[0]
    assert src == tr.tokenizer.encode("translate English to French: the cat") + [1]  # closed by </s> (id 1)
    de = attnlab.pipeline("translation", model=t5_dir, src_lang="en", tgt_lang="de")
    assert de.prefix == "translate English to German: "
    with pytest.raises(ValueError, match="task prefix"):
        attnlab.pipeline("translation", model=t5_dir)
    assert attnlab.pipeline("translation", model=t5_dir, prefix="").prefix == ""


def test_output_equals_generate_on_the_prefixed_source(t5_dir: Path) -> None:
    tr = attnlab.pipeline("translation_en_to_de", model=t5_dir)
    texts = ["the cat sat on the mat", "a dog"]
    out = tr(texts, max_new_tokens=6)
    assert [set(d) for d in out] == [{"translation_text"}] * 2
    for text, d in zip(texts, out):
        ids = tr.tokenizer.encode("translate English to German: " + text) + [1]
        ref = generate(tr.model, [ids], max_new_tokens=6, tokenizer=tr.tokenizer)
        assert d["translation_text"] == ref.texts[0].strip()
    single = tr("a dog", max_new_tokens=6)
    assert single == [out[1]]  # one dict in a list, as HF
    several = tr(texts, max_new_tokens=4, num_beams=3, num_return_sequences=2)
    assert [len(x) for x in several] == [2, 2]


def test_task_specific_params_of_the_config(t5_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "t5"
    shutil.copytree(t5_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["task_specific_params"] = {"translation_en_to_ro": {"prefix": "en2ro: ", "num_beams": 3, "max_length": 9}}
    (folder / "config.json").write_text(json.dumps(config))
    tr = attnlab.pipeline("translation_en_to_ro", model=folder)
    assert tr.prefix == "en2ro: "
    assert tr.generation_config.num_beams == 3 and tr.generation_config.max_new_tokens == 8


def test_text2text_and_wrong_models(t5_dir: Path, gpt_dir: Path) -> None:
    t2t: Text2TextGenerationPipeline = attnlab.pipeline(model=t5_dir)  # task read from the folder
    assert t2t.task == "text2text-generation"
    out = t2t("the cat", max_new_tokens=4)
    assert len(out) == 1 and set(out[0]) == {"generated_text"}
    with pytest.raises(ValueError, match="does not run 'gpt2'"):
        attnlab.pipeline("translation_en_to_fr", model=gpt_dir)
    with pytest.raises(ValueError, match="encoder-decoder"):
        TranslationPipeline(attnlab.from_pretrained(gpt_dir), prefix="")


def _train_toy_t5(tok: Any, pairs: list[tuple[str, str]], steps: int = 60) -> torch.nn.Module:
    from attnlab.models.t5 import T5

    torch.manual_seed(0)
    model = T5(from_name("t5-tiny", vocab_size=tok.vocab_size, d_model=64, d_ff=128))
    src = [tok.encode(s) + [1] for s, _ in pairs]
    tgt = [tok.encode(t) + [1] for _, t in pairs]
    S, T = max(map(len, src)), max(map(len, tgt))
    src_ids = torch.tensor([r + [0] * (S - len(r)) for r in src])  # (B, S)
    labels = torch.tensor([r + [-100] * (T - len(r)) for r in tgt])  # (B, T)
    tgt_in = torch.cat([torch.zeros(len(pairs), 1, dtype=torch.long), labels[:, :-1].clamp(min=0)], dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead (and the CPU is shared)
    try:
        for _ in range(steps):
            logits = model(src_ids, tgt_in, src_ids != 0)  # (B, T, V)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def test_a_trained_t5_follows_the_task_prefix(t5_tok, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One toy T5 learns both directions; only the prefix tells them apart."""
    tok = t5_tok
    words = {"cat": ("chat", "katze"), "dog": ("chien", "hund"), "house": ("maison", "haus")}
    pairs = [(f"translate English to {lang}: {en}", out[k]) for en, out in words.items()
             for k, lang in enumerate(("French", "German"))]
    model = _train_toy_t5(tok, pairs)
    model.save_pretrained(tmp_path)
    tok.save(tmp_path)
    fr = attnlab.pipeline("translation_en_to_fr", model=tmp_path)
    de = attnlab.pipeline("translation_en_to_de", model=tmp_path)
    assert [d["translation_text"] for d in fr(list(words), max_new_tokens=5)] == ["chat", "chien", "maison"]
    assert [d["translation_text"] for d in de(list(words), max_new_tokens=5)] == ["katze", "hund", "haus"]
