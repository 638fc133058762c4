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
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..logs import line_writer
from ..metrics import Metrics

__all__ = ["RequestObserver"]

log = logging.getLogger("service.api.requests")
_VALID_ID = re.compile(r"^[\w.:-]{1,128}$")


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics, record_metrics: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.record_metrics = record_metrics
        self._write_line: Callable[[str, dict[str, Any]], None] | None = None
        # The labelled series, looked up once per (method, route, status).
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def _record(self, method: str, route: str, status: int, seconds: float) -> None:
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self.metrics.requests.labels(method, route, str(status))
            self._counters[(method, route, status)] = counter
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = self.metrics.request_seconds.labels(method, route)
            self._histograms[(method, route)] = histogram
        counter.inc()
        histogram.observe(seconds)

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
                self._record(method, route, status, seconds)
            if self._write_line is None:  # logging is configured by now
                self._write_line = line_writer(log)
            self._write_line(
                "request",
                {
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
