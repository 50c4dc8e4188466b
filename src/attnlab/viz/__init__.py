"""Visualization: matplotlib heatmaps and a self-contained interactive HTML attention view.

Dimension key: L layers, H heads, T query length, S key length, P patches.

    from attnlab.viz import plot_attention, plot_heads, save_attention_view
    fig = plot_heads(capture.stack("pattern")[:, 0], tokens, tokens)     # (L, H, T, S) grid
    fig.savefig("heads.png")
    save_attention_view("view.html", capture, prepared)                # head view + model view

The figures only read captured patterns (:mod:`attnlab.interp`); nothing here runs a model.
"""

from attnlab.viz.heatmap import (
    patch_weights,
    plot_alignment,
    plot_attention,
    plot_decoder_steps,
    plot_head_scores,
    plot_heads,
    plot_patch_attention,
    to_numpy,
)
from attnlab.viz.html import AttentionGroup, groups_from_capture, render_attention_view, save_attention_view
from attnlab.viz.payload import bin_edges, bin_pattern, group_payload

__all__ = [
    "AttentionGroup",
    "bin_edges",
    "bin_pattern",
    "group_payload",
    "groups_from_capture",
    "patch_weights",
    "plot_alignment",
    "plot_attention",
    "plot_decoder_steps",
    "plot_head_scores",
    "plot_heads",
    "plot_patch_attention",
    "render_attention_view",
    "save_attention_view",
    "to_numpy",
]
