"""Bounds on slow clients: a connection must send its request's headers, and
each chunk of its body, within a time limit, or it is closed.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``); a
client that opens connections and trickles headers (or a body) holds each one
open for ever. :class:`ReadTimeouts` gives uvicorn's protocols (httptools, the
fast C parser the service serves with, and h11; see :mod:`service.api.protocols`)
two timers:
``GMM_HTTP_HEADER_TIMEOUT_SECONDS`` from the connection (or the end of the
previous response) to the end of the headers, and
``GMM_HTTP_BODY_TIMEOUT_SECONDS`` between two chunks of a body.
"""

from __future__ import annotations

import asyncio
import logging

from ..config import get_settings

__all__ = ["ReadTimeouts"]

log = logging.getLogger("service.api")


class ReadTimeouts:
    """Header and body read timeouts, mixed into one of uvicorn's HTTP protocols.

    The limits are the settings ``GMM_HTTP_HEADER_TIMEOUT_SECONDS`` and
    ``GMM_HTTP_BODY_TIMEOUT_SECONDS``.
    """

    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        settings = get_settings()
        self._header_seconds = settings.http_header_timeout_seconds
        self._body_seconds = settings.http_body_timeout_seconds
        self._arm(self._header_seconds, "headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:  # the headers of the next request
            if self._timer is None:  # not re-armed by each piece: a bound on them all
                self._arm(self._header_seconds, "headers")
        elif cycle.more_body:  # each chunk of the body gets its own time
            self._arm(self._body_seconds, "body")
        else:  # the request is complete; the app has it
            self._disarm()

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expire, what)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, what: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        log.info("closing a slow connection", extra={"waiting_for": what})
        self.transport.close()
