"""Fixtures for the CLI tests: tiny corpora on disk and an in-process runner for ``attnlab``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from attnlab.cli.main import main

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 30
PAIRS = [("a dog runs", "ein hund rennt"), ("a cat sleeps", "eine katze schläft"),
         ("two men talk", "zwei männer reden"), ("a red car", "ein rotes auto")] * 10
REVIEWS = [("1", "a delight from start to finish"), ("0", "a dull and tedious mess"),
           ("1", "wonderful acting and a moving story"), ("0", "boring, flat and far too long")] * 10


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``cli("train", "lm", ...)`` -> (exit code, stdout, stderr), run in this process."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    p = tmp_path / "text.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture
def pair_files(tmp_path: Path) -> tuple[Path, Path]:
    src, tgt = tmp_path / "train.en", tmp_path / "train.de"
    src.write_text("".join(s + "\n" for s, _ in PAIRS), encoding="utf-8")
    tgt.write_text("".join(t + "\n" for _, t in PAIRS), encoding="utf-8")
    return src, tgt


@pytest.fixture
def review_file(tmp_path: Path) -> Path:
    p = tmp_path / "reviews.tsv"
    p.write_text("label\tsentence\n" + "".join(f"{y}\t{x}\n" for y, x in REVIEWS), encoding="utf-8")
    return p
