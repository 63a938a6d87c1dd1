"""The one error shape: ``{"error": code, "detail": message}``.

* a :class:`~ratecard.errors.RatecardError` answers its ``http_status`` and ``code``;
* a request that does not validate (malformed JSON, wrong types, missing fields)
  answers 422 ``invalid_input`` naming each bad field;
* an unknown route 404 ``not_found``, a wrong method 405 ``method_not_allowed``,
  an oversized body 413 ``payload_too_large``;
* a value the database cannot take (a NUL character, a number out of range) 422, and
  so does arithmetic that fails on an absurd number (``1e999999999``), and YAML the
  parser refuses outright (control characters) is 422 ``catalog_invalid``;
* anything else 500 ``internal`` (logged with its traceback; never a 5xx for input
  a client can send: that would be a bug).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ratecard.api.http import Json, dumps
from ratecard.errors import RatecardError

log = logging.getLogger("ratecard.api")

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "Stable error code."},
        "detail": {"type": "string", "description": "What went wrong and what to do."},
    },
}


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def error_response(status: int, code: str, detail: str,
                   headers: dict[str, str] | None = None) -> Json:
    return Json(error_body(code, detail), status_code=status, headers=headers)


def error_bytes(code: str, detail: str) -> bytes:
    return dumps(error_body(code, detail))


def _loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        head, rest = parts[0], parts[1:]
        return f"{head}.{'.'.join(rest)}" if rest else head
    return ".".join(parts)


def validation_detail(errors: Sequence[Any]) -> str:
    out = []
    for e in list(errors)[:20]:
        if not isinstance(e, dict):
            out.append(str(e))
            continue
        where = _loc(e.get("loc", ()))
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx") or {}
            msg = f"malformed JSON ({ctx.get('error', 'cannot parse')})"
        out.append(f"{where}: {msg}" if where else msg)
    more = len(errors) - 20
    if more > 0:
        out.append(f"and {more} more")
    return "; ".join(out) or "the request is not valid"


async def _ratecard_error(_request: Request, exc: Exception) -> Json:
    assert isinstance(exc, RatecardError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return error_response(exc.http_status, exc.code, exc.message, headers)


async def _validation_error(_request: Request, exc: Exception) -> Json:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_input", validation_detail(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> Json:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = STATUS_CODES.get(status, "error")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if status == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(status, code, detail, headers)


async def _database_error(_request: Request, exc: Exception) -> Json:
    orig = getattr(exc, "orig", None) or exc
    return error_response(422, "invalid_input",
                          f"a value in the request cannot be stored or compared: "
                          f"{str(orig).splitlines()[0][:200]}")


async def _arithmetic_error(request: Request, exc: Exception) -> Json:
    log.warning("arithmetic error on %s %s: %r", request.method, request.url.path, exc)
    return error_response(422, "invalid_input",
                          "a number in the request is out of range (arithmetic on it failed); "
                          "send quantities and amounts of a sensible size")


async def _yaml_error(_request: Request, exc: Exception) -> Json:
    return error_response(422, "catalog_invalid",
                          f"the catalog is not valid YAML: {str(exc).splitlines()[0][:300]}")


async def _operational_error(_request: Request, exc: Exception) -> Json:
    log.error("database unavailable: %s", exc)
    return error_response(503, "unavailable", "the database is unavailable; try again")


async def _unexpected(request: Request, exc: Exception) -> Json:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", f"internal error ({type(exc).__name__}); "
                          "it is logged on the server")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    from sqlalchemy.exc import DataError, OperationalError

    app.add_exception_handler(RatecardError, _ratecard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _database_error)
    app.add_exception_handler(OperationalError, _operational_error)
    app.add_exception_handler(ArithmeticError, _arithmetic_error)
    app.add_exception_handler(yaml.YAMLError, _yaml_error)
    app.add_exception_handler(Exception, _unexpected)
