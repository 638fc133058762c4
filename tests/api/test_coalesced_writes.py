"""A connection's writes of one loop turn leave as one call on the real transport."""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.server import ServerState

from service.api.coalesced_writes import _CoalescingTransport
from service.api.protocols import ServiceHttpToolsProtocol


class RecordingTransport(asyncio.Transport):
    """The calls a protocol makes on its transport, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, object]] = []
        self.closing = False

    def write(self, data) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, pieces) -> None:
        self.calls.append(("writelines", [bytes(piece) for piece in pieces]))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name, default=None):
        return default

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _run(body):
    return asyncio.run(body())


def test_writes_made_in_one_turn_reach_the_transport_as_one_call_in_order():
    async def body():
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"head")
        transport.write(b"body")
        assert real.calls == []
        await asyncio.sleep(0)
        return real.calls

    assert _run(body) == [("writelines", [b"head", b"body"])]


def test_a_single_write_is_passed_on_as_a_write():
    async def body():
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"only")
        await asyncio.sleep(0)
        return real.calls

    assert _run(body) == [("write", b"only")]


def test_writes_in_different_turns_leave_separately():
    async def body():
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"first")
        await asyncio.sleep(0)
        transport.write(b"second")
        await asyncio.sleep(0)
        return real.calls

    assert _run(body) == [("write", b"first"), ("write", b"second")]


def test_close_sends_what_is_held_before_closing():
    async def body():
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"last words")
        transport.close()
        await asyncio.sleep(0)
        return real.calls

    assert _run(body) == [("write", b"last words"), ("close", None)]


def test_abort_drops_what_is_held():
    async def body():
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"never sent")
        transport.abort()
        await asyncio.sleep(0)
        return real.calls

    assert _run(body) == [("abort", None)]


def test_held_bytes_count_in_the_write_buffer_size():
    async def body():
        transport = _CoalescingTransport(RecordingTransport(), asyncio.get_running_loop())
        transport.write(b"12345")
        return transport.get_write_buffer_size()

    assert _run(body) == 5


async def _plain_app(scope, receive, send):
    await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


def test_the_service_protocol_sends_a_response_s_headers_and_body_in_one_call():
    async def body():
        config = uvicorn.Config(_plain_app, http=ServiceHttpToolsProtocol, lifespan="off")
        config.load()
        protocol = ServiceHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        real = RecordingTransport()
        protocol.connection_made(real)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        for _ in range(50):
            await asyncio.sleep(0.01)
            if real.calls:
                break
        protocol.connection_lost(None)
        return real.calls

    writes = [(name, data) for name, data in _run(body) if name.startswith("write")]
    assert [name for name, _ in writes] == ["writelines"]
    head, content = writes[0][1]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert content == b"hello"
