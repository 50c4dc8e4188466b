"""Schedules against their formulas; label smoothing against torch's cross_entropy.

Dimension key: N positions, V classes.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.training import (
    Schedule,
    constant,
    cosine,
    inverse_sqrt,
    label_smoothed_cross_entropy,
    noam,
)
from attnlab.training.losses import accuracy_count, token_losses


@pytest.mark.parametrize("d_model,warmup", [(512, 4000), (1024, 4000), (32, 10)])
def test_noam_matches_the_paper(d_model: int, warmup: int) -> None:
    s = noam(d_model, warmup)
    for step in [1, 2, warmup // 2, warmup - 1, warmup, warmup + 1, 3 * warmup, 100_000]:
        expected = d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)  # Vaswani et al. eq. 3
        assert s(step) == pytest.approx(expected, rel=1e-12)
    assert max(range(1, 3 * warmup), key=s) == warmup  # linear rise, peak at warmup, then 1/sqrt(step)
    assert noam(512, 4000)(4000) == pytest.approx(6.9877e-4, rel=1e-4)
    assert noam(d_model, warmup, factor=2.0)(7) == pytest.approx(2 * s(7))


def test_inverse_sqrt_cosine_constant() -> None:
    s = inverse_sqrt(1e-3, 100)
    assert s(50) == pytest.approx(5e-4) and s(100) == pytest.approx(1e-3) and s(400) == pytest.approx(5e-4)
    c = cosine(1.0, total_steps=110, warmup_steps=10, min_lr=0.1)
    assert c(5) == pytest.approx(0.5) and c(10) == pytest.approx(1.0)
    assert c(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert c(110) == pytest.approx(0.1) and c(500) == pytest.approx(0.1)
    assert constant(2.0)(1) == 2.0 and constant(2.0, warmup_steps=4)(1) == 0.5 and constant(2.0, 4)(9) == 2.0
    assert Schedule.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "linear"}, "unknown schedule"),
        ({"name": "noam", "warmup_steps": 10}, "d_model"),
        ({"name": "noam", "d_model": 8}, "warmup_steps >= 1"),
        ({"name": "cosine", "total_steps": 5, "warmup_steps": 5}, "total_steps > warmup_steps"),
    ],
)
def test_schedule_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Schedule(**kwargs)
    with pytest.raises(ValueError, match="1-based"):
        constant(1.0)(0)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_matches_torch(eps: float, reduction: str) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g) * 3
    target = torch.randint(0, 11, (3, 7), generator=g)
    target[0, 2:] = -100  # padding
    target[2, 0] = -100
    ours = label_smoothed_cross_entropy(logits, target, smoothing=eps, reduction=reduction)
    ref = F.cross_entropy(logits.transpose(1, 2), target, label_smoothing=eps, reduction=reduction, ignore_index=-100)
    torch.testing.assert_close(ours, ref)


def test_label_smoothing_float64_reference_and_low_precision() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(20, 9, generator=g, dtype=torch.float64)
    target = torch.randint(0, 9, (20,), generator=g)
    eps = 0.2
    q = torch.full((20, 9), eps / 9, dtype=torch.float64)
    q[torch.arange(20), target] += 1 - eps  # the smoothed target distribution
    naive = -(q * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(label_smoothed_cross_entropy(logits, target, smoothing=eps).double(), naive)
    bf16 = label_smoothed_cross_entropy(logits.bfloat16(), target, smoothing=eps)
    assert bf16.dtype == torch.float32  # computed in float32 whatever the logits' dtype
    torch.testing.assert_close(bf16.double(), naive, atol=2e-2, rtol=2e-2)


def test_token_losses_parts_and_accuracy() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
    target = torch.tensor([0, 0, -100])
    loss, nll, valid = token_losses(logits, target, smoothing=0.1)
    assert valid.tolist() == [True, True, False] and loss[2] == 0 and nll[2] == 0
    torch.testing.assert_close(nll[:2], F.cross_entropy(logits[:2], target[:2], reduction="none"))
    assert accuracy_count(logits, target).item() == 1
    with pytest.raises(ValueError, match="label smoothing"):
        token_losses(logits, target, smoothing=1.0)
    with pytest.raises(ValueError, match="class dim"):
        token_losses(logits, target[:2])
