"""Model inputs from text (or an image) for every family, with the token labels the views show.

Dimension key: B batch (1 here), T input / target length, S source length, C channels,
Hi x Wi image size, P patches.

:func:`prepare_inputs` turns a sentence into the call a model expects, by model kind:

    decoder          GPT: ids (1, T) with BOS prepended when the config has one; optionally
                     continued greedily so that the decoder-step view has generated tokens
    encoder          BERT / DistilBERT: [CLS] text [SEP] through the tokenizer's template
    encoder-decoder  Transformer / T5: source = text + EOS; target = ``target`` text, or a greedy
                     translation of up to ``max_new_tokens`` (default 32) tokens, after the decoder
                     start token
    vision           ViT: an image resized and normalized to pixel_values (1, C, Hi, Wi)

and records, for each side ("input", "source", "target", "patches"), the ids, readable labels,
which tokens are delimiters ([CLS]/[SEP]/BOS/EOS/punctuation) and a rarity score used by the
rare-word head detector. :meth:`PreparedInputs.group_sides` says which side the queries and keys of
each attention group come from.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from attnlab.interp.sites import AttentionSite, attention_sites

MODEL_KINDS = ("decoder", "encoder", "encoder-decoder", "vision")
DEFAULT_TRANSLATION_TOKENS = 32  # greedy target length when an encoder-decoder gets no target text
_KIND_OVERRIDES: dict[type, str] = {}


class TextTokenizer(Protocol):
    """What the views need from a tokenizer (both attnlab tokenizer wrappers qualify)."""

    def encode(self, text: str, *, add_special_tokens: bool = ...) -> list[int]: ...

    def id_to_token(self, index: int) -> str | None: ...


def register_model_kind(model_class: type, kind: str) -> None:
    """Declare the kind of a model class whose structure :func:`model_kind` cannot read."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {MODEL_KINDS}")
    _KIND_OVERRIDES[model_class] = kind


def model_kind(model: nn.Module) -> str:
    """"decoder", "encoder", "encoder-decoder" or "vision", read from the model's structure."""
    for cls in type(model).__mro__:
        if cls in _KIND_OVERRIDES:
            return _KIND_OVERRIDES[cls]
    config = getattr(model, "config", None)
    if hasattr(model, "encode") and hasattr(model, "decode") or any(s.kind == "cross" for s in attention_sites(model)):
        return "encoder-decoder"
    if config is not None and getattr(config, "image_size", None) is not None:
        return "vision"
    if hasattr(model, "new_kv_caches"):
        return "decoder"
    return "encoder"


# ------------------------------------------------------------------------------------------------
# token labels, delimiters, rarity
# ------------------------------------------------------------------------------------------------

_MARKERS = {"Ġ": " ", "▁": " ", "Ċ": "⏎", "ĉ": "⇥"}


def token_label(token: str | None, index: int) -> str:
    """A readable label: byte-level BPE and SentencePiece space markers shown as spaces."""
    if token is None:
        return f"<{index}>"
    for mark, text in _MARKERS.items():
        token = token.replace(mark, text)
    return token


def special_token_ids(tokenizer: Any, config: Any = None) -> set[int]:
    """Ids of the special tokens, from the tokenizer's roles and the model config's bos/eos/pad/sep."""
    ids: set[int] = set()
    if isinstance(getattr(tokenizer, "special_ids", None), (set, frozenset, list)):
        ids |= set(tokenizer.special_ids)
    named = getattr(tokenizer, "special_tokens", None)
    for text in named.values() if isinstance(named, Mapping) else ():
        i = tokenizer.token_to_id(text)
        if i is not None:
            ids.add(i)
    for name in ("bos_id", "eos_id", "pad_id", "sep_id", "cls_id", "decoder_start_id"):
        value = getattr(config, name, None) if config is not None else None
        if isinstance(value, int):
            ids.add(value)
    return ids


def is_punctuation(label: str) -> bool:
    """True for labels made only of punctuation (after stripping spaces and subword markers)."""
    text = label.strip().removeprefix("##")
    return bool(text) and all(unicodedata.category(ch).startswith("P") for ch in text)


@dataclass
class TokenSide:
    """One sequence the model reads: ids (1, T) (None for image patches), labels, delimiters, rarity."""

    labels: list[str]
    ids: Tensor | None = None
    delimiter: Tensor | None = None  # (1, T) bool
    rarity: Tensor | None = None  # (1, T) float, higher = rarer; -inf = never a rare-word target

    def __len__(self) -> int:
        return len(self.labels)


def make_side(
    ids: Sequence[int], tokenizer: TextTokenizer | None, specials: set[int], vocab_size: int,
    token_counts: Mapping[str, int] | None = None,
) -> TokenSide:
    """Labels, delimiters and rarity for ``ids``.

    Rarity is -log(count + 1) when ``token_counts`` (token -> corpus count) is given; otherwise the
    token id over the vocabulary size, a proxy that holds for BPE and WordPiece vocabularies, whose
    later entries are the rarer merges. Special tokens and punctuation are never rare-word targets.
    """
    raw = [tokenizer.id_to_token(int(i)) if tokenizer is not None else str(int(i)) for i in ids]
    labels = [token_label(t, int(i)) for t, i in zip(raw, ids, strict=True)]
    delim = [int(i) in specials or is_punctuation(lab) for i, lab in zip(ids, labels, strict=True)]
    if token_counts is not None:
        rarity = [-math.log(token_counts.get(t or "", 0) + 1.0) for t in raw]
    else:
        rarity = [int(i) / max(vocab_size, 1) for i in ids]
    rarity = [-math.inf if d else r for r, d in zip(rarity, delim, strict=True)]
    return TokenSide(
        labels=labels, ids=torch.tensor([list(map(int, ids))], dtype=torch.long),
        delimiter=torch.tensor([delim]), rarity=torch.tensor([rarity], dtype=torch.float32),
    )


# ------------------------------------------------------------------------------------------------
# prepared inputs
# ------------------------------------------------------------------------------------------------


@dataclass
class PreparedInputs:
    """A ready model call (``model(*args, **kwargs)``) and what its sequences hold."""

    kind: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    sides: dict[str, TokenSide] = field(default_factory=dict)
    image: Any = None  # (Hi, Wi, C) float array in [0, 1], for drawing patch attention
    grid: tuple[int, int] | None = None  # (rows, cols) of image patches
    prefix: int = 0  # tokens before the patches ([CLS], distillation token)
    prompt_len: int | None = None  # decoder side: tokens given before the generated ones

    def group_sides(self, sites: Sequence[AttentionSite]) -> dict[str, tuple[str, str]]:
        """{group: (query side, key side)} for the attention groups of ``sites``."""
        decoder_stacks = {s.stack for s in sites if s.kind == "cross"}
        out: dict[str, tuple[str, str]] = {}
        for s in sites:
            if self.kind == "encoder-decoder":
                if s.stack in decoder_stacks:
                    out[s.group] = ("target", "source" if s.kind == "cross" else "target")
                else:
                    out[s.group] = ("source", "source")
            else:
                side = "patches" if self.kind == "vision" else "input"
                out[s.group] = (side, side)
        return out


def _config_id(config: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


@torch.no_grad()
def greedy_continue(model: nn.Module, ids: Tensor, n: int, eos_id: int | None, max_len: int | None) -> Tensor:
    """Append up to ``n`` greedy tokens to a decoder-only prompt (1, T) (stops at EOS or max_len)."""
    for _ in range(n):
        if max_len is not None and ids.shape[1] >= max_len:
            break
        nxt = model(ids)[:, -1].argmax(-1, keepdim=True)  # (1, 1)
        ids = torch.cat([ids, nxt], dim=1)  # (1, T + 1)
        if eos_id is not None and int(nxt) == eos_id:
            break
    return ids


@torch.no_grad()
def greedy_translate(model: nn.Module, src: Tensor, start_id: int, n: int, eos_id: int | None) -> Tensor:
    """tgt_in (1, 1 + generated) for an encoder-decoder: the start token and a greedy translation."""
    valid = torch.ones_like(src, dtype=torch.bool)
    memory = model.encode(src, valid)
    ys = torch.tensor([[start_id]], device=src.device)
    for _ in range(n):
        nxt = model.decode(ys, memory, valid)[:, -1].argmax(-1, keepdim=True)  # (1, 1)
        ys = torch.cat([ys, nxt], dim=1)
        if eos_id is not None and int(nxt) == eos_id:
            break
    return ys


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def prepare_inputs(
    model: nn.Module,
    tokenizer: TextTokenizer | None,
    text: str | None = None,
    *,
    target: str | None = None,
    image: str | Path | None = None,
    max_new_tokens: int = 0,
    bos: bool = True,
    token_counts: Mapping[str, int] | None = None,
) -> PreparedInputs:
    """The model call for ``text`` (or ``image``) and its token sides; see the module docstring."""
    kind = model_kind(model)
    if kind == "vision":
        if image is None:
            raise ValueError("this is a vision model: pass an image (--image PATH), not text")
        return prepare_image(model, image)
    if text is None or not text.strip():
        raise ValueError("pass the text to run the model on (--text \"...\")")
    if tokenizer is None:
        raise ValueError("a tokenizer is needed to turn text into ids; save tokenizer.json next to the model")
    config, device = getattr(model, "config", None), _device(model)
    specials = special_token_ids(tokenizer, config)
    vocab = int(getattr(config, "vocab_size", 0) or getattr(tokenizer, "vocab_size", 0) or 1)

    def side(ids: Sequence[int]) -> TokenSide:
        return make_side(ids, tokenizer, specials, vocab, token_counts)

    if kind == "encoder":
        ids = tokenizer.encode(text, add_special_tokens=True)
        x = torch.tensor([ids], device=device)
        valid = torch.ones_like(x, dtype=torch.bool)
        return PreparedInputs(kind, (x,), {"attention_mask": valid}, {"input": side(ids)})
    if kind == "decoder":
        ids = tokenizer.encode(text, add_special_tokens=False)
        bos_id = _config_id(config, "bos_id")
        if bos and bos_id is not None:
            ids = [bos_id, *ids]
        x = torch.tensor([ids], device=device)
        prompt_len = x.shape[1]
        if max_new_tokens > 0:
            eos_id, max_len = _config_id(config, "eos_id"), getattr(config, "max_len", None)
            x = greedy_continue(model, x, max_new_tokens, eos_id, max_len)
        return PreparedInputs(kind, (x,), {}, {"input": side(x[0].tolist())}, prompt_len=prompt_len)
    return _prepare_seq2seq(model, tokenizer, text, target, max_new_tokens, side, device)


def _prepare_seq2seq(model: nn.Module, tokenizer: TextTokenizer, text: str, target: str | None,
                     max_new_tokens: int, side: Callable[[Sequence[int]], TokenSide],
                     device: torch.device) -> PreparedInputs:
    config = getattr(model, "config", None)
    eos_id = _config_id(config, "eos_id")
    src_ids = tokenizer.encode(text, add_special_tokens=False) + ([eos_id] if eos_id is not None else [])
    src = torch.tensor([src_ids], device=device)
    start = _config_id(config, "decoder_start_id", "bos_id", "pad_id")
    if start is None:
        raise ValueError("the model config names no decoder start token (decoder_start_id, bos_id or pad_id)")
    if target is not None:
        tgt = torch.tensor([[start, *tokenizer.encode(target, add_special_tokens=False)]], device=device)
    else:
        tgt = greedy_translate(model, src, start, max_new_tokens or DEFAULT_TRANSLATION_TOKENS, eos_id)
    return PreparedInputs(
        "encoder-decoder", (src, tgt), {}, {"source": side(src_ids), "target": side(tgt[0].tolist())}, prompt_len=1,
    )


def _vision_geometry(config: Any) -> tuple[int, int, int]:
    """(image size, patch size, channels) from a ViT-style config."""
    size = getattr(config, "image_size", None)
    patch = getattr(config, "patch_size", None)
    channels = _config_id(config, "num_channels", "n_channels", "in_channels") or 3
    if not isinstance(size, int) or not isinstance(patch, int):
        raise ValueError("a vision model's config needs integer image_size and patch_size")
    return size, patch, int(channels)


def load_image(path: str | Path, size: int, channels: int = 3, mean: Sequence[float] = (0.5,) * 3,
               std: Sequence[float] = (0.5,) * 3) -> tuple[Tensor, Any]:
    """(pixel_values (1, C, size, size), the resized image as an (size, size, C) array in [0, 1])."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is in the serve extra
        raise ImportError("reading images needs pillow: pip install pillow") from None
    import numpy as np

    img = Image.open(path).convert("RGB" if channels == 3 else "L").resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr[..., None] if arr.ndim == 2 else arr  # (size, size, C)
    m = torch.tensor(list(mean)[:channels]).view(channels, 1, 1)
    s = torch.tensor(list(std)[:channels]).view(channels, 1, 1)
    pixels = (torch.from_numpy(arr).permute(2, 0, 1) - m) / s  # (C, size, size)
    return pixels[None], arr


def prepare_image(model: nn.Module, image: str | Path) -> PreparedInputs:
    """pixel_values for a ViT-style model, and patch labels (prefix tokens first: [CLS], ...)."""
    config = getattr(model, "config", None)
    size, patch, channels = _vision_geometry(config)
    mean = getattr(config, "image_mean", None) or (0.5,) * channels
    std = getattr(config, "image_std", None) or (0.5,) * channels
    pixels, arr = load_image(image, size, channels, mean, std)
    rows = size // patch
    n_prefix = int(getattr(config, "n_prefix_tokens", 1))
    patches = [f"r{r}c{c}" for r in range(rows) for c in range(rows)]
    labels = ["[CLS]"] + [f"[{i}]" for i in range(1, n_prefix)] + patches
    delimiter = torch.tensor([[i < n_prefix for i in range(len(labels))]])
    return PreparedInputs(
        "vision", (pixels.to(_device(model)),), {}, {"patches": TokenSide(labels, delimiter=delimiter)},
        image=arr, grid=(rows, rows), prefix=n_prefix,
    )
