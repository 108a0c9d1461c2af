"""Two small ASGI middlewares: the request's context (logId, X-Request-Id, metrics, last-resort 500) and the
body size limit, which refuses before buffering (declared Content-Length) and while streaming (a count).
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import context, metrics
from gateway.errors import BadRequest, PayloadTooLarge, to_response

logger = logging.getLogger("gateway.request")


class ContextMiddleware:
    """Outermost: every answer, even one for an unexpected exception, is an envelope with X-Request-Id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx, token = context.begin(Headers(scope=scope).get("x-request-id"))
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response, status = True, message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = headers + [(b"x-request-id", context.header_value(ctx.log_id).encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started_response:
                logger.error("failure after the answer had started", exc_info=exc)
            else:
                await to_response(exc, scope["path"])(scope, receive, send_with_id)
        finally:
            metrics.observe(scope["path"], scope["method"], status, time.monotonic() - ctx.started)
            context.end(token)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await to_response(BadRequest("Malformed Content-Length"), scope["path"])(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                metrics.reject("body_too_large")
                await to_response(self._too_large(), scope["path"])(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    metrics.reject("body_too_large")
                    raise self._too_large()
            return message

        await self.app(scope, counting_receive, send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Request body larger than {self.max_bytes} bytes",
                               headers={"Connection": "close"})
