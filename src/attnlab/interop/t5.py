"""HF T5 <-> attnlab T5: config translation and the key map.

Dimension key: D model width, H heads, Dh head dim (d_kv), F feed-forward width, V vocabulary;
{e} ranges over encoder blocks, {d} over decoder blocks.

HF keeps separate q, k, v projections (FUSE into our ``qkv_proj``; cross-attention's k, v into
``kv_proj``), stores the relative-bias tables inside block 0 of each stack (ours hold them at the
model level, ``enc_rel_bias`` / ``dec_rel_bias``), and numbers the sublayers of a block
(``layer.0`` self-attention, ``layer.1`` cross-attention in the decoder, then the feed-forward).
The gated feed-forward's ``wi_0`` goes through the activation (our ``gate``) and ``wi_1`` is the
linear branch (our ``fc1``).

Tying and rescaling: T5 v1.0 ties the LM head to ``shared`` and multiplies the decoder output by
D**-0.5; v1.1 checkpoints say ``tie_word_embeddings: false`` and store ``lm_head.weight``.
transformers 5 always ties the head of a freshly built model and records the rescale separately as
``scale_decoder_outputs``; both fields are read (the rescale defaulting to the tie, as in
transformers 4) and both are written.
"""

from __future__ import annotations

from typing import Any

from attnlab.interop.errors import CheckpointError, config_errors
from attnlab.interop.keymap import FUSE, Rule
from attnlab.interop.registry import Architecture, FamilyAdapter, register_adapter
from attnlab.layers.feedforward import GATED
from attnlab.models.config import ModelConfig
from attnlab.models.t5 import T5, T5Config

# HF feed_forward_proj (after "gated-gelu" -> gelu_new, as T5Config does) <-> our activation
_FF_FROM_HF = {
    "relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "silu": "silu",
    "gated-gelu": "geglu", "gated-gelu_new": "geglu", "gated-gelu_pytorch_tanh": "geglu", "gated-silu": "swiglu",
    "gated-relu": "reglu",
}
_FF_TO_HF = {
    "relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new", "silu": "silu", "geglu": "gated-gelu",
    "swiglu": "gated-silu", "reglu": "gated-relu",
}


def _single_id(hf: dict[str, Any], key: str, default: int) -> int:
    value = hf.get(key, default)
    if value is None:
        return default
    if isinstance(value, list):
        if len(value) != 1:
            raise CheckpointError(f"T5 config.json {key}={value}: attnlab's T5 takes a single id")
        value = value[0]
    return int(value)


def config_from_hf(hf: dict[str, Any]) -> T5Config:
    if not hf.get("is_encoder_decoder", True) or hf.get("is_decoder", False):
        raise CheckpointError("T5 config.json describes a decoder-only stack; attnlab's T5 is the encoder-decoder")
    ff = hf.get("feed_forward_proj", "relu")
    if ff not in _FF_FROM_HF:
        raise CheckpointError(f"T5 feed_forward_proj {ff!r} is not supported; known: {sorted(_FF_FROM_HF)}")
    tie = bool(hf.get("tie_word_embeddings", True))
    pad = _single_id(hf, "pad_token_id", 0)
    with config_errors("T5"):
        return T5Config(
            vocab_size=hf["vocab_size"], d_model=hf["d_model"], head_dim=hf["d_kv"], d_ff=hf["d_ff"],
            n_heads=hf["num_heads"], n_encoder_layers=hf["num_layers"],
            n_decoder_layers=hf.get("num_decoder_layers"),
            num_buckets=hf.get("relative_attention_num_buckets", 32),
            max_distance=hf.get("relative_attention_max_distance", 128), dropout=hf.get("dropout_rate", 0.1),
            norm_eps=hf.get("layer_norm_epsilon", 1e-6), activation=_FF_FROM_HF[ff], tie_embeddings=tie,
            scale_decoder_output=bool(hf.get("scale_decoder_outputs", tie)),
            init_factor=hf.get("initializer_factor", 1.0), pad_id=pad, eos_id=_single_id(hf, "eos_token_id", 1),
            decoder_start_id=_single_id(hf, "decoder_start_token_id", pad),
        )


def config_to_hf(config: ModelConfig) -> dict[str, Any]:
    c = config
    if not isinstance(c, T5Config):
        raise CheckpointError(f"the T5 adapter writes T5Config, got {type(c).__name__}")
    if c.activation not in _FF_TO_HF:
        raise CheckpointError(f"activation={c.activation!r} has no T5 feed_forward_proj; known: {sorted(_FF_TO_HF)}")
    return {
        "vocab_size": c.vocab_size, "d_model": c.d_model, "d_kv": c.head_dim, "d_ff": c.d_ff, "num_heads": c.n_heads,
        "num_layers": c.n_encoder_layers, "num_decoder_layers": c.n_decoder_layers,
        "relative_attention_num_buckets": c.num_buckets, "relative_attention_max_distance": c.max_distance,
        "dropout_rate": c.dropout, "layer_norm_epsilon": c.norm_eps, "feed_forward_proj": _FF_TO_HF[c.activation],
        "tie_word_embeddings": c.tie_embeddings, "scale_decoder_outputs": c.scale_decoder_output,
        "initializer_factor": c.init_factor, "is_encoder_decoder": True, "use_cache": True,
        "pad_token_id": c.pad_id, "eos_token_id": c.eos_id, "decoder_start_token_id": c.decoder_start_id,
    }


def _attention_rules(ours: str, hf: str) -> list[Rule]:
    """Self-attention (fused q, k, v) when ``hf`` names SelfAttention, else cross-attention."""
    if hf.endswith("SelfAttention"):
        qkv = [Rule(f"{ours}.qkv_proj.weight", tuple(f"{hf}.{p}.weight" for p in "qkv"), FUSE)]
    else:
        qkv = [Rule(f"{ours}.q_proj.weight", f"{hf}.q.weight"),
               Rule(f"{ours}.kv_proj.weight", (f"{hf}.k.weight", f"{hf}.v.weight"), FUSE)]
    return [*qkv, Rule(f"{ours}.out_proj.weight", f"{hf}.o.weight")]


def _ffn_rules(ours: str, hf: str, gated: bool) -> list[Rule]:
    if gated:
        return [Rule(f"{ours}.gate.weight", f"{hf}.wi_0.weight"), Rule(f"{ours}.fc1.weight", f"{hf}.wi_1.weight"),
                Rule(f"{ours}.fc2.weight", f"{hf}.wo.weight")]
    return [Rule(f"{ours}.fc1.weight", f"{hf}.wi.weight"), Rule(f"{ours}.fc2.weight", f"{hf}.wo.weight")]


def base_rules(config: ModelConfig) -> list[Rule]:
    """The key map; the feed-forward keys depend on whether the activation is gated."""
    gated = config.activation in GATED  # type: ignore[attr-defined]
    enc, dec = "encoder.block.{e}.layer", "decoder.block.{d}.layer"
    rel = "block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    return [
        Rule("shared.embedding.weight", "shared.weight"),
        Rule("enc_rel_bias.embedding.weight", f"encoder.{rel}"),
        Rule("dec_rel_bias.embedding.weight", f"decoder.{rel}"),
        Rule("encoder.layers.{e}.norm1.weight", f"{enc}.0.layer_norm.weight"),
        *_attention_rules("encoder.layers.{e}.self_attn", f"{enc}.0.SelfAttention"),
        Rule("encoder.layers.{e}.norm2.weight", f"{enc}.1.layer_norm.weight"),
        *_ffn_rules("encoder.layers.{e}.ffn", f"{enc}.1.DenseReluDense", gated),
        Rule("encoder.final_norm.weight", "encoder.final_layer_norm.weight"),
        Rule("decoder.layers.{d}.norm1.weight", f"{dec}.0.layer_norm.weight"),
        *_attention_rules("decoder.layers.{d}.self_attn", f"{dec}.0.SelfAttention"),
        Rule("decoder.layers.{d}.norm2.weight", f"{dec}.1.layer_norm.weight"),
        *_attention_rules("decoder.layers.{d}.cross_attn", f"{dec}.1.EncDecAttention"),
        Rule("decoder.layers.{d}.norm3.weight", f"{dec}.2.layer_norm.weight"),
        *_ffn_rules("decoder.layers.{d}.ffn", f"{dec}.2.DenseReluDense", gated),
        Rule("decoder.final_norm.weight", "decoder.final_layer_norm.weight"),
    ]


def _lm_head(config: ModelConfig) -> list[Rule]:
    return [] if config.tie_embeddings else [Rule("lm_head.weight", "lm_head.weight")]  # type: ignore[attr-defined]


ADAPTER = register_adapter(
    FamilyAdapter(
        hf_model_type="t5",
        model_type=T5Config.model_type,
        config_from_hf=config_from_hf,
        config_to_hf=config_to_hf,
        base_rules=base_rules,
        architectures={
            "T5ForConditionalGeneration": Architecture(T5, head_rules=_lm_head),
            "T5Model": Architecture(T5, head_rules=_lm_head),  # no head stored: loads when the head is tied
        },
        layer_counts=lambda c: {"e": c.n_encoder_layers, "d": c.n_decoder_layers},  # type: ignore[attr-defined]
        hf_ignore=(
            r"^(encoder|decoder)\.embed_tokens\.weight$",  # copies of shared.weight
            r"^lm_head\.weight$",  # the tied head, when a checkpoint stores it anyway
            r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$",  # unused, as in HF
        ),
    )
)
