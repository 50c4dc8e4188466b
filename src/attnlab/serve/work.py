"""Running pipeline work in worker threads, with cancellation when the client goes away.

Dimension key: none (threads, events and text).

The event loop never runs a model: work goes to a thread pool (one thread per concurrency slot)
together with a ``threading.Event``. The generating pipelines check that event after every token.

- :func:`run_cancellable` awaits a result while polling ``request.is_disconnected()``; on a
  disconnect it sets the event and waits for the worker to stop (one token at most) before the
  handler returns, so the request's concurrency slot is freed only once the compute has stopped.
- :func:`stream_from_thread` turns a blocking iterator into an async one; when the consumer stops
  (the client disconnected and the framework cancelled the response), its ``finally`` sets the
  event and, shielded from the cancellation, waits for the worker to stop.

:class:`StopTrimmer` implements OpenAI's ``stop`` semantics on streamed text: the text ends before
the first stop string, and text that could be the start of a stop string is held back until it is
known not to be one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

import anyio
from starlette.requests import Request

T = TypeVar("T")
_END = object()


class ClientDisconnected(Exception):
    """The client closed the connection before the answer was ready."""


async def run_cancellable(
    request: Request, executor: Executor, work: Callable[[threading.Event], T], *, poll_seconds: float = 0.05
) -> T:
    """``work(cancel_event)`` in a worker thread; ClientDisconnected once the client is gone and work stopped."""
    cancel = threading.Event()
    future = asyncio.get_running_loop().run_in_executor(executor, work, cancel)
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=poll_seconds)
            if done:
                return future.result()
            if await request.is_disconnected():
                raise ClientDisconnected()
    finally:
        if not future.done():
            cancel.set()
            with anyio.CancelScope(shield=True):
                await asyncio.wait({future})
            with contextlib.suppress(BaseException):
                future.result()  # retrieve the worker's (expected) GenerationCancelled


async def stream_from_thread(
    executor: Executor, produce: Callable[[threading.Event], Iterator[T]]
) -> AsyncIterator[T | BaseException]:
    """Items of ``produce(cancel_event)`` as they come; an exception it raises is yielded, then the stream ends."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop may be closing at shutdown
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            for item in produce(cancel):
                put(item)
                if cancel.is_set():
                    break
        except BaseException as e:  # handed to the consumer, which decides what to answer
            put(e)
        finally:
            put(_END)

    future = loop.run_in_executor(executor, run)
    try:
        while (item := await queue.get()) is not _END:
            yield item
    finally:
        cancel.set()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({future})


class StopTrimmer:
    """Visible text of one streamed sequence under OpenAI ``stop`` strings."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.emitted = ""
        self.hit = False

    def visible(self, text: str, *, final: bool) -> str:
        """The part of ``text`` that may be shown now; sets ``hit`` once a stop string appears."""
        cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.hit = True
            return text[: min(cuts)]
        if final:
            return text
        hold = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        return text[: len(text) - hold]

    def delta(self, text: str, *, final: bool) -> str:
        """New visible text since the previous call (never retracts what was shown)."""
        shown = self.visible(text, final=final)
        if not shown.startswith(self.emitted):
            return ""
        out, self.emitted = shown[len(self.emitted) :], shown
        return out
