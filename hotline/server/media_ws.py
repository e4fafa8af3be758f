"""uvicorn's sans-I/O WebSocket protocol with a direct path for hotline's media streams.

Through ASGI every inbound Twilio message (50 a second per call) costs: a dict put on an
``asyncio.Queue``, the transport's reading paused and resumed (two ``epoll_ctl`` calls), a
future woken, the receiving task switched in, and Starlette's ``receive()`` wrappers; every
outbound one an awaited ``send()`` through the same layers. At 100 calls that was most of the
server's CPU outside the codec. :class:`MediaWebSocketProtocol` is uvicorn's own
``websockets-sansio`` protocol (the handshake, frame parsing, size limit, close handshake and
every ASGI path stay uvicorn's), plus one ASGI scope extension, :data:`DIRECT`: after
``websocket.accept`` the app may call ``attach(sink)``, and from then on

* each message is handed to ``sink.on_text`` / ``sink.on_bytes`` *inside* ``data_received``
  (synchronously, in arrival order, reading never paused), and the disconnect (peer close,
  lost connection, an oversized or invalid frame, server shutdown) to ``sink.on_disconnect``;
* :meth:`DirectSocket.send_text` writes one unmasked text frame straight to the transport.

Once attached, the frames themselves skip websockets' parser too where they can: each read
goes to :func:`hotline.codec.ws_client_frames` (one compiled call: header, unmask, UTF-8), which
takes the leading run of plain frames (final, masked, uncompressed text or binary within the
size limit) and stops at anything else; what it did not take goes to websockets' parser as
before, which rules on it (pings, fragments, close frames, every error and its close code)
exactly as it would have. The fast path runs only while websockets' parser sits at a frame
boundary with nothing buffered and no fragmented message open, so the two never split a frame.
A media stream's 50 messages a second per call cost one compiled call and the sink's own work.

The app still closes through ASGI (``websocket.close``), so uvicorn's close handshake and
timers are untouched. Servers or clients that are not this protocol (Starlette's TestClient,
``--ws wsproto``, another ASGI server) do not offer the extension, and the app uses ASGI.

The swap is made at the one place every uvicorn version of this protocol routes events
through (``self.queue.put_nowait``), so it does not depend on how a version assembles frames.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from hotline.codec import ws_client_frames

__all__ = ["DIRECT", "DirectSink", "DirectSocket", "MediaWebSocketProtocol", "direct_socket"]

log = logging.getLogger("hotline.ws")

#: The ASGI scope extension's key: ``scope["extensions"][DIRECT]["attach"](sink)``.
DIRECT = "hotline.direct"

_TEXT_FIN = 0x81
_NO_LIMIT = 2**62
_pack16 = struct.Struct("!BBH").pack
_pack64 = struct.Struct("!BBQ").pack


class DirectSink(Protocol):
    """What receives a directly attached connection's messages (called in ``data_received``;
    must not raise, must not block)."""

    def on_text(self, text: str) -> None: ...
    def on_bytes(self, data: bytes) -> None: ...
    def on_disconnect(self, code: int) -> None: ...


class _SinkQueue:
    """Stands in for the protocol's ASGI receive queue once a sink is attached.

    The sink is called as it is, in the protocol's own callbacks: hotline's sink
    (:class:`~hotline.server.session.CallSession`) carries its connection's state on itself,
    as uvicorn's protocol objects do.
    """

    __slots__ = ("_protocol", "_sink")

    def __init__(self, protocol: MediaWebSocketProtocol, sink: DirectSink) -> None:
        self._protocol = protocol
        self._sink = sink

    def deliver_messages(self, messages: list[str | bytes]) -> None:
        """The fast path's messages, in order."""
        sink = self._sink
        for message in messages:
            try:
                if type(message) is str:
                    sink.on_text(message)
                else:
                    sink.on_bytes(message)  # type: ignore[arg-type]
            except Exception:
                log.exception("media stream: the direct sink raised")

    def put_nowait(self, message: Any) -> None:
        kind = message["type"]
        try:
            if kind == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    self._sink.on_text(text)
                else:
                    self._sink.on_bytes(message.get("bytes") or b"")
            elif kind == "websocket.disconnect":
                # The first says why (a close frame's code, 1009, ...); the connection's loss
                # that follows repeats it as 1005/1006, which ASGI apps never read either.
                if not self._protocol.direct_closed:
                    self._protocol.direct_closed = True
                    self._sink.on_disconnect(int(message.get("code", 1005)))
        except Exception:  # the sink's bug must not take the connection's parser down
            log.exception("media stream: the direct sink raised")

    def empty(self) -> bool:
        return True

    async def get(self) -> dict[str, Any]:
        raise RuntimeError("receive() on a WebSocket attached directly (hotline.direct)")


class DirectSocket:
    """The sending half of an attached connection."""

    __slots__ = ("_protocol", "_transport")

    def __init__(self, protocol: MediaWebSocketProtocol) -> None:
        self._protocol = protocol
        self._transport = protocol.transport

    @property
    def open(self) -> bool:
        p = self._protocol
        return not (p.close_sent or p.direct_closed or self._transport.is_closing())

    @property
    def write_paused(self) -> bool:
        """The transport's buffer is over its high-water mark (the peer reads slowly)."""
        return not self._protocol.writable.is_set()

    async def wait_writable(self) -> None:
        await self._protocol.writable.wait()

    def send_text(self, text: str) -> bool:
        """Write one text message as a single frame; False (nothing written) once closing."""
        if not self.open:
            return False
        self._transport.write(_text_frame(text))
        return True

    def send_texts(self, texts: list[str]) -> bool:
        """Write several text messages (a frame each) in one ``write``; False once closing."""
        if not self.open:
            return False
        self._transport.write(b"".join([_text_frame(t) for t in texts]))
        return True


def _text_frame(text: str) -> bytes:
    """One unmasked, final, uncompressed text frame (RFC 6455 5.2; a server never masks)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return bytes((_TEXT_FIN, n)) + payload
    if n < 65536:
        return _pack16(_TEXT_FIN, 126, n) + payload
    return _pack64(_TEXT_FIN, 127, n) + payload


class MediaWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol offering the :data:`DIRECT` extension."""

    direct_closed = False
    #: the attached sink's queue (None: not attached, everything goes through websockets)
    _direct: _SinkQueue | None = None
    #: the start of a frame the fast path is waiting to see whole
    _partial = b""
    _fast_max = _NO_LIMIT
    _fragment_size = "current_size"
    #: websockets' parser is between frames (see _at_frame_boundary)
    _boundary = False

    def data_received(self, data: bytes) -> None:
        direct = self._direct
        if direct is None:
            self._parse(data)
            return
        if self._partial:
            data = self._partial + data
            self._partial = b""
        # Only websockets' parser moves it off a frame boundary, so that is looked at after
        # each time it ran; a close from this side (websocket.close, a keepalive timeout) sets
        # close_sent, looked at per read.
        if self._boundary and not self.close_sent:
            messages, used, stopped = ws_client_frames(data, self._fast_max)
            if messages:
                direct.deliver_messages(messages)
            if not stopped:
                if used < len(data):
                    self._partial = data[used:]
                return
            data = data[used:]
        self._parse(data)
        self._boundary = self._at_frame_boundary()

    def _at_frame_boundary(self) -> bool:
        """websockets' parser waits for a frame's first byte, outside any fragmented message,
        with nothing buffered: a frame the fast path takes cannot be one it has begun."""
        conn = self.conn
        return (
            conn.state is State.OPEN
            and conn.parser_exc is None
            and not conn.reader.buffer
            and getattr(conn, self._fragment_size, None) is None
            and not self.close_sent
        )

    def _parse(self, data: bytes) -> None:
        # uvicorn's drops the messages parsed from the same read as a bad frame; they came
        # first and are handed on first, then the parser's close.
        conn = self.conn
        conn.receive_data(data)
        if conn.parser_exc is not None:
            self.handle_events()
            self.handle_parser_exception()
            return
        self.handle_events()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        # The app's task was created, not yet run: the extension is there when it starts.
        if scope is not None and not self.close_sent:
            scope["extensions"][DIRECT] = {"attach": self.attach}

    def attach(self, sink: DirectSink) -> DirectSocket | None:
        """Deliver this connection's messages to ``sink`` from now on (after accept).

        Messages already queued for ASGI are handed over first, in order. None: the
        connection is not open (not accepted, closing or gone); use ASGI.
        """
        if not self.handshake_complete or self.close_sent or self.transport.is_closing():
            return None
        queue = self.queue
        pending = []
        while not queue.empty():
            pending.append(queue.get_nowait())
        direct = _SinkQueue(self, sink)
        self.queue = direct  # type: ignore[assignment]
        self._fast_max = _max_message_size(self.conn)
        self._fragment_size = "current_size" if hasattr(self.conn, "current_size") else "cur_size"
        self._boundary = self._at_frame_boundary()
        self._direct = direct
        # Every later message goes straight to the sink: the base class pauses reading after
        # queueing a message until receive() drains the queue, which nobody calls now.
        if self.read_paused:
            self.transport.resume_reading()
        self.read_paused = True
        for message in pending:
            direct.put_nowait(message)
        return DirectSocket(self)


# websockets renamed its open fragmented message's size ``cur_size`` -> ``current_size`` and its
# limit ``max_size`` -> ``max_message_size`` (+ ``max_fragment_size``) after 14; both are read.
def _max_message_size(conn: Any) -> int:
    """The largest frame payload websockets would take as a whole message."""
    limits = [
        getattr(conn, name, None) for name in ("max_message_size", "max_fragment_size", "max_size")
    ]
    known = [limit for limit in limits if isinstance(limit, int)]
    return min(known) if known else _NO_LIMIT


def direct_socket(scope: Any, sink: DirectSink) -> DirectSocket | None:
    """Attach ``sink`` if the server's protocol offers :data:`DIRECT` (else None: use ASGI)."""
    ext = (scope.get("extensions") or {}).get(DIRECT)
    if not ext:
        return None
    attach = ext.get("attach")
    return attach(sink) if attach is not None else None
