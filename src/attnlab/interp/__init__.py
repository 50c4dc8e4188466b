"""Interpretability: named capture points on every family, head-role analysis, attention rollout.

Dimension key: L layers, B batch, H heads, h selected heads, T query length, S key length, D width.

    out, cap = run_with_capture(model, ids, layers=[0, -1], heads=[0, 3])
    cap.pattern(0)                 # (B, 2, T, S) probabilities, recomputed from the captured q and k
    cap.stack("pattern")           # (L, B, h, T, S) for the captured layers of the (only) group

Attention probabilities are recomputed for the requested layers, heads and query rows only, while
the fused kernel runs the model; see :mod:`attnlab.interp.capture` for the capture points and
:mod:`attnlab.interp.heads` for the head roles.
"""

from attnlab.interp.analysis import analyze_heads, attention_rollout, induction_probe, scores_from_capture
from attnlab.interp.capture import POINTS, Capture, CaptureMixin, capturing, run_with_capture
from attnlab.interp.heads import ROLES, HeadScores, ranking_table, role_targets, score_heads, target_scores
from attnlab.interp.inputs import (
    MODEL_KINDS,
    PreparedInputs,
    TokenSide,
    model_kind,
    prepare_inputs,
    register_model_kind,
)
from attnlab.interp.sites import AttentionSite, attention_sites, register_site_finder, select_sites

__all__ = [
    "MODEL_KINDS",
    "POINTS",
    "ROLES",
    "AttentionSite",
    "Capture",
    "CaptureMixin",
    "HeadScores",
    "PreparedInputs",
    "TokenSide",
    "analyze_heads",
    "attention_rollout",
    "attention_sites",
    "capturing",
    "induction_probe",
    "model_kind",
    "prepare_inputs",
    "ranking_table",
    "register_model_kind",
    "register_site_finder",
    "role_targets",
    "run_with_capture",
    "score_heads",
    "scores_from_capture",
    "select_sites",
    "target_scores",
]
