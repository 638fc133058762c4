"""One send per response: the writes a connection makes in one turn of the event loop
leave together.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, and the body when it sends ``http.response.body``: two
``send`` system calls for every response, each of which, on loopback, also runs
the receiver's TCP stack. A profile of ``score`` with one row under load put 29%
of the event loop's time in the first of them. Starlette sends both messages in
the same turn of the loop, so holding a connection's writes until the end of the
turn (``loop.call_soon``) and handing them over together (``writelines``: one
``writev`` under uvloop, no copy) halves the calls and changes nothing else: a
streamed response's chunks, which come turns apart, still leave as they come.
"""

from __future__ import annotations

import asyncio

__all__ = ["CoalescedWrites"]


class _CoalescingTransport:
    """A transport whose ``write`` calls of one loop turn reach the real one as one call."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(data)

    def writelines(self, pieces) -> None:
        for piece in pieces:
            self.write(piece)

    def _flush(self) -> None:
        held, self._held = self._held, []
        if not held or self._transport.is_closing():
            return
        if len(held) == 1:
            self._transport.write(held[0])
        else:
            self._transport.writelines(held)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class CoalescedWrites:
    """Mixin for uvicorn's HTTP protocols: each connection writes through a
    :class:`_CoalescingTransport` (see the module docstring)."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[misc, attr-defined]
