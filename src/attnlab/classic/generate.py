"""Greedy and beam-search decoding for :class:`RNNSeq2Seq`, returning tokens and alignments.

Dimension key: B batch, K beams, S source length, N generated length, V target vocabulary.

    out = greedy_decode(model, src_ids, src_valid, max_new_tokens=50)
    out = beam_search(model, src_ids, src_valid, beam_size=5, length_penalty=1.0)
    out.tokens (B, N): generated ids without the start token, EOS included, pad_id after it
    out.alignments (B, N, S) or None for the context-vector baseline (zeros after EOS)
    out.lengths (B,): tokens up to and including EOS

Both drive the model through :class:`RNNRunner`, which follows the generation package's runner
protocol (``prefill() -> (B, V)``, ``step(tokens (B,)) -> (B, V)``, ``reorder(index)``) and records
each step's alignment. Beam search keeps finished hypotheses in the beam (they extend only with padding, at no cost) and
picks each row's winner by ``score / length ** length_penalty``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from attnlab.classic.decoders import DecoderState
from attnlab.classic.model import RNNSeq2Seq


@dataclasses.dataclass
class Translation:
    tokens: Tensor  # (B, N)
    alignments: Tensor | None  # (B, N, S)
    lengths: Tensor  # (B,)
    scores: Tensor  # (B,) summed log-probabilities of the returned tokens


def _max_steps(model: RNNSeq2Seq, src_valid: Tensor, max_new_tokens: int | None) -> int:
    if max_new_tokens is None:  # a generous default: twice the longest source, plus slack
        return min(model.config.max_len, 2 * int(src_valid.sum(1).max()) + 10)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    return max_new_tokens


class RNNRunner:
    """Encode once, then feed one token per call; ``alignments`` (B, n, S) holds every step's alignment.

    ``expand`` repeats each source row that many times (beams) after encoding.
    """

    def __init__(
        self, model: RNNSeq2Seq, src: Tensor, src_valid: Tensor | None, max_new_tokens: int,
        *, start_id: int | None = None, expand: int = 1,
    ) -> None:
        self.model, self.max_new_tokens, self.fed = model, max_new_tokens, 0
        state = model.start(model.encode(src, src_valid))
        if expand > 1:
            state = state.select(torch.arange(src.shape[0], device=src.device).repeat_interleave(expand))
        self.state: DecoderState = state
        self.batch_size = state.valid.shape[0]
        start = model.config.decoder_start_id if start_id is None else start_id
        self.start = torch.full((self.batch_size,), start, dtype=torch.long, device=src.device)  # (B,)
        self.alignments: Tensor | None = None  # (B, n, S)

    def _decode(self, tokens: Tensor) -> Tensor:
        logits, self.state, align = self.model.decode_step(tokens, self.state)  # (B, V), (B, S)
        if align is not None:
            step = align[:, None]  # (B, 1, S)
            self.alignments = step if self.alignments is None else torch.cat([self.alignments, step], dim=1)
        return logits

    def prefill(self) -> Tensor:
        """Logits (B, V) for the first target token."""
        return self._decode(self.start)

    def step(self, tokens: Tensor) -> Tensor:
        """Feed the chosen tokens (B,); logits (B, V) for the next one."""
        self.fed += 1
        return self._decode(tokens)

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` (B,), in that order."""
        self.state = self.state.select(index)
        if self.alignments is not None:
            self.alignments = self.alignments.index_select(0, index)


def _log_probs(logits: Tensor, pad_id: int) -> Tensor:
    """log-softmax in fp32 with padding forbidden: (B, V) -> (B, V)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    logp[..., pad_id] = float("-inf")  # padding is never a real output; it marks finished rows
    return logp


def _finish(tokens: Tensor, runner: RNNRunner, scores: Tensor, pad_id: int) -> Translation:
    """Drop all-padding columns, zero the alignments of padding steps, count lengths."""
    alive = tokens != pad_id  # (B, N)
    width = max(1, int(alive.sum(dim=1).max()))
    tokens, alive = tokens[:, :width], alive[:, :width]
    aligns = runner.alignments
    if aligns is not None:
        aligns = aligns[:, : tokens.shape[1]] * alive[..., None]  # (B, N, S)
    return Translation(tokens=tokens, alignments=aligns, lengths=alive.sum(dim=1), scores=scores)


@torch.no_grad()
def greedy_decode(
    model: RNNSeq2Seq, src_ids: Tensor, src_valid: Tensor | None = None, *, max_new_tokens: int | None = None
) -> Translation:
    """Pick the most likely token at every step until every row has produced EOS."""
    c = model.config
    src_valid = (src_ids != c.pad_id) if src_valid is None else src_valid.bool()
    runner = RNNRunner(model, src_ids, src_valid, _max_steps(model, src_valid, max_new_tokens))
    done = torch.zeros(runner.batch_size, dtype=torch.bool, device=src_ids.device)
    scores = torch.zeros(runner.batch_size, device=src_ids.device)
    logits, tokens = runner.prefill(), []
    for t in range(runner.max_new_tokens):
        logp = _log_probs(logits, c.pad_id)
        y = logp.argmax(dim=-1).masked_fill(done, c.pad_id)  # (B,)
        scores = scores + logp.gather(1, y[:, None])[:, 0].masked_fill(done, 0.0)
        tokens.append(y)
        done = done | (y == c.eos_id)
        if bool(done.all()) or t + 1 == runner.max_new_tokens:
            break
        logits = runner.step(y)
    return _finish(torch.stack(tokens, dim=1), runner, scores, c.pad_id)


def _beam_step(
    scores: Tensor, logp: Tensor, done: Tensor, pad_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """scores (B, K), logp (B, K, V), done (B, K) -> new scores (B, K), parent beam (B, K), token (B, K)."""
    B, K, V = logp.shape
    frozen = torch.full_like(logp, float("-inf"))
    frozen[..., pad_id] = 0.0  # a finished hypothesis extends only with padding, at no cost
    logp = torch.where(done[..., None], frozen, logp)
    total = (scores[..., None] + logp).view(B, K * V)  # (B, K * V)
    new_scores, flat = total.topk(K, dim=-1)  # (B, K)
    return new_scores, flat // V, flat % V


@torch.no_grad()
def beam_search(
    model: RNNSeq2Seq,
    src_ids: Tensor,
    src_valid: Tensor | None = None,
    *,
    beam_size: int = 4,
    max_new_tokens: int | None = None,
    length_penalty: float = 1.0,
) -> Translation:
    """Keep the ``beam_size`` best partial translations per sentence; return each row's best one."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    c, B, K, device = model.config, src_ids.shape[0], beam_size, src_ids.device
    src_valid = (src_ids != c.pad_id) if src_valid is None else src_valid.bool()
    runner = RNNRunner(model, src_ids, src_valid, _max_steps(model, src_valid, max_new_tokens), expand=K)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: let only the first one expand at step 1
    done = torch.zeros(B, K, dtype=torch.bool, device=device)
    tokens = torch.empty(B * K, 0, dtype=torch.long, device=device)
    base = (torch.arange(B, device=device) * K)[:, None]  # (B, 1)
    logits = runner.prefill()
    for t in range(runner.max_new_tokens):
        logp = _log_probs(logits, c.pad_id).view(B, K, -1)
        scores, parent, y = _beam_step(scores, logp, done, c.pad_id)  # (B, K) each
        rows = (base + parent).view(-1)  # (B * K,) flat index of each survivor's parent
        runner.reorder(rows)
        tokens = torch.cat([tokens.index_select(0, rows), y.view(-1, 1)], dim=1)  # (B * K, N)
        done = done.view(-1).index_select(0, rows).view(B, K) | (y == c.eos_id)
        if bool(done.all()) or t + 1 == runner.max_new_tokens:
            break
        logits = runner.step(y.view(-1))
    best = _best_rows(tokens.view(B, K, -1), scores, c.pad_id, length_penalty)  # (B,) flat rows
    runner.reorder(best)
    return _finish(tokens.index_select(0, best), runner, scores.view(-1)[best], c.pad_id)


def _best_rows(tokens: Tensor, scores: Tensor, pad_id: int, length_penalty: float) -> Tensor:
    """tokens (B, K, N), scores (B, K) -> flat row (b * K + k) of each sentence's best hypothesis (B,)."""
    B, K, _ = tokens.shape
    lengths = (tokens != pad_id).sum(dim=-1).clamp(min=1)  # (B, K)
    best = (scores / lengths.float() ** length_penalty).argmax(dim=-1)  # (B,)
    return torch.arange(B, device=tokens.device) * K + best
