"""Datasets for the three tasks: language modelling, translation (parallel corpora), classification.

Dimension key: N tokens in a corpus, T block (context) length.

- :class:`LMBlocks` — every window of ``T + 1`` tokens of one token stream; ``ids`` are the first T, ``labels``
  the last T (next-token targets). A random sampler over it is nanoGPT's ``get_batch``.
- :class:`ParallelDataset` — aligned source/target sentences from two line files (plain or ``.gz``) or one
  ``source<TAB>target`` TSV, tokenized once; items carry raw text for BLEU references.
- :class:`ClassificationDataset` — ``label<TAB>text`` TSV (a ``label``/``sentence`` header in either order is
  recognised); labels map to ids through a fixed class list so that dev labels outside it are caught.

Every loader raises :class:`~attnlab.data.io.DataError` naming the file and line for bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from attnlab.data.io import DataError, PathLike, read_lines, read_text
from attnlab.data.tokenizer import Tokenizer


# ----- language modelling ----------------------------------------------------------------------------
def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """First ``1 - val_fraction`` of the characters for training, the rest for validation (nanoGPT's split)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


def encode_text(tokenizer: Tokenizer, text: str, *, chunk_lines: int = 2000) -> Tensor:
    """(N,) token ids of a long text, encoded in line chunks in parallel (chunks end on a newline)."""
    lines = text.split("\n")
    chunks = ["\n".join(lines[i : i + chunk_lines]) for i in range(0, len(lines), chunk_lines)]
    chunks = [c + "\n" for c in chunks[:-1]] + chunks[-1:]  # the newline between chunks belongs to the text
    ids: list[int] = []
    for seq in tokenizer.encode_many(chunks):
        ids.extend(seq)
    dtype = torch.int32 if tokenizer.vocab_size < 2**31 else torch.long
    return torch.tensor(ids, dtype=dtype)  # (N,)


class LMBlocks(Dataset):
    """Windows of a token stream: item i is ``{"ids": tokens[s:s+T], "labels": tokens[s+1:s+T+1]}``, s = i·stride.

    ``stride=1`` (default) makes every start position an item, so a sampler drawing uniformly with
    replacement reproduces nanoGPT's random batches; ``stride=T`` gives non-overlapping blocks.
    """

    def __init__(self, tokens: Tensor, block_size: int, *, stride: int = 1) -> None:
        if tokens.dim() != 1:
            raise ValueError(f"tokens must be 1-D (N,), got shape {tuple(tokens.shape)}")
        if block_size < 1 or stride < 1:
            raise ValueError(f"block_size and stride must be >= 1, got {block_size} and {stride}")
        if tokens.numel() < block_size + 1:
            raise ValueError(
                f"the text has {tokens.numel()} tokens, too few for one block of {block_size} + 1; "
                "use a longer text or a smaller block size (context)"
            )
        self.tokens = tokens
        self.block_size = block_size
        self.stride = stride

    def __len__(self) -> int:
        return (self.tokens.numel() - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"block {i} out of range for {len(self)} blocks")
        s = (i % len(self)) * self.stride
        window = self.tokens[s : s + self.block_size + 1].long()  # (T + 1,)
        return {"ids": window[:-1], "labels": window[1:]}  # (T,), (T,)


@dataclass
class LMData:
    """A text file tokenized and split into train/validation token streams."""

    train_tokens: Tensor
    val_tokens: Tensor
    tokenizer: Tokenizer

    @classmethod
    def from_file(cls, path: PathLike, tokenizer: Tokenizer, *, val_fraction: float = 0.1) -> LMData:
        train_text, val_text = split_text(read_text(path), val_fraction)
        val = encode_text(tokenizer, val_text) if val_text else torch.zeros(0, dtype=torch.int32)
        return cls(encode_text(tokenizer, train_text), val, tokenizer)

    def blocks(self, split: str, block_size: int, *, stride: int = 1) -> LMBlocks:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return LMBlocks(self.train_tokens if split == "train" else self.val_tokens, block_size, stride=stride)


# ----- translation ------------------------------------------------------------------------------------
def read_parallel(src: PathLike, tgt: PathLike | None = None) -> tuple[list[str], list[str]]:
    """Aligned (sources, targets) from two line files, or from one ``source<TAB>target`` file when ``tgt`` is None."""
    if tgt is None:
        return _read_tsv_pairs(src)
    src_lines, tgt_lines = read_lines(src), read_lines(tgt)
    if len(src_lines) != len(tgt_lines):
        longer, n = (src, len(tgt_lines)) if len(src_lines) > len(tgt_lines) else (tgt, len(src_lines))
        raise DataError(
            longer, f"has more lines than its pair ({len(src_lines)} in {src} vs {len(tgt_lines)} in {tgt}); "
            f"first unmatched line is here", line=n + 1, fix="the two files must be aligned line by line",
        )
    for i, (s, t) in enumerate(zip(src_lines, tgt_lines), start=1):
        if not s.strip() or not t.strip():
            raise DataError(src if not s.strip() else tgt, "empty line in a parallel corpus", line=i,
                            fix="remove the pair from both files (an empty side usually means misalignment)")
    return src_lines, tgt_lines


def _read_tsv_pairs(path: PathLike) -> tuple[list[str], list[str]]:
    srcs, tgts = [], []
    for i, line in enumerate(read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(path, f"expected 'source<TAB>target', found {len(fields)} field(s): {line[:60]!r}",
                            line=i, fix="one tab between a non-empty source and target on every line")
        srcs.append(fields[0])
        tgts.append(fields[1])
    return srcs, tgts


class ParallelDataset(Dataset):
    """Tokenized sentence pairs. Item: ``{"index", "src", "tgt"}`` (id lists without specials) plus raw texts.

    ``max_len`` caps each side's token count including the specials the collator adds (eos on the source,
    bos/eos on the target); longer sentences are truncated.
    """

    def __init__(
        self, sources: Sequence[str], targets: Sequence[str], src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer | None = None, *, max_len: int | None = None,
    ) -> None:
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets; they must be aligned")
        if not sources:
            raise ValueError("a parallel dataset needs at least one sentence pair")
        tgt_tokenizer = tgt_tokenizer or src_tokenizer
        cap = None if max_len is None else max_len - 1
        self.sources, self.targets = list(sources), list(targets)
        self.src = [s[:cap] for s in src_tokenizer.encode_many(self.sources)]
        self.tgt = [t[:cap] for t in tgt_tokenizer.encode_many(self.targets)]
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer

    @classmethod
    def from_files(
        cls, src: PathLike, tgt: PathLike | None, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer | None = None,
        *, max_len: int | None = None,
    ) -> ParallelDataset:
        sources, targets = read_parallel(src, tgt)
        return cls(sources, targets, src_tokenizer, tgt_tokenizer, max_len=max_len)

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"index": i, "src": self.src[i], "tgt": self.tgt[i]}

    @property
    def lengths(self) -> list[int]:
        """Per-pair cost for bucketing: the longer side, with its added specials."""
        return [max(len(s), len(t)) + 1 for s, t in zip(self.src, self.tgt)]


# ----- classification ---------------------------------------------------------------------------------
def _label_sort_key(label: str) -> tuple[int, Any]:
    try:
        return (0, int(label))
    except ValueError:
        return (1, label)


def infer_classes(labels: Sequence[str]) -> list[str]:
    """The distinct labels in a stable order: integers numerically ("2" < "10"), then other names sorted."""
    return sorted(set(labels), key=_label_sort_key)


def read_classification_tsv(path: PathLike) -> tuple[list[str], list[str], int]:
    """(texts, labels, first data line number) from a ``label<TAB>text`` TSV, with optional header."""
    lines = read_lines(path)
    header = [f.strip().lower() for f in lines[0].split("\t")]
    label_col, start = 0, 1  # no header: label first
    if len(header) == 2 and "label" in header:  # 'label<TAB>sentence' or GLUE's 'sentence<TAB>label'
        label_col, start = header.index("label"), 2
    texts, labels = [], []
    for i, line in enumerate(lines[start - 1 :], start=start):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(path, f"expected 'label<TAB>text', found {len(fields)} field(s): {line[:60]!r}", line=i,
                            fix="one tab per line between the label and the text (no tabs inside the text)")
        label, text = fields[label_col].strip(), fields[1 - label_col]
        if not label or not text.strip():
            what = "label" if not label else "text"
            raise DataError(path, f"empty {what}", line=i, fix="fill it in or drop the line")
        labels.append(label)
        texts.append(text)
    if not texts:
        raise DataError(path, "has a header but no examples", fix="add 'label<TAB>text' lines")
    return texts, labels, start


class ClassificationDataset(Dataset):
    """Tokenized ``(text, label)`` examples. Item: ``{"index", "ids", "label"}`` with ids wrapped in specials."""

    def __init__(
        self, texts: Sequence[str], label_ids: Sequence[int], tokenizer: Tokenizer, classes: Sequence[str],
        *, max_len: int | None = None,
    ) -> None:
        if len(texts) != len(label_ids):
            raise ValueError(f"{len(texts)} texts but {len(label_ids)} labels")
        self.texts, self.label_ids, self.classes = list(texts), list(label_ids), list(classes)
        self.ids = tokenizer.encode_many(self.texts, add_special_tokens=True, max_length=max_len)
        self.tokenizer = tokenizer

    @classmethod
    def from_tsv(
        cls, path: PathLike, tokenizer: Tokenizer, *, classes: Sequence[str] | None = None, max_len: int | None = None,
    ) -> ClassificationDataset:
        """Load a TSV. ``classes`` fixes the label order (e.g. the training set's); None infers it, sorted."""
        texts, labels, start = read_classification_tsv(path)
        if classes is None:
            classes = infer_classes(labels)
            if len(classes) < 2:
                raise DataError(path, f"only one class ({classes[0]!r}) in the labels", fix="a classifier needs 2+")
        index = {c: k for k, c in enumerate(classes)}
        for i, label in enumerate(labels):
            if label not in index:
                raise DataError(path, f"label {label!r} is not one of the classes {list(classes)}", line=start + i,
                                fix="fix the label, or train with a data set that contains this class")
        return cls(texts, [index[lb] for lb in labels], tokenizer, classes, max_len=max_len)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"index": i, "ids": self.ids[i], "label": self.label_ids[i]}

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    @property
    def num_classes(self) -> int:
        return len(self.classes)
