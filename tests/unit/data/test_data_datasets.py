"""Datasets and readers: LM windows, parallel corpora, classification TSV, and the errors for bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from attnlab.data import (
    ClassificationDataset,
    DataError,
    LMBlocks,
    LMData,
    ParallelDataset,
    Tokenizer,
    encode_text,
    read_classification_tsv,
    read_lines,
    read_parallel,
    read_text,
    split_text,
)


@pytest.fixture
def char_tok(corpus_file: Path) -> Tokenizer:
    return Tokenizer.train("char", [corpus_file])


def _write(path: Path, data: str | bytes) -> Path:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if path.suffix == ".gz":
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


# ----- readers ----------------------------------------------------------------------------------------
def test_read_lines_plain_gz_crlf_and_bom(tmp_path: Path) -> None:
    text = "\ufeffone\r\ntwo\u2028still two\nthree\n"
    for name in ("a.txt", "a.txt.gz"):
        assert read_lines(_write(tmp_path / name, text)) == ["one", "two\u2028still two", "three"]


def test_invalid_utf8_names_file_line_and_column(tmp_path: Path) -> None:
    p = _write(tmp_path / "bad.txt.gz", b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"bad\.txt\.gz:3: invalid UTF-8 at byte column 5") as err:
        read_text(p)
    assert err.value.line == 3 and err.value.path == p and "iconv" in str(err.value)


@pytest.mark.parametrize("content", ["", " \n\n"])
def test_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    with pytest.raises(DataError, match="empty.txt: file (is empty|holds only whitespace)"):
        read_text(_write(tmp_path / "empty.txt", content))


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt: no such file"):
        read_text(tmp_path / "nope.txt")
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="x.gz: not a valid gzip file"):
        read_text(tmp_path / "x.gz")


# ----- language modelling -----------------------------------------------------------------------------
def test_split_text_is_nanogpt_split() -> None:
    text = "abcdefghij" * 10
    train, val = split_text(text, 0.1)
    assert train + val == text and len(train) == 90
    with pytest.raises(ValueError, match="val_fraction"):
        split_text(text, 1.0)


def test_encode_text_matches_whole_text_encoding(corpus_file: Path, char_tok: Tokenizer) -> None:
    text = corpus_file.read_text(encoding="utf-8")
    ids = encode_text(char_tok, text, chunk_lines=7)  # chunking must not lose or add newlines
    assert ids.tolist() == char_tok.encode(text)
    bpe = Tokenizer.train("bpe", [corpus_file], vocab_size=300, min_frequency=1)
    assert bpe.decode(encode_text(bpe, text, chunk_lines=5)) == text


def test_lm_blocks_are_shifted_windows() -> None:
    tokens = torch.arange(20, dtype=torch.int32)
    ds = LMBlocks(tokens, 4)
    assert len(ds) == 16  # every start 0..15 has 4 inputs and 4 targets
    item = ds[3]
    assert item["ids"].tolist() == [3, 4, 5, 6] and item["labels"].tolist() == [4, 5, 6, 7]
    assert item["ids"].dtype == torch.long
    assert ds[-1]["labels"].tolist() == [16, 17, 18, 19]
    strided = LMBlocks(tokens, 4, stride=4)
    assert len(strided) == 4 and strided[3]["ids"].tolist() == [12, 13, 14, 15]
    with pytest.raises(IndexError):
        ds[16]
    with pytest.raises(ValueError, match="too few for one block"):
        LMBlocks(tokens[:4], 4)


def test_lm_data_from_file(corpus_file: Path, char_tok: Tokenizer) -> None:
    data = LMData.from_file(corpus_file, char_tok, val_fraction=0.1)
    text = corpus_file.read_text(encoding="utf-8")
    assert data.train_tokens.numel() + data.val_tokens.numel() == len(text)
    assert char_tok.decode(data.val_tokens) == text[int(len(text) * 0.9) :]
    assert len(data.blocks("val", 8, stride=8)) == (data.val_tokens.numel() - 9) // 8 + 1
    with pytest.raises(ValueError, match="split"):
        data.blocks("test", 8)


# ----- translation ------------------------------------------------------------------------------------
def test_parallel_from_two_gz_files_and_tsv(tmp_path: Path, char_tok: Tokenizer) -> None:
    src = _write(tmp_path / "train.en.gz", "All:\nSpeak, speak.\n")
    tgt = _write(tmp_path / "train.de.gz", "Alle:\nSprecht, sprecht.\n")
    assert read_parallel(src, tgt) == (["All:", "Speak, speak."], ["Alle:", "Sprecht, sprecht."])
    tsv = _write(tmp_path / "pairs.tsv", "All:\tAlle:\nSpeak, speak.\tSprecht, sprecht.\n")
    assert read_parallel(tsv) == read_parallel(src, tgt)
    ds = ParallelDataset.from_files(src, tgt, char_tok, max_len=5)
    assert len(ds) == 2 and ds[1]["src"] == char_tok.encode("Spea")  # 4 tokens + the eos the collator adds
    assert ds.lengths == [5, 5] and ds.sources[1] == "Speak, speak."


def test_parallel_line_count_mismatch_names_file_and_line(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.en", "one\ntwo\nthree\n")
    tgt = _write(tmp_path / "a.de", "eins\nzwei\n")
    with pytest.raises(DataError, match=r"a\.en:3: has more lines than its pair \(3 in .* vs 2 in") as err:
        read_parallel(src, tgt)
    assert err.value.line == 3
    with pytest.raises(DataError, match=r"a\.en:3: has more lines"):
        read_parallel(tgt.with_name("a.en"), src.with_name("a.de"))  # order of arguments does not matter


def test_parallel_empty_side_and_bad_tsv(tmp_path: Path) -> None:
    src = _write(tmp_path / "b.en", "one\n\nthree\n")
    tgt = _write(tmp_path / "b.de", "eins\nzwei\ndrei\n")
    with pytest.raises(DataError, match=r"b\.en:2: empty line"):
        read_parallel(src, tgt)
    tsv = _write(tmp_path / "p.tsv", "a\tb\nno tab here\n")
    with pytest.raises(DataError, match=r"p\.tsv:2: expected 'source<TAB>target', found 1 field"):
        read_parallel(tsv)
    with pytest.raises(DataError, match=r"empty\.de: file is empty"):
        read_parallel(src, _write(tmp_path / "empty.de", ""))


# ----- classification ---------------------------------------------------------------------------------
def test_classification_tsv_with_and_without_header(tmp_path: Path, char_tok: Tokenizer) -> None:
    a = _write(tmp_path / "a.tsv", "label\tsentence\n1\tSpeak, speak.\n0\tAll:\n10\tFirst\n")
    ds = ClassificationDataset.from_tsv(a, char_tok, max_len=6)
    assert ds.classes == ["0", "1", "10"]  # numeric labels sort as numbers
    assert ds.label_ids == [1, 0, 2] and ds.texts[0] == "Speak, speak."
    assert ds[0]["ids"] == char_tok.encode("Speak, speak.", add_special_tokens=True, max_length=6)
    glue = _write(tmp_path / "glue.tsv", "sentence\tlabel\ngood\tpos\nbad\tneg\n")  # GLUE column order
    g = ClassificationDataset.from_tsv(glue, char_tok)
    assert g.classes == ["neg", "pos"] and g.label_ids == [1, 0] and g.texts == ["good", "bad"]
    bare = _write(tmp_path / "bare.tsv", "pos\tgood\nneg\tbad\n")
    assert ClassificationDataset.from_tsv(bare, char_tok, classes=["neg", "pos"]).label_ids == [1, 0]


def test_classification_errors_name_file_and_line(tmp_path: Path, char_tok: Tokenizer) -> None:
    dev = _write(tmp_path / "dev.tsv", "label\tsentence\n1\tok\n0\tfine\n2\tunknown class\n")
    with pytest.raises(DataError, match=r"dev\.tsv:4: label '2' is not one of the classes \['0', '1'\]"):
        ClassificationDataset.from_tsv(dev, char_tok, classes=["0", "1"])
    tabs = _write(tmp_path / "tabs.tsv", "1\tok\n0\ttoo\tmany\n")
    with pytest.raises(DataError, match=r"tabs\.tsv:2: expected 'label<TAB>text', found 3"):
        ClassificationDataset.from_tsv(tabs, char_tok)
    blank = _write(tmp_path / "blank.tsv", "1\tok\n0\t \n")
    with pytest.raises(DataError, match=r"blank\.tsv:2: empty text"):
        ClassificationDataset.from_tsv(blank, char_tok)
    one = _write(tmp_path / "one.tsv", "1\tok\n1\tfine\n")
    with pytest.raises(DataError, match="only one class"):
        ClassificationDataset.from_tsv(one, char_tok)
    with pytest.raises(DataError, match=r"bad\.tsv:2: invalid UTF-8"):
        ClassificationDataset.from_tsv(_write(tmp_path / "bad.tsv", b"1\tok\n0\t\xc3\x28\n"), char_tok)


def test_real_data_loads_when_present(real_data: Path) -> None:
    src, tgt = read_parallel(real_data / "multi30k" / "val.en.gz", real_data / "multi30k" / "val.de.gz")
    assert len(src) == len(tgt) == 1014
    texts, labels, start = read_classification_tsv(real_data / "sst2" / "dev.tsv")
    assert len(texts) == 2000 and set(labels) == {"0", "1"} and start == 2
