"""One line of log and one metric sample per request, with a request id.

A plain ASGI middleware: the request id comes from ``X-Request-ID`` (or is
made up), is echoed in the response, and is logged with method, route
template, status and duration.
"""

from __future__ import annotations

import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import Metrics

__all__ = ["RequestObserver"]

log = logging.getLogger("service.api.requests")
_VALID_ID = re.compile(r"^[\w.:-]{1,128}$")


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics, record_metrics: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.record_metrics = record_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"x-request-id"
            ),
            "",
        )
        request_id = given if _VALID_ID.match(given) else os.urandom(16).hex()
        status = 500
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            if self.record_metrics:
                self.metrics.requests.labels(method, route, str(status)).inc()
                self.metrics.request_seconds.labels(method, route).observe(seconds)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
