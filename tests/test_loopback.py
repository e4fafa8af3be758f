"""hotline.loopback: a client that leaves during the opening handshake is not an error.

hotline's TTS and STT clients close a half-open connection when its call ends; websockets 14.x
(the declared floor) logged that on the stand-in's side as "opening handshake failed" with a
traceback, in the server's own log. Any other failed handshake is still reported."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest
from websockets.asyncio.server import ServerConnection

from hotline.loopback import LoopbackServer, _LeftDuringHandshake
from tests.support.aio import arun


class _Invalid(Exception):
    """Like what websockets raises for a bad request (its class moved between releases)."""


class _Echo(LoopbackServer):
    ws_logger = "hotline.test.loopback.ws"

    async def _handler(self, ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord("x", logging.ERROR, __file__, 1, "opening handshake failed", (), info)


def test_the_filter_drops_a_client_that_left_and_keeps_other_failures() -> None:
    left = _Invalid("did not receive a valid HTTP request")
    left.__cause__ = EOFError("connection closed while reading HTTP request line")
    f = _LeftDuringHandshake()
    assert f.filter(_record(left)) is False
    assert f.filter(_record(EOFError("connection closed"))) is False
    assert f.filter(_record(_Invalid("did not receive a valid HTTP request"))) is True
    assert f.filter(_record(ValueError("bad header"))) is True
    other = logging.LogRecord("x", logging.ERROR, __file__, 1, "something else", (), None)
    assert f.filter(other) is True


def test_a_client_that_leaves_mid_request_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=_Echo.ws_logger)

    async def main() -> None:
        async with _Echo() as server:
            for partial in (b"", b"GET / HT", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
                _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(partial)
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            await asyncio.sleep(0.3)  # the server has read each connection's end

    arun(main, 20)
    failed = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert failed == [], [r.getMessage() for r in failed]
