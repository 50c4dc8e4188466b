"""Bad input through the CLI: one clear line naming the file and line, exit status 2, no traceback."""

from __future__ import annotations

from pathlib import Path


def test_empty_text_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, err = cli("train", "lm", "--data", empty, "--preset", "tiny", "--out", tmp_path / "o")
    assert code == 2 and f"{empty}: file is empty" in err and "Traceback" not in err


def test_invalid_utf8(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nalso good\nbad \xe9 latin-1\n")
    code, _, err = cli("train", "lm", "--data", bad, "--preset", "tiny", "--out", tmp_path / "o")
    assert code == 2 and f"{bad}:3: invalid UTF-8" in err


def test_parallel_line_count_mismatch(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, tgt = tmp_path / "a.en", tmp_path / "a.de"
    src.write_text("one\ntwo\nthree\n")
    tgt.write_text("eins\nzwei\n")
    code, _, err = cli("train", "translate", "--data", src, tgt, "--preset", "tiny", "--out", tmp_path / "o")
    assert code == 2 and f"{src}:3: has more lines than its pair" in err


def test_label_outside_the_classes(cli, review_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dev = tmp_path / "dev.tsv"
    dev.write_text("label\tsentence\n1\tfine\n7\tseven is not a class\n")
    code, _, err = cli("train", "classify", "--data", review_file, "--valid", dev, "--preset", "tiny",
                       "--steps", "1", "--out", tmp_path / "o", "--no-progress")
    assert code == 2 and f"{dev}:3: label '7' is not one of the classes ['0', '1']" in err


def test_missing_model_folder_and_input(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("generate", "--model", tmp_path / "nope", "hi")
    assert code == 2 and "no config.json" in err
    code, _, err = cli("translate", "--model", tmp_path / "nope")
    assert code == 2 and "--input" in err
