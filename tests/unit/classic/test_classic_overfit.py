"""Every variant memorizes a 20-pair corpus: after training, greedy and beam decoding reproduce each
target exactly (EOS included, padding after it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from conftest import tiny_config

from attnlab.classic import RNNSeq2Seq, beam_search, greedy_decode
from attnlab.models.common import shift_right

MAX_STEPS, CHECK_EVERY = 400, 25


def _corpus(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sources of 3-8 tokens; the target is the source reversed, then EOS. Right-padded with 0."""
    g = torch.Generator().manual_seed(seed)
    srcs, tgts = [], []
    for _ in range(n):
        s = torch.randint(3, 40, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g)
        srcs.append(s)
        tgts.append(torch.cat([s.flip(0), torch.tensor([2])]))
    pad = torch.nn.utils.rnn.pad_sequence
    return pad(srcs, batch_first=True), pad(tgts, batch_first=True)


def _exact(tokens: torch.Tensor, labels: torch.Tensor) -> int:
    if tokens.shape != labels.shape:
        width = max(tokens.shape[1], labels.shape[1])
        tokens, labels = F.pad(tokens, (0, width - tokens.shape[1])), F.pad(labels, (0, width - labels.shape[1]))
    return int((tokens == labels).all(1).sum())


def test_each_variant_overfits_twenty_pairs_exactly(variant):
    src, labels = _corpus()
    tgt_in = shift_right(labels, start_id=1, pad_id=0)
    torch.manual_seed(0)
    model = RNNSeq2Seq(tiny_config(variant, d_embed=16, d_hidden=32))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    solved = 0
    for step in range(1, MAX_STEPS + 1):
        loss = F.cross_entropy(model(src, tgt_in).flatten(0, 1), labels.flatten(), ignore_index=0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % CHECK_EVERY == 0:
            model.eval()
            solved = _exact(greedy_decode(model, src, max_new_tokens=labels.shape[1] + 2).tokens, labels)
            model.train()
            if solved == len(src):
                break
    assert solved == len(src), f"{variant}: {solved}/20 reproduced after {step} steps (loss {loss.item():.3f})"
    model.eval()
    beam = beam_search(model, src, beam_size=3, max_new_tokens=labels.shape[1] + 2)
    assert _exact(beam.tokens, labels) == len(src)
    assert torch.equal(beam.lengths, (labels != 0).sum(1))
