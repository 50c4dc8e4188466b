"""HF BERT / DistilBERT <-> attnlab BERT: config translation and key maps.

Dimension key: D model width, F MLP width, V vocabulary, C classes, L layers ({i} ranges over them).

HF keeps separate query/key/value projections; ours is one fused ``qkv_proj`` (FUSE stacks them
along the output dim, in that order). Everything else is a renaming. The masked-LM decoder weight is
tied to the word embeddings and its bias is stored once (``cls.predictions.bias`` /
``vocab_projector.bias``), as HF writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attnlab.interop.errors import CheckpointError, config_errors
from attnlab.interop.keymap import FUSE, Rule
from attnlab.interop.registry import Architecture, FamilyAdapter, register_adapter, same_or_none, special_id
from attnlab.models.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertModel,
)
from attnlab.models.config import ModelConfig

_ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
                "silu": "silu", "swish": "silu"}
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}


def _linear(ours: str, hf: str) -> list[Rule]:
    return [Rule(f"{ours}.weight", f"{hf}.weight"), Rule(f"{ours}.bias", f"{hf}.bias")]


def _fused_qkv(ours: str, hf_q: str, hf_k: str, hf_v: str) -> list[Rule]:
    return [Rule(f"{ours}.{p}", (f"{hf_q}.{p}", f"{hf_k}.{p}", f"{hf_v}.{p}"), FUSE) for p in ("weight", "bias")]


def _activation(hf_name: Any) -> str:
    if hf_name not in _ACT_FROM_HF:
        raise CheckpointError(f"activation {hf_name!r} is not supported; known: {sorted(_ACT_FROM_HF)}")
    return _ACT_FROM_HF[hf_name]


def _check_exportable(c: BertConfig, family: str) -> None:
    problems = [f"positional={c.positional!r} (needs 'learned')"] if c.positional != "learned" else []
    if c.activation not in _ACT_TO_HF:
        problems.append(f"activation={c.activation!r}")
    if family == "distilbert" and c.norm_eps != 1e-12:
        problems.append(f"norm_eps={c.norm_eps} (DistilBERT fixes 1e-12)")
    if problems:
        raise CheckpointError(f"this model has no HF {family} equivalent: {', '.join(problems)}")


def _labels_to_hf(c: BertConfig) -> dict[str, Any]:
    return {"id2label": {str(k): v for k, v in (c.id2label or {}).items()}, "label2id": dict(c.label2id or {})}


def _build(cls: type[BertConfig], family: str, values: Callable[[], dict[str, Any]]) -> BertConfig:
    with config_errors(family):
        return cls(**values())


# --------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------


def bert_config_from_hf(hf: dict[str, Any]) -> BertConfig:
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(f"BERT position_embedding_type={hf['position_embedding_type']!r} is not supported")
    if hf.get("is_decoder") or hf.get("add_cross_attention"):
        raise CheckpointError("BERT as a decoder (is_decoder / add_cross_attention) is not supported")
    return _build(BertConfig, "BERT", lambda: dict(
        vocab_size=hf["vocab_size"], n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
        d_model=hf["hidden_size"], d_ff=hf["intermediate_size"], max_len=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2), dropout=hf.get("hidden_dropout_prob", 0.1),
        attn_dropout=same_or_none(hf.get("attention_probs_dropout_prob", 0.1), hf.get("hidden_dropout_prob", 0.1)),
        activation=_activation(hf.get("hidden_act", "gelu")),
        norm_eps=hf.get("layer_norm_eps", 1e-12), tie_embeddings=hf.get("tie_word_embeddings", True),
        init_std=hf.get("initializer_range", 0.02), pad_id=special_id(hf, "pad_token_id"),
        id2label=hf.get("id2label"), label2id=hf.get("label2id"), classifier_dropout=hf.get("classifier_dropout"),
        **({} if hf.get("id2label") else {"num_labels": hf.get("num_labels", 2)}),
    ))


def bert_config_to_hf(config: ModelConfig) -> dict[str, Any]:
    c = config
    assert isinstance(c, BertConfig)
    _check_exportable(c, "bert")
    return {
        "vocab_size": c.vocab_size, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
        "hidden_size": c.d_model, "intermediate_size": c.d_ff, "max_position_embeddings": c.max_len,
        "type_vocab_size": c.type_vocab_size, "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.dropout if c.attn_dropout is None else c.attn_dropout,
        "hidden_act": _ACT_TO_HF[c.activation], "layer_norm_eps": c.norm_eps, "tie_word_embeddings": c.tie_embeddings,
        "initializer_range": c.init_std, "pad_token_id": c.pad_id, "position_embedding_type": "absolute",
        "classifier_dropout": c.classifier_dropout, **_labels_to_hf(c),
    }


QKV = ("query", "key", "value")


def bert_base_rules(config: ModelConfig) -> list[Rule]:
    rules = [
        Rule("embeddings.word.embedding.weight", "embeddings.word_embeddings.weight"),
        Rule("embeddings.pos.module.weight", "embeddings.position_embeddings.weight"),
        *_linear("embeddings.norm", "embeddings.LayerNorm"),
        *_fused_qkv("blocks.{i}.self_attn.qkv_proj", *(f"encoder.layer.{{i}}.attention.self.{n}" for n in QKV)),
        *_linear("blocks.{i}.self_attn.out_proj", "encoder.layer.{i}.attention.output.dense"),
        *_linear("blocks.{i}.norm1", "encoder.layer.{i}.attention.output.LayerNorm"),
        *_linear("blocks.{i}.ffn.fc1", "encoder.layer.{i}.intermediate.dense"),
        *_linear("blocks.{i}.ffn.fc2", "encoder.layer.{i}.output.dense"),
        *_linear("blocks.{i}.norm2", "encoder.layer.{i}.output.LayerNorm"),
    ]
    if config.type_vocab_size > 0:  # type: ignore[attr-defined]
        rules.append(Rule("embeddings.token_type.weight", "embeddings.token_type_embeddings.weight"))
    return rules


def _mlm_rules(dense: str, norm: str, decoder: str, bias: str) -> Callable[[ModelConfig], list[Rule]]:
    def rules(config: ModelConfig) -> list[Rule]:
        out = [*_linear("mlm_head.dense", dense), *_linear("mlm_head.norm", norm), Rule("mlm_head.decoder.bias", bias)]
        if not config.tie_embeddings:  # type: ignore[attr-defined]
            out.append(Rule("mlm_head.decoder.weight", f"{decoder}.weight"))
        return out

    return rules


def _bare_bert_head(config: ModelConfig) -> list[Rule]:
    return _linear("pooler", "pooler.dense") if config.pooler else []  # type: ignore[attr-defined]


BERT_ADAPTER = register_adapter(
    FamilyAdapter(
        hf_model_type="bert",
        model_type=BertConfig.model_type,
        config_from_hf=bert_config_from_hf,
        config_to_hf=bert_config_to_hf,
        base_rules=bert_base_rules,
        architectures={
            "BertModel": Architecture(BertModel, head_rules=_bare_bert_head, has_hf_base_prefix=False),
            "BertForMaskedLM": Architecture(
                BertForMaskedLM, "bert.",
                _mlm_rules("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
                           "cls.predictions.decoder", "cls.predictions.bias"),
            ),
            "BertForSequenceClassification": Architecture(
                BertForSequenceClassification, "bert.",
                (*_linear("bert.pooler", "bert.pooler.dense"), *_linear("classifier", "classifier")),
            ),
        },
        layer_counts=lambda c: {"i": c.n_layers},  # type: ignore[attr-defined]
        hf_base_prefix="bert.",
        hf_ignore=(  # buffers of old versions, a pooler the class does not use, tied copies, the NSP head
            r"embeddings\.position_ids$", r"pooler\.dense\.(weight|bias)$",
            r"^cls\.predictions\.decoder\.(weight|bias)$", r"^cls\.seq_relationship\.",
        ),
    )
)


# --------------------------------------------------------------------------------------------
# DistilBERT
# --------------------------------------------------------------------------------------------


def distilbert_config_from_hf(hf: dict[str, Any]) -> DistilBertConfig:
    return _build(DistilBertConfig, "DistilBERT", lambda: dict(  # type: ignore[return-value]
        vocab_size=hf["vocab_size"], n_layers=hf["n_layers"], n_heads=hf["n_heads"], d_model=hf["dim"],
        d_ff=hf["hidden_dim"], max_len=hf.get("max_position_embeddings", 512), dropout=hf.get("dropout", 0.1),
        attn_dropout=same_or_none(hf.get("attention_dropout", 0.1), hf.get("dropout", 0.1)),
        activation=_activation(hf.get("activation", "gelu")),
        tie_embeddings=hf.get("tie_word_embeddings", True), init_std=hf.get("initializer_range", 0.02),
        pad_id=special_id(hf, "pad_token_id"), classifier_dropout=hf.get("seq_classif_dropout", 0.2),
        id2label=hf.get("id2label"), label2id=hf.get("label2id"),
        **({} if hf.get("id2label") else {"num_labels": hf.get("num_labels", 2)}),
    ))


def distilbert_config_to_hf(config: ModelConfig) -> dict[str, Any]:
    c = config
    assert isinstance(c, DistilBertConfig)
    _check_exportable(c, "distilbert")
    return {
        "vocab_size": c.vocab_size, "n_layers": c.n_layers, "n_heads": c.n_heads, "dim": c.d_model,
        "hidden_dim": c.d_ff, "max_position_embeddings": c.max_len, "dropout": c.dropout,
        "attention_dropout": c.dropout if c.attn_dropout is None else c.attn_dropout,
        "activation": _ACT_TO_HF[c.activation], "tie_word_embeddings": c.tie_embeddings,
        "initializer_range": c.init_std, "pad_token_id": c.pad_id, "sinusoidal_pos_embds": False,
        "seq_classif_dropout": 0.2 if c.classifier_dropout is None else c.classifier_dropout, **_labels_to_hf(c),
    }


DISTILBERT_BASE_RULES = (
    Rule("embeddings.word.embedding.weight", "embeddings.word_embeddings.weight"),
    Rule("embeddings.pos.module.weight", "embeddings.position_embeddings.weight"),
    *_linear("embeddings.norm", "embeddings.LayerNorm"),
    *_fused_qkv("blocks.{i}.self_attn.qkv_proj", *(f"transformer.layer.{{i}}.attention.{n}_lin" for n in "qkv")),
    *_linear("blocks.{i}.self_attn.out_proj", "transformer.layer.{i}.attention.out_lin"),
    *_linear("blocks.{i}.norm1", "transformer.layer.{i}.sa_layer_norm"),
    *_linear("blocks.{i}.ffn.fc1", "transformer.layer.{i}.ffn.lin1"),
    *_linear("blocks.{i}.ffn.fc2", "transformer.layer.{i}.ffn.lin2"),
    *_linear("blocks.{i}.norm2", "transformer.layer.{i}.output_layer_norm"),
)

DISTILBERT_ADAPTER = register_adapter(
    FamilyAdapter(
        hf_model_type="distilbert",
        model_type=DistilBertConfig.model_type,
        config_from_hf=distilbert_config_from_hf,
        config_to_hf=distilbert_config_to_hf,
        base_rules=DISTILBERT_BASE_RULES,
        architectures={
            "DistilBertModel": Architecture(DistilBertModel, has_hf_base_prefix=False),
            "DistilBertForMaskedLM": Architecture(
                DistilBertForMaskedLM, "bert.",
                _mlm_rules("vocab_transform", "vocab_layer_norm", "vocab_projector", "vocab_projector.bias"),
            ),
            "DistilBertForSequenceClassification": Architecture(
                DistilBertForSequenceClassification, "bert.",
                (*_linear("pre_classifier", "pre_classifier"), *_linear("classifier", "classifier")),
            ),
        },
        layer_counts=lambda c: {"i": c.n_layers},  # type: ignore[attr-defined]
        hf_base_prefix="distilbert.",
        hf_ignore=(r"embeddings\.position_ids$", r"^vocab_projector\.weight$"),
    )
)
