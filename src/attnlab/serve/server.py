"""Running the app with uvicorn: in the foreground (``attnlab serve``) or in a background thread.

Dimension key: none.

    app = create_app(attnlab.pipeline("sentiment-analysis", model="runs/sst2"))
    with BackgroundServer(app) as server:          # 127.0.0.1, a free port chosen by the OS
        httpx.post(f"{server.url}/v1/pipeline", json={"inputs": "great film"})

The server binds 127.0.0.1 unless told otherwise; binding another address prints a warning, since
there is no authentication.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _uvicorn_config(app: Any, *, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_keep_alive=5,
                          timeout_graceful_shutdown=2, access_log=log_level in ("debug", "info"))


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on (host, port); port 0 lets the OS choose a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot bind {host}:{port} ({e.strerror}); is another server using that port?") from None
    return sock


class BackgroundServer:
    """uvicorn serving ``app`` in a daemon thread; a context manager that stops it on exit."""

    def __init__(self, app: Any, *, host: str = LOOPBACK, port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self.sock = bind(host, port)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = uvicorn.Server(_uvicorn_config(app, log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name="attnlab-serve")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(
    model: str | Path, *, task: str | None = None, host: str = LOOPBACK, port: int = 8000, name: str | None = None,
    max_concurrency: int = 4, max_body_bytes: int | None = None, device: str = "auto", batch_size: int = 8,
    log_level: str = "info",
) -> None:
    """Load ``model`` into its pipeline and serve it until interrupted (what ``attnlab serve`` runs)."""
    import uvicorn

    import attnlab
    from attnlab.serve.app import DEFAULT_MAX_BODY_BYTES, ServeSettings, create_app

    pipe = attnlab.pipeline(task, model=model, device=device, batch_size=batch_size)
    settings = ServeSettings(name=name or Path(model).expanduser().resolve().name, max_concurrency=max_concurrency,
                             max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES)
    app = create_app(pipe, settings)
    if not is_loopback(host):
        print(f"warning: binding {host} exposes the server beyond this machine, and it has no authentication",
              file=sys.stderr)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {pipe.task} from {model} as {settings.name!r} on http://{shown}:{port} "
          f"(max {max_concurrency} concurrent requests; Ctrl-C stops)", file=sys.stderr)
    uvicorn.Server(_uvicorn_config(app, log_level=log_level)).run(sockets=[sock])
