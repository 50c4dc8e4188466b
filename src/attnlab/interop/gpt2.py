"""HF GPT-2 <-> attnlab GPT: config translation and the key map.

Dimension key: D model width, F MLP width, V vocabulary, L layers ({i} ranges over them).

HF GPT-2 stores its linear layers as ``Conv1D`` with weight (in, out); ours are ``nn.Linear`` with
(out, in), hence TRANSPOSE on every projection. ``c_attn`` already holds [q; k; v] fused, in the
same order as our ``qkv_proj``. The LM head is tied to ``wte`` and is not stored.
"""

from __future__ import annotations

from typing import Any

from attnlab.interop.errors import CheckpointError, config_errors
from attnlab.interop.keymap import TRANSPOSE, Rule
from attnlab.interop.registry import Architecture, FamilyAdapter, register_adapter, same_or_none, special_id
from attnlab.models.config import ModelConfig
from attnlab.models.gpt import GPT, GPTConfig

_ACT_FROM_HF = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu",
                "silu": "silu", "swish": "silu"}
_ACT_TO_HF = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}


def config_from_hf(hf: dict[str, Any]) -> GPTConfig:
    required = (
        ("scale_attn_by_inverse_layer_idx", False), ("add_cross_attention", False), ("scale_attn_weights", True)
    )
    for flag, ok in required:
        if hf.get(flag, ok) != ok:
            raise CheckpointError(f"GPT-2 config sets {flag}={hf[flag]}, which attnlab's GPT does not implement")
    act = hf.get("activation_function", "gelu_new")
    if act not in _ACT_FROM_HF:
        raise CheckpointError(f"GPT-2 activation_function {act!r} is not supported; known: {sorted(_ACT_FROM_HF)}")
    resid = hf.get("resid_pdrop", 0.1)
    with config_errors("GPT-2"):
        return GPTConfig(
            vocab_size=hf["vocab_size"], n_layers=hf["n_layer"], n_heads=hf["n_head"], d_model=hf["n_embd"],
            d_ff=hf.get("n_inner"), max_len=hf.get("n_positions", hf.get("n_ctx", 1024)),
            dropout=hf.get("resid_pdrop", 0.1), attn_dropout=same_or_none(hf.get("attn_pdrop", 0.1), resid),
            embed_dropout=same_or_none(hf.get("embd_pdrop", 0.1), resid), activation=_ACT_FROM_HF[act],
            norm_eps=hf.get("layer_norm_epsilon", 1e-5), tie_embeddings=hf.get("tie_word_embeddings", True),
            init_std=hf.get("initializer_range", 0.02), pad_id=special_id(hf, "pad_token_id"),
            bos_id=special_id(hf, "bos_token_id"), eos_id=special_id(hf, "eos_token_id"),
        )


def config_to_hf(config: ModelConfig) -> dict[str, Any]:
    c = config
    assert isinstance(c, GPTConfig)
    problems = [
        f"{name}={value!r} (GPT-2 needs {need!r})"
        for name, value, need in (
            ("positional", c.positional, "learned"), ("norm", c.norm, "layernorm"), ("bias", c.bias, True),
            ("n_kv_heads", c.n_kv_heads or c.n_heads, c.n_heads),
        )
        if value != need
    ]
    if c.activation not in _ACT_TO_HF:
        problems.append(f"activation={c.activation!r} (GPT-2 knows {sorted(_ACT_TO_HF)})")
    if problems:
        raise CheckpointError(f"this GPT has no GPT-2 equivalent: {', '.join(problems)}")
    return {
        "vocab_size": c.vocab_size, "n_layer": c.n_layers, "n_head": c.n_heads, "n_embd": c.d_model,
        "n_inner": c.d_ff, "n_positions": c.max_len, "activation_function": _ACT_TO_HF[c.activation],
        "resid_pdrop": c.dropout, "attn_pdrop": c.dropout if c.attn_dropout is None else c.attn_dropout,
        "embd_pdrop": c.dropout if c.embed_dropout is None else c.embed_dropout, "layer_norm_epsilon": c.norm_eps,
        "initializer_range": c.init_std, "tie_word_embeddings": c.tie_embeddings, "pad_token_id": c.pad_id,
        "bos_token_id": c.bos_id, "eos_token_id": c.eos_id,
    }


BASE_RULES = (
    Rule("tok_embed.embedding.weight", "wte.weight"),
    Rule("pos.module.weight", "wpe.weight"),
    Rule("blocks.{i}.norm1.weight", "h.{i}.ln_1.weight"),
    Rule("blocks.{i}.norm1.bias", "h.{i}.ln_1.bias"),
    Rule("blocks.{i}.self_attn.qkv_proj.weight", "h.{i}.attn.c_attn.weight", TRANSPOSE),
    Rule("blocks.{i}.self_attn.qkv_proj.bias", "h.{i}.attn.c_attn.bias"),
    Rule("blocks.{i}.self_attn.out_proj.weight", "h.{i}.attn.c_proj.weight", TRANSPOSE),
    Rule("blocks.{i}.self_attn.out_proj.bias", "h.{i}.attn.c_proj.bias"),
    Rule("blocks.{i}.norm2.weight", "h.{i}.ln_2.weight"),
    Rule("blocks.{i}.norm2.bias", "h.{i}.ln_2.bias"),
    Rule("blocks.{i}.ffn.fc1.weight", "h.{i}.mlp.c_fc.weight", TRANSPOSE),
    Rule("blocks.{i}.ffn.fc1.bias", "h.{i}.mlp.c_fc.bias"),
    Rule("blocks.{i}.ffn.fc2.weight", "h.{i}.mlp.c_proj.weight", TRANSPOSE),
    Rule("blocks.{i}.ffn.fc2.bias", "h.{i}.mlp.c_proj.bias"),
    Rule("final_norm.weight", "ln_f.weight"),
    Rule("final_norm.bias", "ln_f.bias"),
)


def _lm_head(config: ModelConfig) -> list[Rule]:
    return [] if config.tie_embeddings else [Rule("lm_head.weight", "lm_head.weight")]  # type: ignore[attr-defined]


ADAPTER = register_adapter(
    FamilyAdapter(
        hf_model_type="gpt2",
        model_type=GPTConfig.model_type,
        config_from_hf=config_from_hf,
        config_to_hf=config_to_hf,
        base_rules=BASE_RULES,
        architectures={
            "GPT2LMHeadModel": Architecture(GPT, head_rules=_lm_head),
            "GPT2Model": Architecture(GPT, head_rules=_lm_head, has_hf_base_prefix=False),
        },
        layer_counts=lambda c: {"i": c.n_layers},  # type: ignore[attr-defined]
        hf_base_prefix="transformer.",
        hf_ignore=(r"\.attn\.bias$", r"\.attn\.masked_bias$", r"^lm_head\.weight$"),
    )
)
