"""Beam search (and beam sampling) with HF transformers' semantics.

Dimension key: B batch (sources / prompts), K beams, C candidates per step (2K, or K times
1 + number of eos ids when larger), N max new tokens, V vocab, P0 history columns before the
first new token.

One step, per batch row:

    total    = running_score[k] + log_softmax(processed logits)[k, v]     (K * V candidates)
    C best   (top-C, or C drawn without replacement when sampling)
    hits     = candidate ends here: eos, a stop string, or the last allowed token
    running  = K best candidates that did not hit
    finished = K best of (finished so far, candidates ranked among the first K that hit), scored
               sum_logprob / generated_len ** length_penalty (generated_len counts the eos)

Stopping follows ``early_stopping``: True stops a row once K hypotheses finished; False stops when
the best running beam, scored at its current length, cannot beat the worst finished one; "never"
scores the running beam at the longest possible length when length_penalty > 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from attnlab.generation.config import GenerationConfig
from attnlab.generation.processors import LogitsProcessor, apply_processors
from attnlab.generation.runners import Runner
from attnlab.generation.sampling import check_finite_logits
from attnlab.generation.stopping import stop_string_hits

NEG = -1.0e9  # score that takes a candidate out of the running (added, as HF does)


def gather_beams(x: Tensor, index: Tensor) -> Tensor:
    """x (B, K, ...) and index (B, J) -> (B, J, ...): rows of each batch entry picked by index."""
    idx = index.view(*index.shape, *([1] * (x.dim() - 2))).expand(*index.shape, *x.shape[2:])
    return torch.gather(x, 1, idx)


@dataclasses.dataclass
class BeamHypotheses:
    """The K best finished hypotheses of every batch row, best first after each merge."""

    tokens: Tensor  # (B, K, N) new tokens, pad after the end
    scores: Tensor  # (B, K) length-penalized scores; about -1e9 for empty slots
    done: Tensor  # (B, K) slot holds a finished hypothesis
    lengths: Tensor  # (B, K) generated tokens, eos included

    @classmethod
    def empty(cls, B: int, K: int, N: int, pad_id: int, device: torch.device) -> BeamHypotheses:
        return cls(
            torch.full((B, K, N), pad_id, dtype=torch.long, device=device),
            torch.full((B, K), NEG, device=device),
            torch.zeros(B, K, dtype=torch.bool, device=device),
            torch.zeros(B, K, dtype=torch.long, device=device),
        )

    def merge(self, tokens: Tensor, scores: Tensor, done: Tensor, lengths: Tensor) -> None:
        """Keep the K best of the current hypotheses and the (B, C) candidates."""
        K = self.scores.shape[1]
        all_scores = torch.cat([self.scores, scores], dim=1)  # (B, K + C)
        best = torch.topk(all_scores, K, dim=1).indices  # (B, K)
        self.tokens = gather_beams(torch.cat([self.tokens, tokens], dim=1), best)
        self.scores = gather_beams(all_scores, best)
        self.done = gather_beams(torch.cat([self.done, done], dim=1), best)
        self.lengths = gather_beams(torch.cat([self.lengths, lengths], dim=1), best)


class BeamSearch:
    """Runs beam search over a runner whose batch is B * K rows (beams of one row adjacent)."""

    def __init__(
        self,
        runner: Runner,
        prompt_history: Tensor,
        processors: Sequence[LogitsProcessor],
        config: GenerationConfig,
        *,
        eos_ids: Sequence[int],
        pad_id: int,
        tokenizer: Any = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.runner, self.processors, self.cfg = runner, list(processors), config
        self.prompt_history = prompt_history  # (B*K, P0)
        self.K, self.N = config.num_beams, config.max_new_tokens
        self.B = prompt_history.shape[0] // self.K
        self.tokenizer, self.generator, self.pad_id = tokenizer, generator, pad_id
        device = prompt_history.device
        self.eos = torch.tensor(list(eos_ids), dtype=torch.long, device=device)
        self.n_candidates = max(2, 1 + len(eos_ids)) * self.K
        self.run_tokens = torch.full((self.B, self.K, self.N), pad_id, dtype=torch.long, device=device)
        self.run_scores = torch.zeros(self.B, self.K, device=device)  # (B, K)
        self.run_scores[:, 1:] = NEG  # step 0: only beam 0 (all beams are equal) proposes
        self.finished = BeamHypotheses.empty(self.B, self.K, self.N, pad_id, device)
        self.improvable = torch.ones(self.B, 1, dtype=torch.bool, device=device)

    def steps(self) -> Iterator[Tensor]:
        """Run to the end; yields the best running beam's new tokens (B, t + 1) after each step."""
        logits = self.runner.prefill()  # (B*K, V)
        for t in range(self.N):
            check_finite_logits(logits, f"at new token {t}")
            history = torch.cat([self.prompt_history, self.run_tokens.view(self.B * self.K, self.N)[:, :t]], dim=1)
            logp = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
            logp = apply_processors(self.processors, history, logp)
            beam_src, hits = self._advance(logp, t)
            yield self.run_tokens[:, 0, : t + 1]
            if not self._should_continue(hits, t):
                break
            offsets = torch.arange(self.B, device=beam_src.device)[:, None] * self.K
            self.runner.reorder((beam_src + offsets).view(-1))
            logits = self.runner.step(self.run_tokens[:, :, t].reshape(-1))

    def _candidates(self, total: Tensor) -> tuple[Tensor, Tensor]:
        """(B, K*V) accumulated scores -> (scores, flat indices), each (B, C)."""
        C = min(self.n_candidates, total.shape[1])  # a tiny vocabulary may offer fewer
        if self.cfg.do_sample:
            idx = torch.multinomial(torch.softmax(total, dim=-1), C, generator=self.generator)
            return torch.gather(total, 1, idx), idx
        return torch.topk(total, C, dim=1)

    def _advance(self, logp: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """Extend beams by one token; returns (source beam of each running beam (B, K), hits (B, C))."""
        V = logp.shape[-1]
        total = (logp.view(self.B, self.K, V) + self.run_scores[:, :, None]).view(self.B, self.K * V)
        cand_scores, cand_idx = self._candidates(total)  # (B, C)
        cand_src, cand_tok = cand_idx // V, cand_idx % V
        cand_tokens = gather_beams(self.run_tokens, cand_src)  # (B, C, N)
        cand_tokens[:, :, t] = cand_tok
        hits = self._hits(cand_tok, cand_tokens, t)  # (B, C)
        running = cand_scores + hits.float() * NEG
        keep = torch.topk(running, self.K, dim=1).indices  # (B, K)
        self.run_tokens, self.run_scores = gather_beams(cand_tokens, keep), gather_beams(running, keep)
        self._update_finished(cand_tokens, cand_scores, hits, t)
        return gather_beams(cand_src, keep), hits

    def _hits(self, cand_tok: Tensor, cand_tokens: Tensor, t: int) -> Tensor:
        hits = torch.isin(cand_tok, self.eos) | (t + 1 >= self.N)  # (B, C)
        if self.cfg.stop_strings:
            B, C, N = cand_tokens.shape
            lengths = torch.full((B * C,), t + 1, dtype=torch.long, device=cand_tok.device)
            found = stop_string_hits(self.tokenizer, cand_tokens.view(B * C, N), lengths, self.cfg.stop_strings)
            hits = hits | found.view(B, C)
        return hits

    def _update_finished(self, cand_tokens: Tensor, cand_scores: Tensor, hits: Tensor, t: int) -> None:
        lp, early = self.cfg.length_penalty, self.cfg.early_stopping
        in_top_k = torch.arange(hits.shape[1], device=hits.device) < self.K  # (C,)
        just_done = hits & in_top_k[None, :]  # (B, C)
        scores = cand_scores / float(t + 1) ** lp
        row_full = self.finished.done.all(dim=1, keepdim=True) & (early is True)  # (B, 1)
        scores = scores + row_full.float() * NEG
        scores = scores + (~self.improvable).float() * NEG
        scores = scores + (~just_done).float() * NEG
        lengths = torch.full_like(hits, t + 1, dtype=torch.long)
        self.finished.merge(cand_tokens, scores, just_done, lengths)

    def _should_continue(self, hits: Tensor, t: int) -> bool:
        lp, early = self.cfg.length_penalty, self.cfg.early_stopping
        best_len = self.N if (early == "never" and lp > 0.0) else t + 1
        best_running = self.run_scores[:, :1] / float(best_len) ** lp  # (B, 1)
        worst_done = self.finished.scores.min(dim=1, keepdim=True).values  # (B, 1)
        worst = torch.where(self.finished.done, worst_done, torch.full_like(self.finished.scores, NEG))  # (B, K)
        self.improvable &= (best_running > worst).any(dim=1, keepdim=True)
        open_beam = not (bool(self.finished.done.all()) and early is True)
        return bool(self.improvable.any()) and open_beam and not bool(hits.all())

    def best(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """The n best finished hypotheses per row: tokens (B*n, N), lengths (B*n,), scores (B*n,)."""
        f = self.finished
        return (
            f.tokens[:, :n].reshape(self.B * n, self.N),
            f.lengths[:, :n].reshape(-1),
            f.scores[:, :n].reshape(-1),
        )
