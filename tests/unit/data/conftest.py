"""Shared fixtures for the data tests: a small corpus written to a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPUS = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.
Ünïcödé — naïve café, 東京!
"""


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text(CORPUS * 20, encoding="utf-8")
    return p


@pytest.fixture
def real_data() -> Path:
    """The shared real data folder (``../shared/data`` from the repo root, or $ATTNLAB_DATA); skips when absent."""
    root = Path(os.environ.get("ATTNLAB_DATA") or Path(__file__).resolve().parents[3].parent / "shared" / "data")
    if not (root / "multi30k" / "val.en.gz").is_file():
        pytest.skip(f"real data not found under {root}; set ATTNLAB_DATA to the folder holding multi30k/ and sst2/")
    return root
