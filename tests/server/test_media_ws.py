"""hotline's uvicorn WebSocket protocol: the direct path for media streams, on a real uvicorn
server with a real websockets client, against the ASGI path it replaces."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from hotline.server.media_ws import DIRECT, DirectSocket, direct_socket
from hotline.server.session import MAX_MESSAGE
from tests.support.aio import arun, wait_until
from tests.support.net import base_url, bind_ephemeral
from tests.support.server import serve_asgi


class Sink:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.bytes: list[bytes] = []
        self.disconnects: list[int] = []
        self.direct: DirectSocket | None = None

    def on_text(self, text: str) -> None:
        self.texts.append(text)
        if text == "echo" and self.direct is not None:
            self.direct.send_text("echo: " + str(len(self.texts)))
        if text == "boom":
            raise RuntimeError("a sink bug")

    def on_bytes(self, data: bytes) -> None:
        self.bytes.append(data)

    def on_disconnect(self, code: int) -> None:
        self.disconnects.append(code)


def make_app(sinks: list[Sink], *, before_attach: float = 0.0) -> Any:
    """A bare ASGI app: accept, (optionally wait so messages queue for ASGI), attach."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        if before_attach:
            await asyncio.sleep(before_attach)
        sink = Sink()
        sinks.append(sink)
        sink.direct = direct_socket(scope, sink)
        if sink.direct is None:  # not our protocol: record that ASGI is used
            sink.texts.append("(asgi)")
            return
        if scope["path"] == "/send":
            sink.direct.send_text("short")
            sink.direct.send_texts(["a" * 200, "b" * 70000, "é" * 3])
        await wait_until(lambda: bool(sink.disconnects), timeout=20)
        if scope["path"] == "/close":
            await send({"type": "websocket.close", "code": 1000})

    return app


def ws_url(sock: Any, path: str = "/media") -> str:
    return base_url(sock).replace("http", "ws") + path


def test_messages_arrive_in_order_including_those_queued_before_attach() -> None:
    async def main() -> None:
        sinks: list[Sink] = []
        sock = bind_ephemeral()
        async with serve_asgi(make_app(sinks, before_attach=0.3), sock):
            async with connect(ws_url(sock), compression=None) as ws:
                for i in range(50):
                    await ws.send(json.dumps({"i": i}))  # most queue for ASGI, first
                await wait_until(lambda: bool(sinks), timeout=5)
                for i in range(50, 100):
                    await ws.send(json.dumps({"i": i}))
                await ws.send(b"\x00\x01")
                await ws.send("echo")
                reply = await asyncio.wait_for(ws.recv(), 5)
                assert reply == "echo: 101"
            sink = sinks[0]
            await wait_until(lambda: bool(sink.disconnects), timeout=5)
            assert [json.loads(t)["i"] for t in sink.texts[:100]] == list(range(100))
            assert sink.bytes == [b"\x00\x01"]
            assert sink.disconnects == [1000]

    arun(main)


def test_frames_sent_directly_read_back_whole() -> None:
    async def main() -> None:
        sinks: list[Sink] = []
        sock = bind_ephemeral()
        async with serve_asgi(make_app(sinks), sock):
            async with connect(ws_url(sock, "/send"), compression=None, max_size=2**20) as ws:
                got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(4)]
            assert got == ["short", "a" * 200, "b" * 70000, "é" * 3]  # 7-bit, 16-bit, 64-bit

    arun(main)


def test_a_fragmented_message_and_pings_are_the_parsers_business() -> None:
    async def main() -> None:
        sinks: list[Sink] = []
        sock = bind_ephemeral()
        async with serve_asgi(make_app(sinks), sock):
            async with connect(ws_url(sock), compression=None) as ws:
                await wait_until(lambda: bool(sinks), timeout=5)
                await ws.send(["frag", "mented"])  # an iterable: one message, three frames
                pong = await ws.ping(b"p")
                await asyncio.wait_for(pong, 5)
                await ws.send("after")
            await wait_until(lambda: bool(sinks[0].disconnects), timeout=5)
            assert sinks[0].texts == ["fragmented", "after"]

    arun(main)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (Frame(Opcode.TEXT, b"x" * (MAX_MESSAGE + 1)), 1009),  # over ws_max_size
        (Frame(Opcode.TEXT, b"\xff\xfe"), 1007),  # not UTF-8
        (Frame(Opcode.CONT, b"x"), 1002),  # continuation with nothing to continue
    ],
)
def test_bad_frames_close_with_the_parsers_code_and_tell_the_sink(frame: Frame, code: int) -> None:
    async def main() -> None:
        sinks: list[Sink] = []
        sock = bind_ephemeral()
        async with serve_asgi(make_app(sinks), sock):
            async with connect(ws_url(sock), compression=None, max_size=2**20) as ws:
                await wait_until(lambda: bool(sinks), timeout=5)
                await ws.send("fine")
                ws.protocol.send_frame(frame)  # raw, past the client's own checks
                ws.send_data()  # websockets: sync, writes what the protocol queued
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == code
            await wait_until(lambda: bool(sinks[0].disconnects), timeout=5)
            assert sinks[0].texts == ["fine"]
            assert sinks[0].disconnects == [code]

    arun(main)


def test_a_sink_that_raises_loses_only_that_message() -> None:
    async def main() -> None:
        sinks: list[Sink] = []
        sock = bind_ephemeral()
        async with serve_asgi(make_app(sinks), sock):
            async with connect(ws_url(sock), compression=None) as ws:
                await wait_until(lambda: bool(sinks), timeout=5)
                for text in ("one", "boom", "two"):
                    await ws.send(text)
                await ws.send("echo")
                assert await asyncio.wait_for(ws.recv(), 5) == "echo: 4"

    arun(main)


def test_the_app_closes_through_asgi_as_before() -> None:
    async def main() -> None:
        sinks: list[Sink] = []
        sock = bind_ephemeral()
        async with serve_asgi(make_app(sinks), sock):
            async with connect(ws_url(sock, "/close"), compression=None) as ws:
                await wait_until(lambda: bool(sinks), timeout=5)
                sinks[0].on_disconnect(0)  # let the app go on to close
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1000
            assert sinks[0].direct is not None and not sinks[0].direct.open

    arun(main)


def test_other_protocols_offer_no_direct_path() -> None:
    async def main() -> None:
        sinks: list[Sink] = []
        sock = bind_ephemeral()
        async with serve_asgi(make_app(sinks), sock, ws="websockets-sansio", lifespan="on"):
            async with connect(ws_url(sock), compression=None):
                await wait_until(lambda: bool(sinks), timeout=5)
        assert sinks[0].texts == ["(asgi)"]
        assert direct_socket({"extensions": {}}, Sink()) is None
        assert DIRECT == "hotline.direct"

    arun(main)


async def _raw_client(sock: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
    """A handshaken client connection whose frames the test writes byte for byte."""
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
    proto = ClientProtocol(parse_uri(ws_url(sock)))
    proto.send_request(proto.connect())
    writer.write(b"".join(proto.data_to_send()))
    while not proto.events_received():
        proto.receive_data(await asyncio.wait_for(reader.read(4096), 5))
    assert proto.handshake_exc is None
    return reader, writer, proto


def _masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=True, extensions=[])


@pytest.mark.parametrize("cut", ["whole", "1", "7", "100", "random"])
def test_any_cut_of_mixed_frames_reaches_the_sink_whole_and_in_order(cut: str) -> None:
    """Plain frames take the compiled path, pings and fragments websockets': at every cut of
    the byte stream (mid-header, mid-payload, a plain frame right after a ping's first byte)
    the sink sees the same messages in order and every ping is answered."""
    import random

    stream = b"".join(
        [
            _masked(Opcode.TEXT, b"one"),
            _masked(Opcode.TEXT, "é".encode() * 200),
            _masked(Opcode.PING, b"p1"),
            _masked(Opcode.TEXT, b"frag", fin=False),
            _masked(Opcode.CONT, b"men", fin=False),
            _masked(Opcode.CONT, b"ted"),
            _masked(Opcode.BINARY, bytes(range(256)) * 100),
            _masked(Opcode.PING, b"p2"),
            _masked(Opcode.TEXT, b"two"),
            _masked(Opcode.TEXT, b""),
            _masked(Opcode.TEXT, b"three"),
        ]
    )
    rng = random.Random(11)
    if cut == "whole":
        sizes = [len(stream)]
    elif cut == "random":
        sizes = [rng.randint(1, 600) for _ in range(len(stream))]
    else:
        sizes = [int(cut)] * len(stream)

    async def main() -> None:
        sinks: list[Sink] = []
        sock = bind_ephemeral()
        async with serve_asgi(make_app(sinks), sock):
            reader, writer, proto = await _raw_client(sock)
            await wait_until(lambda: bool(sinks), timeout=5)
            pos = 0
            for size in sizes:
                if pos >= len(stream):
                    break
                writer.write(stream[pos : pos + size])
                pos += size
                await writer.drain()
                await asyncio.sleep(0)  # most pieces arrive in reads of their own
            await wait_until(lambda: "three" in sinks[0].texts, timeout=10)
            pongs: list[bytes] = []
            while len(pongs) < 2:
                proto.receive_data(await asyncio.wait_for(reader.read(4096), 5))
                pongs += [bytes(e.data) for e in proto.events_received()]
            writer.close()
            await writer.wait_closed()
            assert sinks[0].texts == ["one", "é" * 200, "fragmented", "two", "", "three"]
            assert sinks[0].bytes == [bytes(range(256)) * 100]
            assert pongs == [b"p1", b"p2"]
            await wait_until(lambda: bool(sinks[0].disconnects), timeout=5)

    arun(main)


@pytest.mark.parametrize(
    "reads",
    [
        # plain frames, then an unmasked one (a client must mask), in one read
        [
            _masked(Opcode.TEXT, b"a")
            + _masked(Opcode.TEXT, b"b")
            + Frame(Opcode.TEXT, b"unmasked").serialize(mask=False, extensions=[])
            + _masked(Opcode.TEXT, b"never")
        ],
        # a plain-looking frame in a read of its own while a fragmented message is open
        [
            _masked(Opcode.TEXT, b"a") + _masked(Opcode.TEXT, b"b"),
            _masked(Opcode.TEXT, b"fr", fin=False),
            _masked(Opcode.TEXT, b"never"),
        ],
    ],
    ids=["unmasked", "mid-fragment"],
)
def test_a_bad_frame_after_plain_ones_closes_after_them(reads: list[bytes]) -> None:
    async def main() -> None:
        sinks: list[Sink] = []
        sock = bind_ephemeral()
        async with serve_asgi(make_app(sinks), sock):
            _, writer, _ = await _raw_client(sock)
            await wait_until(lambda: bool(sinks), timeout=5)
            for data in reads:
                writer.write(data)
                await writer.drain()
                await asyncio.sleep(0.05)  # a read each
            await wait_until(lambda: bool(sinks[0].disconnects), timeout=5)
            assert sinks[0].texts == ["a", "b"]
            assert sinks[0].disconnects == [1002]
            writer.close()
            await writer.wait_closed()

    arun(main)
