"""HF ViT <-> attnlab ViT: config translation and the key map.

Dimension key: C channels, P patch size, N patches, D model width, F MLP width, K classes;
{i} ranges over the L encoder layers.

The key map follows the layout HF writes to disk (``encoder.layer.{i}.attention.attention.query``
and so on; transformers 5 renames its modules in memory but saves and loads this layout). HF's
separate query, key, value projections FUSE into our ``qkv_proj``. HF keeps a leading batch
dimension on the [CLS] token (1, 1, D) and the position table (1, 1 + N, D); ours are (1, D) and
(1 + N, D), hence ``squeeze_leading(2)``. The bare ``ViTModel`` carries the tanh pooler
(``pooler.dense``) unless ``pooler`` is off; ``ViTForImageClassification`` never has one.
"""

from __future__ import annotations

from typing import Any

from attnlab.interop.errors import CheckpointError, config_errors
from attnlab.interop.keymap import FUSE, Rule, squeeze_leading
from attnlab.interop.registry import Architecture, FamilyAdapter, register_adapter
from attnlab.models.config import ModelConfig
from attnlab.models.vit import ViTConfig, ViTForImageClassification, ViTModel

_ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
                "silu": "silu", "swish": "silu"}
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}


def _square(hf: dict[str, Any], key: str, default: int) -> int:
    """HF allows (height, width) pairs for image_size and patch_size; attnlab's ViT is square."""
    value = hf.get(key, default)
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise CheckpointError(f"ViT config.json {key}={value}: attnlab's ViT supports square sizes only")
        value = value[0]
    return int(value)


def _check_supported(hf: dict[str, Any]) -> None:
    if not hf.get("qkv_bias", True):
        raise CheckpointError("ViT config sets qkv_bias=false, which attnlab's ViT does not implement")
    if hf.get("pooler_act", "tanh") != "tanh":
        raise CheckpointError(f"ViT pooler_act {hf['pooler_act']!r} is not supported; attnlab's pooler uses tanh")
    act = hf.get("hidden_act", "gelu")
    if act not in _ACT_FROM_HF:
        raise CheckpointError(f"ViT hidden_act {act!r} is not supported; known: {sorted(_ACT_FROM_HF)}")


def config_from_hf(hf: dict[str, Any]) -> ViTConfig:
    _check_supported(hf)
    with config_errors("ViT"):
        id2label = hf.get("id2label")
        return ViTConfig(
            image_size=_square(hf, "image_size", 224), patch_size=_square(hf, "patch_size", 16),
            num_channels=hf.get("num_channels", 3), d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
            n_heads=hf["num_attention_heads"], d_ff=hf["intermediate_size"],
            dropout=hf.get("hidden_dropout_prob", 0.0), attn_dropout=hf.get("attention_probs_dropout_prob", 0.0),
            activation=_ACT_FROM_HF[hf.get("hidden_act", "gelu")], norm_eps=hf.get("layer_norm_eps", 1e-12),
            pooler_size=hf.get("pooler_output_size"), init_std=hf.get("initializer_range", 0.02),
            num_labels=len(id2label) if id2label else hf.get("num_labels", 2), id2label=id2label,
            label2id=hf.get("label2id") if id2label else None,
        )


def config_to_hf(config: ModelConfig) -> dict[str, Any]:
    c = config
    if not isinstance(c, ViTConfig):
        raise CheckpointError(f"the ViT adapter writes ViTConfig, got {type(c).__name__}")
    if c.activation not in _ACT_TO_HF:
        raise CheckpointError(f"activation={c.activation!r} has no HF ViT hidden_act; known: {sorted(_ACT_TO_HF)}")
    return {
        "image_size": c.image_size, "patch_size": c.patch_size, "num_channels": c.num_channels,
        "hidden_size": c.d_model, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
        "intermediate_size": c.d_ff, "hidden_act": _ACT_TO_HF[c.activation], "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.dropout if c.attn_dropout is None else c.attn_dropout,
        "layer_norm_eps": c.norm_eps, "qkv_bias": True, "pooler_output_size": c.pooler_size, "pooler_act": "tanh",
        "initializer_range": c.init_std, "encoder_stride": c.patch_size,
        "id2label": {str(k): v for k, v in (c.id2label or {}).items()}, "label2id": c.label2id,
    }


_LAYER = "encoder.layer.{i}"
_QKV = tuple(f"{_LAYER}.attention.attention.{p}" for p in ("query", "key", "value"))

BASE_RULES = (
    Rule("embeddings.cls_token", "embeddings.cls_token", squeeze_leading(2)),
    Rule("embeddings.pos.weight", "embeddings.position_embeddings", squeeze_leading(2)),
    Rule("embeddings.patch.weight", "embeddings.patch_embeddings.projection.weight"),
    Rule("embeddings.patch.bias", "embeddings.patch_embeddings.projection.bias"),
    Rule("blocks.{i}.norm1.weight", f"{_LAYER}.layernorm_before.weight"),
    Rule("blocks.{i}.norm1.bias", f"{_LAYER}.layernorm_before.bias"),
    Rule("blocks.{i}.self_attn.qkv_proj.weight", tuple(f"{k}.weight" for k in _QKV), FUSE),
    Rule("blocks.{i}.self_attn.qkv_proj.bias", tuple(f"{k}.bias" for k in _QKV), FUSE),
    Rule("blocks.{i}.self_attn.out_proj.weight", f"{_LAYER}.attention.output.dense.weight"),
    Rule("blocks.{i}.self_attn.out_proj.bias", f"{_LAYER}.attention.output.dense.bias"),
    Rule("blocks.{i}.norm2.weight", f"{_LAYER}.layernorm_after.weight"),
    Rule("blocks.{i}.norm2.bias", f"{_LAYER}.layernorm_after.bias"),
    Rule("blocks.{i}.ffn.fc1.weight", f"{_LAYER}.intermediate.dense.weight"),
    Rule("blocks.{i}.ffn.fc1.bias", f"{_LAYER}.intermediate.dense.bias"),
    Rule("blocks.{i}.ffn.fc2.weight", f"{_LAYER}.output.dense.weight"),
    Rule("blocks.{i}.ffn.fc2.bias", f"{_LAYER}.output.dense.bias"),
    Rule("final_norm.weight", "layernorm.weight"),
    Rule("final_norm.bias", "layernorm.bias"),
)


def _pooler(config: ModelConfig) -> list[Rule]:
    if not config.pooler:  # type: ignore[attr-defined]
        return []
    return [Rule("pooler.weight", "pooler.dense.weight"), Rule("pooler.bias", "pooler.dense.bias")]


CLASSIFIER_RULES = (Rule("classifier.weight", "classifier.weight"), Rule("classifier.bias", "classifier.bias"))

ADAPTER = register_adapter(
    FamilyAdapter(
        hf_model_type="vit",
        model_type=ViTConfig.model_type,
        config_from_hf=config_from_hf,
        config_to_hf=config_to_hf,
        base_rules=BASE_RULES,
        architectures={
            "ViTForImageClassification": Architecture(
                ViTForImageClassification, ours_base_prefix="vit.", head_rules=CLASSIFIER_RULES
            ),
            "ViTModel": Architecture(ViTModel, head_rules=_pooler, has_hf_base_prefix=False),
        },
        layer_counts=lambda c: {"i": c.n_layers},  # type: ignore[attr-defined]
        hf_base_prefix="vit.",
        hf_ignore=(r"(^|\.)pooler\.dense\.(weight|bias)$",),  # a pooler the chosen class does not use
    )
)
