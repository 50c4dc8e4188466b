"""Tokenizers built on the HuggingFace ``tokenizers`` library: character, byte-level BPE and WordPiece.

Dimension key: B batch, T padded sequence length, V vocabulary size.

Train one on your corpus, save it as ``tokenizer.json`` (readable by HF ``PreTrainedTokenizerFast`` and
``AutoTokenizer``), load it back, or load any HF ``tokenizer.json`` (e.g. a BERT checkpoint's)::

    tok = Tokenizer.train("bpe", ["corpus.txt"], vocab_size=8000)
    batch = tok.encode_batch(["a line", "another line"], add_special_tokens=True)  # ids (B, T), valid (B, T)
    tok.save("out/")                       # out/tokenizer.json + out/tokenizer_config.json
    tok = Tokenizer.load("out/")

Special tokens. Character and BPE vocabularies start with ``<pad> <unk> <bos> <eos>`` (ids 0-3); WordPiece
vocabularies use BERT's ``[PAD] [UNK] [CLS] [SEP] [MASK]``, where ``[CLS]``/``[SEP]`` play the bos/eos roles.
``add_special_tokens=True`` wraps a sequence as ``bos … eos`` (or through the tokenizer's own post-processor,
e.g. ``[CLS] … [SEP]``). As in HF, a special token's literal text inside the input is read as that token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tokenizers
import torch
from tokenizers import (
    AddedToken,
    Regex,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from torch import Tensor

from attnlab.data.io import PathLike, iter_text_chunks

TokenizerKind = Literal["char", "bpe", "wordpiece"]
KINDS: tuple[str, ...] = ("char", "bpe", "wordpiece")

GPT_SPECIALS = {"pad": "<pad>", "unk": "<unk>", "bos": "<bos>", "eos": "<eos>"}
BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "bos": "[CLS]", "eos": "[SEP]", "mask": "[MASK]"}
# names recognised when a tokenizer.json comes without a tokenizer_config.json
_ROLE_GUESSES = {
    "pad": ("<pad>", "[PAD]", "<|pad|>"),
    "unk": ("<unk>", "[UNK]"),
    "bos": ("<bos>", "<s>", "[CLS]", "<|endoftext|>"),
    "eos": ("<eos>", "</s>", "[SEP]", "<|endoftext|>"),
    "mask": ("<mask>", "[MASK]"),
}
# tokenizer_config.json keys (HF) for each role, most specific first
_CONFIG_KEYS = {"pad": ("pad_token",), "unk": ("unk_token",), "bos": ("bos_token", "cls_token"),
                "eos": ("eos_token", "sep_token"), "mask": ("mask_token",)}


@dataclass
class EncodedBatch:
    """Padded token ids and their validity mask: ``ids`` (B, T) long, ``valid`` (B, T) bool (True = real token)."""

    ids: Tensor
    valid: Tensor

    @property
    def lengths(self) -> Tensor:
        return self.valid.sum(dim=1)  # (B,)


def pad_sequences(
    seqs: Sequence[Sequence[int]], pad_id: int, *, side: Literal["right", "left"] = "right",
    length: int | None = None,
) -> EncodedBatch:
    """Pad ragged id lists into ``ids`` (B, T) and ``valid`` (B, T), T = ``length`` or the longest."""
    if side not in ("right", "left"):
        raise ValueError(f"padding side must be 'right' or 'left', got {side!r}")
    T = max((len(s) for s in seqs), default=0) if length is None else length
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)  # (B, T)
    valid = torch.zeros((len(seqs), T), dtype=torch.bool)  # (B, T)
    for b, s in enumerate(seqs):
        n = len(s)
        if n > T:
            raise ValueError(f"sequence {b} has {n} tokens, more than the padded length {T}")
        if n:
            cols = slice(0, n) if side == "right" else slice(T - n, T)
            ids[b, cols] = torch.as_tensor(s, dtype=torch.long)
            valid[b, cols] = True
    return EncodedBatch(ids, valid)


class Tokenizer:
    """A trained ``tokenizers.Tokenizer`` plus the roles of its special tokens and its kind."""

    def __init__(
        self, backend: tokenizers.Tokenizer, *, kind: str, specials: dict[str, str], model_max_length: int | None = None
    ) -> None:
        backend.no_padding()  # padding and truncation are done here, per call, never as hidden state
        backend.no_truncation()
        self.backend = backend
        self.kind = kind
        self.specials = {role: tok for role, tok in specials.items() if backend.token_to_id(tok) is not None}
        if "pad" not in self.specials:
            raise ValueError(f"tokenizer has no padding token (looked for {specials.get('pad')!r}); add one")
        self.model_max_length = model_max_length

    # ----- special ids ---------------------------------------------------------------------------
    def _id(self, role: str) -> int | None:
        tok = self.specials.get(role)
        return None if tok is None else self.backend.token_to_id(tok)

    @property
    def pad_id(self) -> int:
        return self.backend.token_to_id(self.specials["pad"])

    @property
    def unk_id(self) -> int | None:
        return self._id("unk")

    @property
    def bos_id(self) -> int | None:
        return self._id("bos")

    @property
    def eos_id(self) -> int | None:
        return self._id("eos")

    @property
    def mask_id(self) -> int | None:
        return self._id("mask")

    @property
    def special_ids(self) -> set[int]:
        return {self.backend.token_to_id(t) for t in self.specials.values()}

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, specials={self.specials})"

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self.backend.id_to_token(i)

    # ----- encode / decode -----------------------------------------------------------------------
    def _finish(self, enc: tokenizers.Encoding, add_special_tokens: bool, max_length: int | None) -> list[int]:
        """Truncate one special-free encoding so that, with specials added, it fits ``max_length``."""
        uses_processor = self.backend.post_processor is not None
        n_special = 0
        if add_special_tokens:
            n_special = (self.backend.num_special_tokens_to_add(False) if uses_processor
                         else int(self.bos_id is not None) + int(self.eos_id is not None))
        if max_length is not None:
            if max_length <= n_special:
                raise ValueError(f"max_length={max_length} leaves no room for text next to {n_special} special tokens")
            enc.truncate(max_length - n_special)
        if not add_special_tokens:
            return list(enc.ids)
        if uses_processor:
            return list(self.backend.post_process(enc, None, True).ids)
        bos = [] if self.bos_id is None else [self.bos_id]
        eos = [] if self.eos_id is None else [self.eos_id]
        return bos + list(enc.ids) + eos

    def encode(self, text: str, *, add_special_tokens: bool = False, max_length: int | None = None) -> list[int]:
        """Token ids of ``text``; with ``add_special_tokens`` wrapped as ``bos … eos``; at most ``max_length``."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}; use encode_batch for lists")
        return self._finish(self.backend.encode(text, add_special_tokens=False), add_special_tokens, max_length)

    def encode_many(
        self, texts: Sequence[str], *, add_special_tokens: bool = False, max_length: int | None = None
    ) -> list[list[int]]:
        """Unpadded ids for many texts (encoded in parallel by the Rust backend)."""
        encs = self.backend.encode_batch(list(texts), add_special_tokens=False)
        return [self._finish(e, add_special_tokens, max_length) for e in encs]

    def encode_batch(
        self, texts: Sequence[str], *, add_special_tokens: bool = False, max_length: int | None = None,
        padding_side: Literal["right", "left"] = "right",
    ) -> EncodedBatch:
        """Padded ``ids`` (B, T) and ``valid`` (B, T); left padding is what batched generation wants."""
        seqs = self.encode_many(texts, add_special_tokens=add_special_tokens, max_length=max_length)
        return pad_sequences(seqs, self.pad_id, side=padding_side)

    def decode(self, ids: Sequence[int] | Tensor, *, skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` (list or 1-D tensor); special tokens (padding included) are dropped by default."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def decode_batch(self, ids: Sequence[Sequence[int]] | Tensor, *, skip_special_tokens: bool = True) -> list[str]:
        """Texts of a batch: a (B, T) tensor or a list of id lists."""
        rows = ids.tolist() if isinstance(ids, Tensor) else [list(r) for r in ids]
        return self.backend.decode_batch(rows, skip_special_tokens=skip_special_tokens)

    # ----- persistence ---------------------------------------------------------------------------
    def hf_config(self) -> dict[str, Any]:
        """The ``tokenizer_config.json`` that lets HF ``AutoTokenizer.from_pretrained(dir)`` load this tokenizer."""
        keys = {"pad": "pad_token", "unk": "unk_token", "mask": "mask_token"}
        if self.kind == "wordpiece" or self.specials.get("bos") == "[CLS]":
            keys.update(bos="cls_token", eos="sep_token")
        else:
            keys.update(bos="bos_token", eos="eos_token")
        cfg: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "attnlab_kind": self.kind}
        cfg.update({keys[role]: tok for role, tok in self.specials.items() if role in keys})
        if self.model_max_length is not None:
            cfg["model_max_length"] = self.model_max_length
        return cfg

    def save(self, path: PathLike) -> Path:
        """Write ``tokenizer.json`` (+ ``tokenizer_config.json`` when ``path`` is a folder); returns the json path."""
        p = Path(path)
        if p.suffix == ".json":
            p.parent.mkdir(parents=True, exist_ok=True)
            self.backend.save(str(p))
            return p
        p.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(p / "tokenizer.json"))
        (p / "tokenizer_config.json").write_text(json.dumps(self.hf_config(), indent=2) + "\n")
        return p / "tokenizer.json"

    @classmethod
    def load(cls, path: PathLike) -> Tokenizer:
        """Load a ``tokenizer.json`` file, or a folder holding one (and optionally ``tokenizer_config.json``)."""
        p = Path(path)
        file = p / "tokenizer.json" if p.is_dir() else p
        if not file.is_file():
            raise FileNotFoundError(
                f"{file}: no tokenizer.json here; train one with Tokenizer.train or `attnlab train`"
            )
        try:
            backend = tokenizers.Tokenizer.from_file(str(file))
        except Exception as e:  # the Rust side raises a bare Exception on malformed JSON
            raise ValueError(f"{file}: not a valid tokenizer.json ({e})") from e
        cfg_file = file.parent / "tokenizer_config.json"
        cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
        specials = _resolve_specials(backend, cfg)
        kind = cfg.get("attnlab_kind") or _guess_kind(backend)
        max_len = cfg.get("model_max_length")
        max_len = max_len if isinstance(max_len, int) and max_len < 1_000_000 else None
        return cls(backend, kind=kind, specials=specials, model_max_length=max_len)

    # ----- training ------------------------------------------------------------------------------
    @classmethod
    def train(
        cls, kind: TokenizerKind, files: Sequence[PathLike] | None = None, *, texts: Iterable[str] | None = None,
        vocab_size: int = 8000, min_frequency: int = 2, lowercase: bool = True, show_progress: bool = False,
    ) -> Tokenizer:
        """Train a ``kind`` tokenizer on text ``files`` (plain or .gz) and/or an iterable of ``texts``.

        ``vocab_size`` and ``min_frequency`` apply to BPE and WordPiece (a character vocabulary is every
        character seen); ``lowercase`` applies to WordPiece (BERT uncased style).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown tokenizer kind {kind!r}; choose one of {KINDS}")
        if files is None and texts is None:
            raise ValueError("Tokenizer.train needs files=[...] or texts=[...] to learn from")
        stream = _chain(iter_text_chunks(list(files or [])), texts or [])
        if kind == "char":
            return train_char(stream)
        if kind == "bpe":
            return train_bpe(stream, vocab_size=vocab_size, min_frequency=min_frequency, show_progress=show_progress)
        return train_wordpiece(
            stream, vocab_size=vocab_size, min_frequency=min_frequency, lowercase=lowercase,
            show_progress=show_progress,
        )


def _chain(*parts: Iterable[str]) -> Iterable[str]:
    for part in parts:
        yield from part


def _added(tokens: Iterable[str]) -> list[AddedToken]:
    return [AddedToken(t, special=True, normalized=False) for t in tokens]


def train_char(texts: Iterable[str]) -> Tokenizer:
    """Character vocabulary: ``<pad> <unk> <bos> <eos>`` then every character seen, in code-point order."""
    chars: set[str] = set()
    for t in texts:
        chars.update(t)
    specials = list(GPT_SPECIALS.values())
    chars -= set(specials)
    if not chars:
        raise ValueError("no characters to build a vocabulary from: the training text is empty")
    vocab = {tok: i for i, tok in enumerate(specials + sorted(chars))}
    backend = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token=GPT_SPECIALS["unk"]))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per char
    backend.decoder = decoders.Fuse()  # join characters back without separators
    backend.add_special_tokens(_added(specials))
    return Tokenizer(backend, kind="char", specials=dict(GPT_SPECIALS))


def train_bpe(
    texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2, show_progress: bool = False
) -> Tokenizer:
    """Byte-level BPE (GPT-2 style): no unknown tokens, exact round trip of any text."""
    backend = tokenizers.Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=_added(GPT_SPECIALS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(backend, kind="bpe", specials=dict(GPT_SPECIALS))


def train_wordpiece(
    texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2, lowercase: bool = True,
    show_progress: bool = False,
) -> Tokenizer:
    """BERT-style WordPiece: normalizer, whitespace/punctuation split, ``##`` continuations, ``[CLS] … [SEP]``."""
    s = BERT_SPECIALS
    backend = tokenizers.Tokenizer(models.WordPiece(unk_token=s["unk"]))
    backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    order = [s["pad"], s["unk"], s["bos"], s["eos"], s["mask"]]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=_added(order), show_progress=show_progress,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = backend.token_to_id(s["bos"]), backend.token_to_id(s["eos"])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{s['bos']} $A {s['eos']}", pair=f"{s['bos']} $A {s['eos']} $B:1 {s['eos']}:1",
        special_tokens=[(s["bos"], cls_id), (s["eos"], sep_id)],
    )
    return Tokenizer(backend, kind="wordpiece", specials=dict(s))


def _resolve_specials(backend: tokenizers.Tokenizer, cfg: dict[str, Any]) -> dict[str, str]:
    """Special-token roles from an HF ``tokenizer_config.json``, else from well-known token names."""
    out: dict[str, str] = {}
    for role, keys in _CONFIG_KEYS.items():
        for key in keys:
            tok = cfg.get(key)
            tok = tok.get("content") if isinstance(tok, dict) else tok
            if isinstance(tok, str) and backend.token_to_id(tok) is not None:
                out[role] = tok
                break
        else:
            guess = next((t for t in _ROLE_GUESSES[role] if backend.token_to_id(t) is not None), None)
            if guess is not None:
                out[role] = guess
    if "pad" not in out and "eos" in out:  # GPT-2 style checkpoints pad with their end-of-text token
        out["pad"] = out["eos"]
    return out


def _guess_kind(backend: tokenizers.Tokenizer) -> str:
    model = type(backend.model).__name__
    if model == "WordLevel" and isinstance(backend.decoder, decoders.Fuse):
        return "char"
    return {"BPE": "bpe", "WordPiece": "wordpiece"}.get(model, model.lower())
