"""A local HTTP inference server for one model folder: ``attnlab serve --model DIR``.

Dimension key: none (HTTP; shapes live in :mod:`attnlab.pipelines`).

    from attnlab.serve import BackgroundServer, ServeSettings, create_app
    app = create_app(attnlab.pipeline("text-generation", model="runs/shakespeare"),
                     ServeSettings(name="shakespeare", max_concurrency=4))
    with BackgroundServer(app) as server:    # 127.0.0.1 on a free port; server.url
        ...

Routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/pipeline`` (the task), ``POST
/v1/completions`` (OpenAI-style, streaming with server-sent events). Needs the ``serve`` extra
(fastapi, uvicorn; pillow for images). See ``docs/serve.md``.
"""

from attnlab.serve.app import DEFAULT_MAX_BODY_BYTES, ServeSettings, create_app
from attnlab.serve.limits import BodySizeLimit, ConcurrencyLimit, Slots
from attnlab.serve.server import BackgroundServer, run

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "BackgroundServer",
    "BodySizeLimit",
    "ConcurrencyLimit",
    "ServeSettings",
    "Slots",
    "create_app",
    "run",
]
