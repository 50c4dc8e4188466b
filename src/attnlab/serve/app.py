"""The FastAPI application: the pipeline task, OpenAI-style completions, health, limits.

Dimension key: none (HTTP routes; the model's shapes live in the pipelines).

Routes:

    GET  /health           {"status": "ok", "task", "model", "active_requests", "max_concurrency"}
    GET  /v1/models        OpenAI's model list (the one served model)
    POST /v1/pipeline      {"inputs": str | [str], "parameters": {...}} -> the pipeline's output, as JSON
    POST /v1/completions   OpenAI completions (text-generation models), ``"stream": true`` for SSE

Requests beyond ``max_concurrency`` in flight get 429; bodies over ``max_body_bytes`` get 413;
malformed or out-of-range fields get 422; a prompt that does not fit the context with its
``max_tokens`` gets 400 naming both numbers. Work runs in a thread pool with a cancellation flag,
so a client that disconnects stops its generation within one token and frees its slot.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from attnlab.pipelines import GenerationCancelled, Pipeline
from attnlab.pipelines.generative import GenerativePipeline
from attnlab.serve.completions import add_completions_route, check_fit
from attnlab.serve.errors import ApiError, install_error_handlers
from attnlab.serve.limits import BodySizeLimit, ConcurrencyLimit, Slots
from attnlab.serve.schemas import MAX_TEXT_CHARS, PipelineRequest, call_options
from attnlab.serve.work import ClientDisconnected, run_cancellable

EXEMPT_PATHS = frozenset({"/health", "/v1/models", "/openapi.json"})
DEFAULT_MAX_BODY_BYTES = 1_000_000  # 1 MB


@dataclasses.dataclass
class ServeSettings:
    name: str = "attnlab"  # the model id reported by /v1/models and in completions
    max_concurrency: int = 4  # requests in flight (work routes); beyond: 429
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # beyond: 413

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")


def create_app(pipe: Pipeline, settings: ServeSettings | None = None) -> FastAPI:
    """An ASGI app serving ``pipe`` (see the module docstring); run it with uvicorn."""
    s = settings or ServeSettings()
    executor = ThreadPoolExecutor(max_workers=s.max_concurrency, thread_name_prefix="attnlab-serve")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title=f"attnlab serve: {s.name}", version="1", docs_url=None, redoc_url=None, lifespan=lifespan)
    slots = Slots(s.max_concurrency)
    app.state.pipeline, app.state.settings, app.state.executor, app.state.slots = pipe, s, executor, slots
    install_error_handlers(app)
    app.add_exception_handler(ClientDisconnected, _client_gone)
    app.add_middleware(BodySizeLimit, max_bytes=s.max_body_bytes)
    app.add_middleware(ConcurrencyLimit, slots=slots, exempt=EXEMPT_PATHS)  # added last: runs first
    _add_info_routes(app, pipe, s, slots)
    _add_pipeline_route(app, pipe, executor)
    add_completions_route(app, pipe, s.name, executor)
    return app


async def _client_gone(request: Request, exc: ClientDisconnected) -> Response:
    return Response(status_code=499)  # nginx's "client closed request"; nobody is left to read it


def _add_info_routes(app: FastAPI, pipe: Pipeline, s: ServeSettings, slots: Slots) -> None:
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "task": pipe.task, "model": s.name, "active_requests": slots.active,
                "max_concurrency": slots.max_active}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        entry = {"id": s.name, "object": "model", "created": 0, "owned_by": "attnlab", "task": pipe.task}
        return {"object": "list", "data": [entry]}


# ---- POST /v1/pipeline ---------------------------------------------------------------------------


def _add_pipeline_route(app: FastAPI, pipe: Pipeline, executor: ThreadPoolExecutor) -> None:
    @app.post("/v1/pipeline")
    async def run_pipeline(request: Request, body: PipelineRequest) -> JSONResponse:
        options = call_options(pipe.task, body.parameters)  # pydantic ValidationError -> 422
        if pipe.task == "image-classification":
            inputs = _decode_images(body.inputs)
        else:
            inputs = _check_text_lengths(body.inputs)
        if isinstance(pipe, GenerativePipeline):  # tokenizing can take a while: off the event loop
            await run_in_threadpool(_check_pipeline_context, pipe, inputs, options)

        def work(cancel: threading.Event) -> Any:
            extra = {"cancel": cancel} if isinstance(pipe, GenerativePipeline) else {}
            return _call(pipe, inputs, {**options, **extra})

        return JSONResponse(await run_cancellable(request, executor, work))


def _call(pipe: Pipeline, inputs: Any, options: dict[str, Any]) -> Any:
    """The pipeline's answer; bad input found by the pipeline itself becomes a 422."""
    try:
        return pipe(inputs, **options)
    except GenerationCancelled:
        raise
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise ApiError(422, str(e), code="invalid_input") from None


def _check_text_lengths(inputs: str | list[str]) -> str | list[str]:
    for i, text in enumerate([inputs] if isinstance(inputs, str) else inputs):
        if len(text) > MAX_TEXT_CHARS:
            raise ApiError(422, f"inputs[{i}] has {len(text)} characters; the limit for text is {MAX_TEXT_CHARS}",
                           code="validation_error", param="inputs")
    return inputs


def _decode_images(inputs: str | list[str]) -> Any:
    """base64 (optionally a ``data:image/...;base64,`` URL) -> bytes; never a path or a URL to fetch."""
    items = [inputs] if isinstance(inputs, str) else inputs
    out = []
    for i, item in enumerate(items):
        data = item.split(",", 1)[1] if item.startswith("data:") and "," in item else item
        try:
            out.append(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            raise ApiError(422, f"inputs[{i}] must be a base64-encoded image (PNG, JPEG, ...)",
                           code="invalid_input", param="inputs") from None
    return out[0] if isinstance(inputs, str) else out


def _check_pipeline_context(pipe: GenerativePipeline, inputs: str | list[str], options: dict[str, Any]) -> None:
    max_new = options.get("max_new_tokens", pipe.generation_config.max_new_tokens)
    check_fit(pipe, [inputs] if isinstance(inputs, str) else list(inputs), max_new, field="max_new_tokens")
