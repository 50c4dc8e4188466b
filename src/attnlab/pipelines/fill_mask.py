"""``pipeline("fill-mask")``: the most likely tokens for each mask token, with a masked-LM (BERT).

Dimension key: B texts, T padded tokens, V vocabulary, M mask tokens in one text, K top_k.

    fill = attnlab.pipeline("fill-mask", model="bert-mlm-folder")
    fill("paris is the [MASK] of france.")     # [{"score", "token", "token_str", "sequence"}] * 5
    fill("the [MASK] sat on the [MASK].")      # one such list per mask: [[...], [...]]
    fill("the [MASK] sat.", targets=["cat", "dog"])   # scores of these tokens only

Exactly as HF transformers: scores are the softmax over the vocabulary at the mask; ``token_str`` is
the decoded token; ``sequence`` is the text with that mask filled in, decoded without padding
(special tokens are kept when the text has several masks, so the other masks stay visible).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from attnlab.pipelines.base import Pipeline, check_top_k


class FillMaskPipeline(Pipeline):
    """Returns ``top_k`` candidates per mask token; see the module docstring for the layout."""

    task = "fill-mask"

    def __init__(self, model: Any, tokenizer: Any = None, **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        tok = self._require_tokenizer()
        if getattr(tok, "mask_id", None) is None:
            raise ValueError("fill-mask needs a tokenizer with a mask token (e.g. [MASK]) in tokenizer.json")

    @property
    def mask_token(self) -> str:
        return self.tokenizer.id_to_token(self.tokenizer.mask_id)

    def _check_item(self, item: Any, index: int) -> None:
        super()._check_item(item, index)
        if self.mask_token not in item:
            raise ValueError(f"fill-mask: input {index} has no mask token {self.mask_token!r}: {item[:80]!r}")

    def _check_params(self, *, top_k: int = 5, targets: str | list[str] | None = None,
                      max_length: int | None = None) -> dict[str, Any]:
        target_ids = None if targets is None else self._target_ids(targets)
        k = check_top_k(top_k)
        if target_ids is not None:
            k = min(k, len(target_ids))
        return {"top_k": k, "targets": target_ids, "max_length": self._text_limit(max_length)}

    def _target_ids(self, targets: str | list[str]) -> Tensor:
        words = [targets] if isinstance(targets, str) else list(targets)
        if not words or not all(isinstance(w, str) and w for w in words):
            raise ValueError(f"targets must be a non-empty string or list of non-empty strings, got {targets!r}")
        ids = []
        for word in words:
            found = self.tokenizer.token_to_id(word)
            if found is None:
                pieces = self.tokenizer.encode(word, add_special_tokens=False)
                if not pieces:
                    raise ValueError(f"target {word!r} encodes to no token")
                warnings.warn(f"target {word!r} is not one token; using its first piece "
                              f"{self.tokenizer.id_to_token(pieces[0])!r}", stacklevel=3)
                found = pieces[0]
            ids.append(found)
        return torch.tensor(sorted(set(ids)), dtype=torch.long)

    def _run_batch(self, items: list[str], params: dict[str, Any]) -> list[list[Any]]:
        ids, valid, rows = self._encode_padded(items, max_length=params["max_length"])  # (B, T)
        logits = self.model(ids, attention_mask=valid)  # (B, T, V)
        results = []
        for b, row in enumerate(rows):
            positions = [t for t, token in enumerate(row) if token == self.tokenizer.mask_id]
            if not positions:
                raise ValueError(f"fill-mask: the mask token of input {items[b][:80]!r} was cut off by truncation")
            probs = logits[b, positions].float().softmax(-1)  # (M, V)
            per_mask = [self._candidates(row, pos, p, params, single=len(positions) == 1)
                        for pos, p in zip(positions, probs)]
            results.append(per_mask[0] if len(per_mask) == 1 else per_mask)
        return results

    def _candidates(self, row: list[int], position: int, probs: Tensor, params: dict[str, Any],
                    *, single: bool) -> list[dict[str, Any]]:
        targets = params["targets"]
        if targets is not None:
            probs = probs[targets.to(probs.device)]  # (n_targets,)
        values, index = probs.topk(params["top_k"])  # (K,)
        out = []
        for value, i in zip(values.tolist(), index.tolist()):
            token = int(targets[i]) if targets is not None else int(i)
            filled = list(row)
            filled[position] = token
            sequence = self.tokenizer.decode(filled, skip_special_tokens=single)
            token_str = self.tokenizer.decode([token], skip_special_tokens=False)
            out.append({"score": value, "token": token, "token_str": token_str, "sequence": sequence})
        return out
