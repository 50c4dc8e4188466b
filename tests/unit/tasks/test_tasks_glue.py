"""Task glue: model folders (HF and native), recipes, fixed eval batches, time budgets, sampling, BLEU, predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attnlab.data import LMBlocks, LMCollator, Tokenizer
from attnlab.tasks.common import (
    TimeBudget,
    TimeUp,
    bundled_text,
    data_path,
    fixed_batches,
    load_model,
    resolve_device,
    save_model,
)
from attnlab.tasks.lm import LMRecipe, build_gpt, evaluate_lm, lm_recipe, sample_text
from attnlab.tasks.translation import (
    TranslationRecipe,
    bleu,
    build_transformer,
    translate,
)

CORPUS = ["a dog runs on the grass", "ein hund rennt auf dem gras", "two men talk", "zwei männer reden"] * 5


@pytest.fixture
def bpe() -> Tokenizer:
    return Tokenizer.train("bpe", texts=CORPUS, vocab_size=300, min_frequency=1)


def test_native_folder_round_trip_keeps_tied_weights(bpe: Tokenizer, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_transformer(TranslationRecipe(d_model=32, n_heads=4, n_encoder_layers=1, n_decoder_layers=1,
                                                d_ff=64, max_len=32), bpe).eval()
    save_model(model, tmp_path / "m", tokenizer=bpe, info={"task": "translation"})
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["attnlab_native"] is True and config["model_type"] == "transformer"
    again, tok, info = load_model(tmp_path / "m")
    assert info == {"task": "translation"} and tok.vocab_size == bpe.vocab_size
    assert again.lm_head.weight is again.src_embed.weight  # the tie survives the round trip
    src, tgt = torch.tensor([[5, 6, 7, bpe.eos_id]]), torch.tensor([[bpe.bos_id, 9, 10]])
    torch.testing.assert_close(again(src, tgt), model(src, tgt))


def test_native_folder_with_missing_weights_is_refused(bpe: Tokenizer, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from attnlab.interop import CheckpointError

    model = build_transformer(TranslationRecipe(d_model=32, n_heads=4, n_encoder_layers=1, n_decoder_layers=1,
                                                d_ff=64, max_len=32), bpe)
    save_model(model, tmp_path / "m", tokenizer=bpe)
    state = load_file(tmp_path / "m" / "model.safetensors")
    state.pop(next(k for k in state if "encoder" in k))
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing"):
        load_model(tmp_path / "m")


def test_gpt_folder_is_hf_format_with_learned_positions(bpe: Tokenizer, tmp_path: Path) -> None:
    model = build_gpt(lm_recipe("tiny"), bpe)  # learned positions (the default): GPT-2's layout
    save_model(model, tmp_path / "g", tokenizer=bpe)
    config = json.loads((tmp_path / "g" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and "attnlab_native" not in config
    again, _, _ = load_model(tmp_path / "g")
    ids = torch.tensor([bpe.encode("a dog runs")])
    torch.testing.assert_close(again(ids), model.eval()(ids))


def test_rope_gpt_folder_round_trips_natively(bpe: Tokenizer, tmp_path: Path) -> None:
    model = build_gpt(lm_recipe("tiny", positional="rope"), bpe)  # rotary positions: no GPT-2 equivalent
    assert model.config.positional == "rope"
    save_model(model, tmp_path / "g", tokenizer=bpe)
    config = json.loads((tmp_path / "g" / "config.json").read_text())
    assert config["attnlab_native"] is True and config["positional"] == "rope"
    again, _, _ = load_model(tmp_path / "g")
    ids = torch.tensor([bpe.encode("a dog runs")])
    torch.testing.assert_close(again(ids), model.eval()(ids))


def test_recipes_reject_unknown_fields_and_keep_defaults() -> None:
    assert lm_recipe("char-cpu") == LMRecipe(positional="rope")  # nanoGPT's small CPU setting, rotary positions
    assert lm_recipe("char-cpu", max_steps=None).max_steps == 2000  # None means "keep the preset's value"
    assert lm_recipe("char-gpu").d_model == 384 and lm_recipe("char-gpu").dropout == 0.2
    with pytest.raises(ValueError, match="unknown LMRecipe fields \\['depth'\\]"):
        LMRecipe().replace(depth=3)
    with pytest.raises(ValueError, match="unknown LM preset"):
        lm_recipe("nope")


def test_fixed_batches_are_reproducible() -> None:
    ds = LMBlocks(torch.arange(200), 8)
    a = fixed_batches(ds, 3, 4, LMCollator())
    b = fixed_batches(ds, 3, 4, LMCollator())
    assert len(a) == 3 and all(torch.equal(x["ids"], y["ids"]) for x, y in zip(a, b))
    assert a[0]["ids"].shape == (4, 8) and torch.equal(a[0]["labels"], a[0]["ids"] + 1)


def test_time_budget_raises_after_its_time() -> None:
    class FakeTrainer:
        step = 7

    TimeBudget(None)(FakeTrainer(), {})  # no budget: never stops
    TimeBudget(60.0)(FakeTrainer(), {})
    with pytest.raises(TimeUp, match="step 7"):
        TimeBudget(-1.0)(FakeTrainer(), {})


def test_bundled_text_and_data_path(tmp_path: Path) -> None:
    path = bundled_text()
    assert path.stat().st_size == 1_115_394 or path.read_text(encoding="utf-8").startswith("First Citizen:")
    assert data_path("tinyshakespeare") == path
    mine = tmp_path / "tinyshakespeare"
    mine.write_text("x")
    assert data_path(mine) == mine  # an existing file of that name wins
    with pytest.raises(ValueError, match="no bundled text"):
        bundled_text("hamlet")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_sample_text_slides_past_the_context_and_is_seeded() -> None:
    tok = Tokenizer.train("char", texts=["abcdefgh \n"])
    torch.manual_seed(0)
    model = build_gpt(lm_recipe("tiny", block_size=8), tok).eval()
    text = sample_text(model, tok, "abc", max_new_tokens=30, seed=1)
    # 30 new tokens through an 8-token context (an untrained model also samples special tokens, which decode to "")
    assert text.startswith("abc") and 8 < len(text) <= 33
    assert sample_text(model, tok, "abc", max_new_tokens=30, seed=1) == text
    greedy = sample_text(model, tok, "", max_new_tokens=5, greedy=True)
    assert len(greedy) <= 5  # an empty prompt starts from a newline that is not printed
    assert greedy == sample_text(model, tok, "", max_new_tokens=5, greedy=True, seed=99)  # greedy ignores seeds


def test_evaluate_lm_matches_cross_entropy() -> None:
    tok = Tokenizer.train("char", texts=["abcdefgh"])
    model = build_gpt(lm_recipe("tiny", block_size=8), tok).eval()
    batch = {"ids": torch.randint(4, 12, (2, 8)), "labels": torch.randint(4, 12, (2, 8))}
    expected = torch.nn.functional.cross_entropy(model(batch["ids"]).flatten(0, 1), batch["labels"].flatten())
    result = evaluate_lm(model, [batch])
    assert result["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert result["ppl"] == pytest.approx(expected.exp().item(), rel=1e-5)


def test_translate_keeps_input_order_and_bleu(bpe: Tokenizer) -> None:
    torch.manual_seed(0)
    model = build_transformer(TranslationRecipe(d_model=32, n_heads=4, n_encoder_layers=1, n_decoder_layers=1,
                                                d_ff=64, max_len=32), bpe).eval()
    sources = ["two men talk", "a dog runs on the grass", "a dog"]
    together = translate(model, bpe, sources, num_beams=1, batch_size=2, max_new_tokens=6)
    alone = [translate(model, bpe, [s], num_beams=1, max_new_tokens=6)[0] for s in sources]
    assert together == alone  # batching by length and reordering do not change any output
    assert bleu(["ein hund rennt auf dem gras ."], ["ein hund rennt auf dem gras ."]) == pytest.approx(100.0)
    assert bleu(["völlig anders als erwartet"], ["ein hund rennt auf dem gras ."]) < 1.0
    with pytest.raises(ValueError, match="hypotheses"):
        bleu(["a"], ["a", "b"])


def test_gpt_without_hf_equivalent_uses_the_native_folder(bpe: Tokenizer, tmp_path: Path) -> None:
    from attnlab.models.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=bpe.vocab_size, n_layers=1, n_heads=2, d_model=16, max_len=16,
                          positional="rope", bos_id=bpe.bos_id, eos_id=bpe.eos_id)).eval()
    save_model(model, tmp_path / "r", tokenizer=bpe)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["attnlab_native"] is True
    again, _, _ = load_model(tmp_path / "r")
    ids = torch.tensor([bpe.encode("two men talk")])
    torch.testing.assert_close(again(ids), model(ids))
