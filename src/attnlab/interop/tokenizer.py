"""A small wrapper over an HF ``tokenizer.json`` (the `tokenizers` library): batch encoding with padding.

Dimension key: B batch, T padded length.

    tok = load_tokenizer("path/to/dir")              # tokenizer.json (+ tokenizer_config.json, special_tokens_map.json)
    batch = tok(["a sentence", "another one"])       # {"input_ids": (B, T) long, "attention_mask": (B, T) bool,
                                                     #  "token_type_ids": (B, T) long}
    tok.decode(batch["input_ids"][0].tolist())

Normalization, pre-tokenization, the subword model and the special-token template ([CLS] ... [SEP])
all come from ``tokenizer.json``; this wrapper only truncates, pads (right or left) and names the
special tokens. Any padding or truncation stored in ``tokenizer.json`` is ignored in favour of the
per-call arguments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from attnlab.interop.errors import CheckpointError

SPECIAL_NAMES = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token", "bos_token", "eos_token")
_MAX_SANE_LENGTH = 1_000_000  # HF writes 1e30 for "no limit"


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _read_optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    return data if isinstance(data, dict) else {}


class PretrainedTokenizer:
    """Encodes text to padded id tensors with the special tokens of a pretrained model."""

    def __init__(
        self, tokenizer: Any, *, special_tokens: dict[str, str] | None = None, model_max_length: int | None = None
    ) -> None:
        from tokenizers import Tokenizer

        self._tok: Tokenizer = Tokenizer.from_str(tokenizer.to_str())  # a private copy we may reconfigure
        self._tok.no_padding()
        self._tok.no_truncation()
        self.special_tokens = {k: v for k, v in (special_tokens or {}).items() if self._tok.token_to_id(v) is not None}
        self.model_max_length = model_max_length

    @classmethod
    def from_dir(cls, path: str | Path) -> PretrainedTokenizer:
        """Load ``tokenizer.json`` and the special-token names next to it."""
        from tokenizers import Tokenizer

        directory = Path(path)
        file = directory / "tokenizer.json"
        if not file.is_file():
            raise CheckpointError(f"{directory} has no tokenizer.json (slow-tokenizer vocab files are not supported)")
        try:
            tok = Tokenizer.from_file(str(file))
        except Exception as e:  # the Rust library raises its own Exception type
            raise CheckpointError(f"{file}: cannot parse ({e})") from None
        config = _read_optional_json(directory / "tokenizer_config.json")
        specials = {**config, **_read_optional_json(directory / "special_tokens_map.json")}
        names = {k: t for k in SPECIAL_NAMES if (t := _token_text(specials.get(k))) is not None}
        max_len = config.get("model_max_length")
        max_len = max_len if isinstance(max_len, int) and 0 < max_len < _MAX_SANE_LENGTH else None
        return cls(tok, special_tokens=names, model_max_length=max_len)

    # ---- vocabulary --------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self._tok.id_to_token(index)

    def special_id(self, name: str) -> int | None:
        """Id of a special token by role: "pad_token", "cls_token", "mask_token", ..."""
        text = self.special_tokens.get(name)
        return None if text is None else self._tok.token_to_id(text)

    @property
    def pad_id(self) -> int | None:
        return self.special_id("pad_token")

    # ---- encoding ----------------------------------------------------------------------------

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def __call__(
        self,
        texts: str | Sequence[str],
        pairs: Sequence[str] | None = None,
        *,
        max_length: int | None = None,
        padding_side: str = "right",
        add_special_tokens: bool = True,
    ) -> dict[str, Tensor]:
        """Encode a batch: input_ids (B, T) long, attention_mask (B, T) bool, token_type_ids (B, T) long.

        Sequences longer than ``max_length`` (default: the model's ``model_max_length``) are truncated
        with the special tokens kept; shorter ones are padded with the pad token on ``padding_side``.
        """
        batch = [texts] if isinstance(texts, str) else list(texts)
        if pairs is not None and len(pairs) != len(batch):
            raise ValueError(f"got {len(batch)} texts but {len(pairs)} pairs")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        limit = max_length or self.model_max_length
        if limit is not None:
            self._tok.enable_truncation(limit)
        else:
            self._tok.no_truncation()
        inputs = batch if pairs is None else list(zip(batch, pairs))
        encodings = self._tok.encode_batch(inputs, add_special_tokens=add_special_tokens)
        return self._pad([e.ids for e in encodings], [e.type_ids for e in encodings], padding_side)

    def _pad(self, ids: list[list[int]], types: list[list[int]], side: str) -> dict[str, Tensor]:
        T = max((len(x) for x in ids), default=0)
        pad = self.pad_id
        if pad is None and any(len(x) != T for x in ids):
            raise ValueError("this tokenizer has no pad token; encode one text at a time or set special_tokens")
        out = {
            "input_ids": torch.full((len(ids), T), pad or 0, dtype=torch.long),
            "attention_mask": torch.zeros(len(ids), T, dtype=torch.bool),
            "token_type_ids": torch.zeros(len(ids), T, dtype=torch.long),
        }
        for b, (row, row_types) in enumerate(zip(ids, types)):
            cols = slice(0, len(row)) if side == "right" else slice(T - len(row), T)
            out["input_ids"][b, cols] = torch.tensor(row, dtype=torch.long)
            out["token_type_ids"][b, cols] = torch.tensor(row_types, dtype=torch.long)
            out["attention_mask"][b, cols] = True
        return out


def load_tokenizer(path: str | Path) -> PretrainedTokenizer:
    """The tokenizer of an HF-format model directory (needs ``tokenizer.json``)."""
    from attnlab.interop.api import resolve_path

    return PretrainedTokenizer.from_dir(resolve_path(path))
