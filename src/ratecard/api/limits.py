"""Request body size limit: a clear 413 instead of reading an endless body.

A declared ``Content-Length`` over the limit is refused before any byte is read; a
chunked body is counted as it arrives and refused as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ratecard.api.handlers import error_bytes

DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024


def too_large(limit: int) -> str:
    return (f"the request body is larger than {limit:,} bytes; send fewer events per "
            "request (at most 10,000) or raise [api] max_body_mb in ratecard.toml")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > self.max_bytes:
            body = error_bytes("payload_too_large", too_large(self.max_bytes))
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0
        limit = self.max_bytes

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, too_large(limit))
            return message

        await self.app(scope, counted, send)
