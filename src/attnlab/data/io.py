"""Reading user text files with errors that name the file and the line.

Dimension key: none (text only; no tensors here).

Every reader accepts plain or gzip-compressed (``.gz``) files, decodes strict UTF-8 and raises
:class:`DataError` (a ``ValueError``) that names the file, the line and the fix, for: a missing file,
an empty file, a corrupt gzip stream and invalid UTF-8. Lines are split on ``"\\n"`` only (a trailing
``"\\r"`` is dropped), never on the other Unicode line separators, so two aligned files stay aligned.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

PathLike = str | os.PathLike[str]


class DataError(ValueError):
    """Bad input data. ``path`` and ``line`` (1-based, or ``None``) locate the problem."""

    def __init__(self, path: PathLike, problem: str, *, line: int | None = None, fix: str | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}" + (f"; {fix}" if fix else ""))


def read_bytes(path: PathLike) -> bytes:
    """The file's bytes, transparently gunzipped when the name ends in ``.gz``."""
    p = Path(path)
    if not p.is_file():
        hint = "" if p.parent.is_dir() else f" (folder {p.parent} is missing)"
        raise FileNotFoundError(f"{p}: no such file{hint}")
    if p.suffix != ".gz":
        return p.read_bytes()
    try:
        with gzip.open(p, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(p, f"not a valid gzip file ({e})", fix="decompress it or drop the .gz suffix") from e


def decode_utf8(data: bytes, path: PathLike) -> str:
    """Strict UTF-8 decode; on failure the error names the line and column (both 1-based)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        bad = data[e.start : e.end].hex(" ")
        raise DataError(
            path, f"invalid UTF-8 at byte column {column} (bytes {bad})", line=line,
            fix="re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`",
        ) from None
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not text


def read_text(path: PathLike) -> str:
    """The whole file as one string; raises :class:`DataError` when it holds no text."""
    text = decode_utf8(read_bytes(path), path)
    if not text.strip():
        problem = "file is empty" if not text else "file holds only whitespace"
        raise DataError(path, problem, fix="point to a file with text")
    return text


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` split on ``"\\n"``; a final newline does not start an extra empty line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_lines(path: PathLike) -> list[str]:
    """All lines of a non-empty text file (plain or ``.gz``), without their line endings."""
    return split_lines(read_text(path))


def iter_text_chunks(paths: list[PathLike], chunk_lines: int = 1000) -> Iterator[str]:
    """Chunks of ``chunk_lines`` lines (newlines kept) from each file in turn: input for tokenizer training."""
    for path in paths:
        lines = read_text(path).split("\n")
        for i in range(0, len(lines), chunk_lines):
            yield "\n".join(lines[i : i + chunk_lines])
