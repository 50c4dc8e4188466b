"""The attention core: one attention function, mask factories and KV caches."""

from attnlab.core.attention import attention, available_backends, register_backend
from attnlab.core.kv_cache import CrossAttnCache, KVCache
from attnlab.core.masks import (
    causal_mask,
    combine_masks,
    padding_mask,
    padding_mask_from_ids,
    position_causal_mask,
    sliding_window_mask,
)

__all__ = [
    "CrossAttnCache",
    "KVCache",
    "attention",
    "available_backends",
    "causal_mask",
    "combine_masks",
    "padding_mask",
    "padding_mask_from_ids",
    "position_causal_mask",
    "register_backend",
    "sliding_window_mask",
]
