"""The token-by-token loop for greedy search and sampling.

Dimension key: B batch (x returned sequences), P0 history columns before the first new token
(the padded prompt, or the decoder start token), N max new tokens, V vocab.

    logits = runner.prefill()
    for each new token t:
        scores = processors(history, logits)          (B, V)
        token  = argmax(scores) | sample(scores)      (B,)
        record token (pad for finished rows), yield
        logits = runner.step(token)

The loop never calls ``runner.step`` after the last token, and stops early once every row has
finished (checked at the stop state's sync points).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from attnlab.generation.processors import LogitsProcessor, apply_processors
from attnlab.generation.runners import Runner
from attnlab.generation.sampling import greedy_step, sample_step
from attnlab.generation.stopping import StopState


def token_steps(
    runner: Runner,
    history: Tensor,
    processors: Sequence[LogitsProcessor],
    stop: StopState,
    *,
    do_sample: bool,
    generator: torch.Generator | None = None,
    logits_out: list[Tensor] | None = None,
) -> Iterator[Tensor]:
    """Decode greedily or by sampling; yields each step's (B,) tokens.

    ``history`` (B, P0 + N) holds the prompt columns (-1 = padding) and receives the new tokens;
    results accumulate in ``stop.new_tokens`` / ``stop.lengths``. ``logits_out`` collects the raw
    (B, V) logits of every step when given.
    """
    p0, n_max = history.shape[1] - stop.new_tokens.shape[1], stop.new_tokens.shape[1]
    logits = runner.prefill()  # (B, V)
    for t in range(n_max):
        stop.watch(logits)
        if logits_out is not None:
            logits_out.append(logits.float())
        scores = apply_processors(processors, history[:, : p0 + t], logits.float())  # (B, V)
        tokens = sample_step(scores, generator) if do_sample else greedy_step(scores)  # (B,)
        tokens = stop.record(tokens)
        if processors:  # only processors read the history
            history[:, p0 + t] = tokens
        yield tokens
        if t + 1 == n_max or stop.all_done():
            break
        logits = runner.step(tokens)
    stop.all_done(force=True)  # surfaces NaN logits seen since the last sync point
