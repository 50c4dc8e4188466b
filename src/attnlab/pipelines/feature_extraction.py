"""``pipeline("feature-extraction")``: hidden states per token, or one pooled vector per text.

Dimension key: B texts, T padded tokens, D model width.

    fe = attnlab.pipeline("feature-extraction", model=minilm_folder)
    fe("a sentence")                                  # [[[...D floats...] * T]]  (HF's layout: 1 x T x D)
    fe("a sentence", pooling="mean", normalize=True)  # [...D floats...]
    emb = attnlab.pipeline("feature-extraction", model=minilm_folder, pooling="auto")
    emb(["a", "b"])                                   # what sentence-transformers' encode() returns

Per-token output is the encoder's last hidden states (GPT: after the final norm; T5 and the
Transformer: the encoder output), special tokens included, as HF transformers returns them.
``pooling``: ``None`` (per token), ``"mean"`` (over real tokens), ``"cls"`` (first token), ``"max"``
(over real tokens), or ``"auto"``: the pooling, normalization and length limit of a
sentence-transformers folder (``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``). ``return_tensors=True`` returns tensors instead of lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from attnlab.generation.runners import is_encoder_decoder
from attnlab.models.bert import mean_pool
from attnlab.pipelines.base import Pipeline, encode_rows, pad_right

POOLINGS = (None, "mean", "cls", "max", "auto")


def sentence_transformers_settings(folder: Path | None) -> dict[str, Any]:
    """{"pooling", "normalize", "max_length"} from a sentence-transformers folder's JSON files."""
    modules_file = None if folder is None else folder / "modules.json"
    if modules_file is None or not modules_file.is_file():
        raise ValueError(
            f"pooling='auto' reads a sentence-transformers folder (modules.json), and {folder} has none; "
            "choose pooling='mean', 'cls' or 'max' (and normalize=True for unit vectors)"
        )
    modules = json.loads(modules_file.read_text())
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1]: str(m.get("path", "")) for m in modules if isinstance(m, dict)}
    pooling = "mean"
    if "Pooling" in kinds:
        sub = kinds["Pooling"]
        if Path(sub).name != sub or sub in ("", ".", ".."):
            raise ValueError(f"{modules_file}: Pooling path {sub!r} must be a folder name inside {folder}")
        cfg = json.loads((folder / sub / "config.json").read_text())
        modes = [m for m, key in (("cls", "pooling_mode_cls_token"), ("mean", "pooling_mode_mean_tokens"),
                                  ("max", "pooling_mode_max_tokens")) if cfg.get(key)]
        if len(modes) != 1:
            raise ValueError(f"{folder / sub / 'config.json'}: pooling {modes or 'none'} is not supported; "
                             "one of cls/mean/max tokens is")
        pooling = modes[0]
    bert_cfg = folder / "sentence_bert_config.json"
    max_length = json.loads(bert_cfg.read_text()).get("max_seq_length") if bert_cfg.is_file() else None
    return {"pooling": pooling, "normalize": "Normalize" in kinds, "max_length": max_length}


def pool(hidden: Tensor, valid: Tensor, how: str) -> Tensor:
    """hidden (B, T, D), valid (B, T) -> (B, D)."""
    if how == "mean":
        return mean_pool(hidden, valid)  # (B, D)
    if how == "cls":
        return hidden[:, 0]  # (B, D)
    masked = hidden.masked_fill(~valid.bool().unsqueeze(-1), float("-inf"))  # (B, T, D)
    return masked.max(dim=1).values  # (B, D)


class FeatureExtractionPipeline(Pipeline):
    """Returns HF's 1 x T x D nested list per text, or a D-vector with ``pooling``."""

    task = "feature-extraction"

    def __init__(self, model: Any, tokenizer: Any = None, *, pooling: str | None = None, normalize: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(model, tokenizer, **kwargs)
        self.pooling, self.normalize = self._check_pooling(pooling), bool(normalize)

    @staticmethod
    def _check_pooling(pooling: Any) -> str | None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        return pooling

    def _check_params(self, *, pooling: str | None = "default", normalize: bool | None = None,
                      return_tensors: bool = False, max_length: int | None = None) -> dict[str, Any]:
        how = self.pooling if pooling == "default" else self._check_pooling(pooling)
        norm = self.normalize if normalize is None else bool(normalize)
        if how == "auto":
            st = sentence_transformers_settings(self.model_dir)
            how, norm = st["pooling"], norm or st["normalize"]
            max_length = max_length or st["max_length"]
        if norm and how is None:
            raise ValueError("normalize=True needs a pooled vector; set pooling='mean', 'cls', 'max' or 'auto'")
        return {"pooling": how, "normalize": norm, "return_tensors": bool(return_tensors),
                "max_length": self._text_limit(max_length)}

    def _encode(self, items: list[str], max_length: int | None) -> tuple[Tensor, Tensor]:
        if is_encoder_decoder(self.model) or callable(getattr(self.model, "new_kv_caches", None)):
            rows = encode_rows(self._require_tokenizer(), items, add_special_tokens=False, max_length=None)
            eos = getattr(self.model.config, "eos_id", None) if is_encoder_decoder(self.model) else None
            keep = (max_length or 10**9) - (eos is not None)
            rows = [r[:keep] + ([int(eos)] if eos is not None else []) for r in rows]
            pad = getattr(self.model.config, "pad_id", None) or 0
            ids, valid = pad_right(rows, pad)
            return ids.to(self.device), valid.to(self.device)
        ids, valid, _ = self._encode_padded(items, max_length=max_length)
        return ids, valid

    def hidden_states(self, ids: Tensor, valid: Tensor) -> Tensor:
        """The last hidden states (B, T, D) of the model for ids (B, T) with validity (B, T)."""
        if is_encoder_decoder(self.model):
            return self.model.encode(ids, valid)  # (B, T, D)
        if callable(getattr(self.model, "new_kv_caches", None)):  # decoder-only: final-norm output
            return self.model.forward_with_hidden(ids, attention_mask=valid)[1][-1]  # (B, T, D)
        return self.model(ids, attention_mask=valid)  # (B, T, D)

    def _run_batch(self, items: list[str], params: dict[str, Any]) -> list[Any]:
        ids, valid = self._encode(items, params["max_length"])  # (B, T)
        hidden = self.hidden_states(ids, valid).float()  # (B, T, D)
        if params["pooling"] is not None:
            vectors = pool(hidden, valid, params["pooling"])  # (B, D)
            if params["normalize"]:
                vectors = F.normalize(vectors, dim=-1)
            return [v.cpu() if params["return_tensors"] else v.tolist() for v in vectors]
        lengths = valid.sum(1).tolist()
        out = []
        for b, n in enumerate(lengths):
            tokens = hidden[b, :n].unsqueeze(0).cpu()  # (1, T_b, D)
            out.append(tokens if params["return_tensors"] else tokens.tolist())
        return out

