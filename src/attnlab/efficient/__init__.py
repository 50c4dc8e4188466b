"""Efficient attention: sliding window with global tokens, Linformer, Performer (FAVOR+).

Dimension key: B batch, H query heads, Hkv key/value heads, T query length, S key length, Dh head dim.

Importing this package registers three attention backends with :mod:`attnlab.core.attention`
(``attention(..., backend="sliding_window" | "performer")``; ``"linformer"`` explains that it needs
its module) and three variant classes that models select by a backend spec in their config:

    ===================  ===========================  ===================  =======================
    spec name            time / memory                causal               limits
    ===================  ===========================  ===================  =======================
    ``sliding_window``   O(T·w·Dh) / O(T·w)           yes (and bidir.)     self-attention only
    ``linformer``        O(T·P·Dh) / O(T·P)           no                   S <= max_len, no cache
    ``performer``        O((T+S)·M·Dh) / O(M·Dh)      yes (prefix sums)    no bias/dropout/cache
    ===================  ===========================  ===================  =======================

Example: ``GPTConfig(..., backend="sliding_window:window=64,global_tokens=0")``. See
``docs/efficient.md`` for the guide and ``benchmarks/attention_scaling.py`` for measurements.
"""

from attnlab.efficient.linformer import LinformerAttention, linformer_attention
from attnlab.efficient.performer import (
    PerformerAttention,
    causal_linear_attention,
    favor_features,
    linear_attention,
    orthogonal_features,
    performer_attention,
)
from attnlab.efficient.sliding_window import (
    SlidingWindowAttention,
    sliding_window_attention,
    window_pattern,
)
from attnlab.efficient.variant import (
    AttentionVariant,
    UnsupportedAttentionError,
    build_variant,
    parse_backend_spec,
    register_variant,
    variant_names,
)

__all__ = [
    "AttentionVariant",
    "LinformerAttention",
    "PerformerAttention",
    "SlidingWindowAttention",
    "UnsupportedAttentionError",
    "build_variant",
    "causal_linear_attention",
    "favor_features",
    "linear_attention",
    "linformer_attention",
    "orthogonal_features",
    "parse_backend_spec",
    "performer_attention",
    "register_variant",
    "sliding_window_attention",
    "variant_names",
    "window_pattern",
]
