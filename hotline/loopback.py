"""The loopback servers hotline runs beside itself (the TTS stand-in, the local ear), and the
one free-port probe for the processes it spawns.

:class:`LoopbackServer` is a websockets server with the settings a local stand-in for a vendor
wants (no compression, no pings, 1 MiB messages, a 2 s close): ``await start(host, port)`` (port 0: any free
port), ``url``, ``port``, ``await stop()``, or ``async with``. A subclass gives its
connection handler and, optionally, its handshake check.
"""

from __future__ import annotations

import logging
import socket
from typing import TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

__all__ = ["LoopbackServer", "free_port"]

_S = TypeVar("_S", bound="LoopbackServer")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for a child process told ``--port``; a server of
    this process binds port 0 instead: no window for another to take it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class _LeftDuringHandshake(logging.Filter):
    """Drops websockets' "opening handshake failed" when the client closed the connection
    before its request was complete (the exception, or what caused it, is an EOFError).

    hotline's own clients do that on purpose: a call that ends while its TTS or STT socket is
    still opening closes the half-open connection. websockets from 15 says nothing then; 14.x
    (the declared floor) logged it as an error with a traceback. Any other failed handshake is
    still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "opening handshake failed" or not record.exc_info:
            return True
        exc: BaseException | None = record.exc_info[1]
        while exc is not None:
            if isinstance(exc, EOFError):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


_LEFT_DURING_HANDSHAKE = _LeftDuringHandshake()


class LoopbackServer:
    """A WebSocket server on a local port: ``async with Server(...) as s: s.url``.

    Attributes:
        stopping: True once :meth:`stop` began (until the next :meth:`start`): connections
            ending then were closed by the server.
    """

    #: The logger websockets reports connections to.
    ws_logger = "hotline.loopback.ws"

    def __init__(self) -> None:
        self._server: Server | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self.stopping = False

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self.stopping = False
        logger = logging.getLogger(self.ws_logger)
        logger.addFilter(_LEFT_DURING_HANDSHAKE)  # once: a logger keeps a filter once
        self._server = await serve(
            self._handler,
            host,
            port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            max_size=2**20,
            # The peer is on this machine: a close it has not answered in 2 s is a peer that
            # is not reading, or audio it sent still queued ahead of its answer (flow control
            # stops reading behind a full queue). stop() waited the default 10 s for each.
            close_timeout=2.0,
            logger=logger,
        )
        name = next(iter(self._server.sockets)).getsockname()
        self._host, self._port = str(name[0]), int(name[1])

    @property
    def url(self) -> str:
        """``ws://HOST:PORT``: the base for the vendor's URLs."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"ws://{host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping = True
        server.close()
        await server.wait_closed()

    async def __aenter__(self: _S) -> _S:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """The handshake: None accepts it, a response refuses it."""
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        """Serve one accepted connection until it ends."""
        raise NotImplementedError
