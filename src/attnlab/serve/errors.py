"""Error answers: every non-2xx response carries one JSON body, ``{"error": {message, type, code, param}}``.

Dimension key: none.

Validation failures (pydantic) become 422 with the failing fields listed in ``detail`` as well;
``ApiError`` carries the status chosen by the handler (400 for a prompt that does not fit the
context, 404 for a route the served task lacks, ...); HTTP errors raised by the framework (404 for
an unknown path, 405, the 413 of the body limit) keep their status. Input values are never echoed
back, so a 1 MB body cannot come back in the error.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from attnlab.serve.limits import error_body


class ApiError(Exception):
    """An error answer with its HTTP status; raised by the route handlers."""

    def __init__(self, status: int, message: str, *, code: str = "invalid_request", param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def error_kind(status: int) -> str:
    return {401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error",
            429: "rate_limit_error"}.get(status, "invalid_request_error" if status < 500 else "server_error")


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic errors without their (possibly huge) input values."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors]


def validation_response(errors: list[dict[str, Any]], *, prefix: tuple[str, ...] = ()) -> JSONResponse:
    details = validation_details([{**e, "loc": (*prefix, *e.get("loc", ()))} for e in errors])
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    param = _field(first["loc"])
    message = f"{param}: {first['msg']}" + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")
    body = error_body(message, kind="invalid_request_error", code="validation_error", param=param)
    return JSONResponse({**body, "detail": details}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _invalid_params(request: Request, exc: ValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()), prefix=("parameters",))

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        body = error_body(exc.message, kind=error_kind(exc.status), code=exc.code, param=exc.param)
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        code = codes.get(exc.status_code, "http_error")
        body = error_body(str(exc.detail), kind=error_kind(exc.status_code), code=code)
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))
