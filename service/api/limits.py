"""Request body size limit, as a plain ASGI middleware (no body buffering)."""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit"]


def _detail(max_bytes: int, setting: str = "GMM_MAX_BODY_BYTES") -> str:
    return f"the request body exceeds {max_bytes} bytes ({setting})"


class _TooLarge(HTTPException):
    """Raised while the body streams in; FastAPI passes HTTPExceptions through
    its body parsing, and the problem handler turns it into a 413."""

    def __init__(self, max_bytes: int, setting: str) -> None:
        super().__init__(413, _detail(max_bytes, setting))


class BodySizeLimit:
    """Answers 413 problem+json when a body exceeds ``max_bytes``.

    Checks ``Content-Length`` up front and counts streamed chunks as they arrive.
    Bodies that stream to storage (``POST streamed_path`` with one of
    ``streamed_types``) have ``streamed_max_bytes`` instead (GMM_MAX_DATASET_BYTES).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        streamed_max_bytes: int | None = None,
        streamed_path: str = "",
        streamed_types: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed_max_bytes = streamed_max_bytes
        self.streamed_path = streamed_path
        self.streamed_types = tuple(t.encode() for t in streamed_types)

    def _limit(self, scope: Scope) -> tuple[int, str]:
        if (
            self.streamed_max_bytes is not None
            and scope.get("method") == "POST"
            and scope.get("path") == self.streamed_path
        ):
            for name, value in scope.get("headers", ()):
                if name == b"content-type":
                    if value.split(b";")[0].strip().lower() in self.streamed_types:
                        return self.streamed_max_bytes, "GMM_MAX_DATASET_BYTES"
                    break
        return self.max_bytes, "GMM_MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, setting = self._limit(scope)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_large = int(value) > max_bytes
                except ValueError:
                    too_large = False
                if too_large:
                    await self._reject(send, max_bytes, setting)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _TooLarge(max_bytes, setting)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send, max_bytes, setting)

    async def _reject(self, send: Send, max_bytes: int, setting: str) -> None:
        body = json.dumps(
            {
                "type": "/problems/too-large",
                "title": "Content Too Large",
                "status": 413,
                "detail": _detail(max_bytes, setting),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
