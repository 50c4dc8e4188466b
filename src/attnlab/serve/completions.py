"""OpenAI-style ``POST /v1/completions`` for text-generation models, plain and streamed (server-sent events).

Dimension key: none (JSON; the model's shapes live in :mod:`attnlab.pipelines`).

    {"prompt": "ROMEO:", "max_tokens": 40, "temperature": 0.8, "n": 2, "stop": ["\n\n"], "stream": true}

``temperature`` 0 decodes greedily; ``n`` samples per prompt; ``stop`` strings end a choice before
them (streamed text that might begin a stop string is held back until it is known not to). A
stream sends one ``data:`` event per new text of a choice, a final event per choice with its
``finish_reason`` ("stop" or "length"), then ``data: [DONE]``. A prompt whose tokens plus
``max_tokens`` exceed the context is a 400 that names both numbers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from attnlab.generation import GenerationConfig
from attnlab.pipelines import Pipeline, TextChunk
from attnlab.pipelines.generative import GenerativePipeline
from attnlab.serve.errors import ApiError
from attnlab.serve.limits import error_body
from attnlab.serve.schemas import CompletionRequest
from attnlab.serve.work import StopTrimmer, run_cancellable, stream_from_thread

logger = logging.getLogger("attnlab.serve")


def context_size(pipe: GenerativePipeline) -> int | None:
    ctx = getattr(pipe.model.config, "max_len", None)
    return int(ctx) if isinstance(ctx, int) else None


def check_fit(pipe: GenerativePipeline, prompts: list[str], max_new: int, *, field: str) -> int:
    """400 naming both numbers when a prompt plus ``max_new`` tokens exceeds the context; the prompt tokens."""
    try:
        rows = pipe.encode_prompts(prompts)
    except ValueError as e:
        raise ApiError(422, str(e), code="invalid_input") from None
    ctx = context_size(pipe)
    decoder_only = pipe.task == "text-generation"
    for i, row in enumerate(rows):
        n = max(len(row), 1)
        if ctx is not None and decoder_only and n + max_new > ctx:
            raise ApiError(
                400, f"prompt {i} has {n} tokens and {field} is {max_new}: {n} + {max_new} = {n + max_new} exceeds "
                f"the model's context of {ctx} tokens; shorten the prompt or lower {field} to at most "
                f"{max(ctx - n, 0)}", code="context_length_exceeded", param=field,
            )
        if ctx is not None and not decoder_only and 1 + max_new > ctx:
            raise ApiError(400, f"{field} is {max_new}, but the decoder's context is {ctx} tokens (start token "
                           f"included); lower {field} to at most {ctx - 1}", code="context_length_exceeded",
                           param=field)
    return sum(len(r) for r in rows)


def _generation_config(pipe: GenerativePipeline, req: CompletionRequest) -> GenerationConfig:
    greedy = req.temperature == 0
    try:
        return pipe.generation_config.replace(
            max_new_tokens=req.max_tokens, min_new_tokens=0, do_sample=not greedy,
            temperature=1.0 if greedy else req.temperature, top_p=req.top_p, top_k=req.top_k,
            num_return_sequences=req.n, num_beams=1, seed=req.seed, repetition_penalty=req.repetition_penalty,
            stop_strings=tuple(req.stops), no_repeat_ngram_size=0,
        )
    except ValueError as e:
        raise ApiError(422, str(e), code="invalid_input") from None


def add_completions_route(app: FastAPI, pipe: Pipeline, name: str, executor: ThreadPoolExecutor) -> None:
    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request, req: CompletionRequest) -> JSONResponse | StreamingResponse:
        if pipe.task != "text-generation" or not isinstance(pipe, GenerativePipeline):
            raise ApiError(404, f"/v1/completions needs a text-generation model; this server runs {pipe.task!r} "
                           "(use POST /v1/pipeline)", code="not_found")
        if req.model is not None and req.model != name:
            raise ApiError(404, f"model {req.model!r} is not served here; this server serves {name!r}",
                           code="model_not_found", param="model")
        config = _generation_config(pipe, req)
        prompt_tokens = await run_in_threadpool(check_fit, pipe, req.prompts, req.max_tokens, field="max_tokens")
        meta = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": name}
        if req.stream:
            events = _sse(pipe, req, config, meta, executor)
            return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})

        def work(cancel: threading.Event) -> list[list[Any]]:
            try:
                return pipe.complete(req.prompts, config, cancel=cancel)
            except ValueError as e:
                raise ApiError(422, str(e), code="invalid_input") from None

        groups = await run_cancellable(request, executor, work)
        return JSONResponse(_completion_body(req, groups, meta, prompt_tokens))


def _completion_body(req: CompletionRequest, groups: list[list[Any]], meta: dict[str, Any],
                     prompt_tokens: int) -> dict[str, Any]:
    choices, used = [], 0
    for i, (prompt, group) in enumerate(zip(req.prompts, groups)):
        for j, c in enumerate(group):
            trim = StopTrimmer(req.stops)
            text = trim.visible(c.text, final=True)
            reason = "stop" if trim.hit else c.finish_reason
            used += len(c.token_ids)
            choices.append({"text": (prompt if req.echo else "") + text, "index": i * req.n + j, "logprobs": None,
                            "finish_reason": reason})
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": used, "total_tokens": prompt_tokens + used}
    return {**meta, "choices": choices, "usage": usage}


def _sse_event(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


async def _sse(pipe: GenerativePipeline, req: CompletionRequest, config: GenerationConfig, meta: dict[str, Any],
               executor: ThreadPoolExecutor) -> AsyncIterator[str]:
    """Server-sent events: one chunk per new text of a choice, a final chunk with its finish_reason, [DONE]."""
    trimmers: dict[int, StopTrimmer] = {}
    closed: set[int] = set()

    def choice(index: int, text: str, reason: str | None) -> str:
        return _sse_event({**meta, "choices": [{"text": text, "index": index, "logprobs": None,
                                                  "finish_reason": reason}]})

    if req.echo:
        for i, prompt in enumerate(req.prompts):
            for j in range(req.n):
                yield choice(i * req.n + j, prompt, None)
    async for item in stream_from_thread(executor, lambda cancel: pipe.stream(req.prompts, config, cancel=cancel)):
        if isinstance(item, BaseException):  # the headers are sent: report in the stream, then end it
            if isinstance(item, ValueError):
                body = error_body(str(item), kind="invalid_request_error", code="invalid_input")
            else:
                logger.error("generation failed", exc_info=item)
                body = error_body("generation failed", kind="server_error", code="generation_error")
            yield _sse_event(body)
            return
        chunk: TextChunk = item
        if chunk.index in closed:
            continue
        trim = trimmers.setdefault(chunk.index, StopTrimmer(req.stops))
        delta = trim.delta(chunk.text, final=chunk.done)
        if chunk.done or trim.hit:
            closed.add(chunk.index)
            yield choice(chunk.index, delta, "stop" if trim.hit else chunk.finish_reason)
        elif delta:
            yield choice(chunk.index, delta, None)
    yield _sse_event("[DONE]")
