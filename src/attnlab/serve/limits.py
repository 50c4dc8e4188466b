"""ASGI middleware that protects the server: a request-body size limit and a concurrency cap.

Dimension key: none (bytes and request counts).

Both work at the ASGI layer, below the web framework, so they act before any body is parsed:

- :class:`BodySizeLimit` answers 413 at once when ``Content-Length`` exceeds the limit, and stops
  reading a body without one (chunked) as soon as the bytes received pass the limit. Once the 413
  answer is out, the rest of the upload is read and discarded (at most 16 x the limit, 5 s) before
  the connection closes, as web servers' "lingering close" does: closing a socket with unread
  data resets the connection, and a client still sending would never see the answer.
- :class:`ConcurrencyLimit` counts requests in flight on the limited paths (in a shared
  :class:`Slots`) and answers 429 (with ``Retry-After``) beyond ``max_active``. A request holds
  its slot until its response is finished, streaming included; a client that disconnects ends
  the response and so frees the slot.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Container, Sequence
from typing import Any

import anyio
from starlette.exceptions import HTTPException

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_body(message: str, *, kind: str, code: str, param: str | None = None) -> dict[str, Any]:
    """The JSON error body of every non-2xx answer (OpenAI's shape)."""
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    data = json.dumps(body).encode()
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                     *headers]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def drain(receive: Receive, *, max_bytes: int, seconds: float) -> None:
    """Read and discard what is left of a request body (bounded in bytes and time)."""
    seen = 0
    with anyio.move_on_after(seconds):
        while seen <= max_bytes:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            seen += len(message.get("body", b""))


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit; becomes a 413 answer."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")
        self.limit = limit


class BodySizeLimit:
    """413 for request bodies over ``max_bytes`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                body = error_body("Content-Length must be a non-negative integer", kind="invalid_request_error",
                                  code="bad_content_length")
                await send_json(send, 400, body, [(b"connection", b"close")])
                return
            if int(declared) > self.max_bytes:
                await self._too_large(receive, send)
                return
        started = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watch_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watch_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(receive, send)

    async def _too_large(self, receive: Receive, send: Send) -> None:
        """The 413 answer first, then the unread upload drained, then the end of the answer (and the connection)."""
        data = json.dumps(error_body(f"request body exceeds the limit of {self.max_bytes} bytes",
                                     kind="invalid_request_error", code="request_too_large")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                   (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": data, "more_body": True})
        await drain(receive, max_bytes=16 * self.max_bytes, seconds=5.0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@dataclasses.dataclass
class Slots:
    """The concurrency cap and the live count of requests holding a slot (read by /health)."""

    max_active: int
    active: int = 0  # only touched on the event loop thread

    def __post_init__(self) -> None:
        if self.max_active < 1:
            raise ValueError(f"max_active must be >= 1, got {self.max_active}")


class ConcurrencyLimit:
    """429 beyond ``slots.max_active`` requests in flight on paths not in ``exempt``."""

    def __init__(self, app: ASGIApp, *, slots: Slots, exempt: Container[str] = ()) -> None:
        self.app, self.slots, self.exempt = app, slots, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        slots = self.slots
        if slots.active >= slots.max_active:
            body = error_body(
                f"the server is at its limit of {slots.max_active} concurrent requests; retry shortly",
                kind="rate_limit_error", code="too_many_requests",
            )
            await send_json(send, 429, body, [(b"retry-after", b"1")])
            return
        slots.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            slots.active -= 1
