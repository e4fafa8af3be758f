"""Twilio Media Streams (bidirectional ``<Connect><Stream>``), sans-I/O.

:class:`TwilioStream` is one Media Stream WebSocket seen from the app. The shell feeds it every
frame it receives and writes out whatever it produces; it never touches a socket::

    stream = TwilioStream()
    # for each WebSocket message:
    stream.receive_text(text)          # or receive_bytes(data) for a binary frame (always an error)
    for event in stream.events_received():
        ...                            # Connected, Start, Media, Dtmf, MarkEcho, Stop
    stream.send_media(ulaw)            # after Start only
    stream.send_mark("utt3")
    stream.send_clear()
    for text in stream.data_to_send():
        await ws.send_text(text)

Inbound (Twilio -> app) rules enforced here:

* Messages are JSON text objects with an ``event`` of ``connected``, ``start``, ``media``,
  ``dtmf``, ``mark`` or ``stop``; anything else raises :class:`TwilioProtocolError`.
* Twilio sends ``sequenceNumber``, ``media.chunk`` and ``media.timestamp`` as JSON strings. We
  accept a string of ASCII digits (what Twilio sends) or a non-negative JSON integer (lenient
  for simulators), and always convert to ``int``; anything else is an error.
* ``connected`` may come once, first; a stream that starts with ``start`` is accepted too.
  ``start`` comes once and must carry a ``streamSid`` that is a safe token
  (``[A-Za-z0-9_-]+``) and the fixed media format (``audio/x-mulaw``, 8000 Hz, 1 channel).
  After ``start`` every message must carry that same ``streamSid``. Nothing is accepted after
  ``stop``.
* Extra keys on inbound messages are ignored (Twilio may add fields); missing or ill-typed
  required fields are errors.

Fast path: once started, :meth:`TwilioStream.receive_text` first offers each frame to the
compiled :func:`hotline.codec.twilio_media_fast`, which takes only a ``media`` message the full
parser below would accept with the same fields and this stream's ``streamSid`` (any key order,
JSON whitespace; no escapes, extra or duplicate keys) and returns its fields, the decoded
payload and the VAD frame statistics (:attr:`Media.frame_stats`) in one call. Anything else
goes to the full parser, so every error comes from there (tests/core/test_twilio_fast.py checks
the two agree on any input).

Every error leaves the stream exactly as it was: the offending message is dropped and the next
valid message is processed normally. Error messages name fields, never their values (custom
parameters may hold a caller's number).

Outbound (app -> Twilio) messages have exactly ``event`` + ``streamSid`` + the event's object,
with compact separators, because Twilio rejects extra fields (errors 31951/31924)::

    {"event":"media","streamSid":"MZ…","media":{"payload":"<base64 µ-law>"}}
    {"event":"mark","streamSid":"MZ…","mark":{"name":"…"}}
    {"event":"clear","streamSid":"MZ…"}
"""

from __future__ import annotations

import enum
import json
import re
import types
from binascii import Error as _B64Error
from binascii import b2a_base64
from typing import Any

from hotline.codec import twilio_media_fast as _media_fast
from hotline.core._wire import b64decode_strict, describe, load_object, raiser
from hotline.core.events import (
    Connected,
    Dtmf,
    MarkEcho,
    Media,
    MediaFormat,
    Start,
    Stop,
    TwilioEvent,
)
from hotline.errors import TwilioProtocolError

__all__ = [
    "DTMF_DIGITS",
    "StreamState",
    "TwilioStream",
    "clear_message",
    "is_safe_stream_sid",
    "mark_message",
    "media_message",
    "parse_message",
]

#: Digits a ``dtmf`` event may carry.
DTMF_DIGITS = frozenset("0123456789*#ABCD")

_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_MAX_NUMBER_DIGITS = 19  # int64 range; also keeps int() far from Python's 4300-digit limit


class StreamState(enum.Enum):
    """Where a :class:`TwilioStream` is in its life."""

    AWAITING_CONNECTED = "awaiting_connected"
    AWAITING_START = "awaiting_start"
    STARTED = "started"
    STOPPED = "stopped"


def is_safe_stream_sid(value: str) -> bool:
    """True if *value* can be pasted into JSON unescaped (``[A-Za-z0-9_-]+``)."""
    return _SAFE_TOKEN.fullmatch(value) is not None


# ----------------------------------------------------------------------------- outbound


def media_message(stream_sid: str, ulaw: bytes | bytearray | memoryview) -> str:
    """Build ``{"event":"media","streamSid":…,"media":{"payload":…}}``.

    Args:
        stream_sid: the live stream's sid; must be a safe token (checked).
        ulaw: raw µ-law, 8 kHz mono, any length (no file header).

    Raises:
        TwilioProtocolError: *stream_sid* is not a safe token.
    """
    if _SAFE_TOKEN.fullmatch(stream_sid) is None:
        raise TwilioProtocolError("streamSid must match [A-Za-z0-9_-]+")
    payload = b2a_base64(ulaw, newline=False).decode("ascii")
    return f'{{"event":"media","streamSid":"{stream_sid}","media":{{"payload":"{payload}"}}}}'


def mark_message(stream_sid: str, name: str) -> str:
    """Build ``{"event":"mark","streamSid":…,"mark":{"name":…}}`` (*name* JSON-escaped).

    Raises:
        TwilioProtocolError: unsafe *stream_sid*, or *name* is not a non-empty string.
    """
    if _SAFE_TOKEN.fullmatch(stream_sid) is None:
        raise TwilioProtocolError("streamSid must match [A-Za-z0-9_-]+")
    if not isinstance(name, str) or not name:
        raise TwilioProtocolError("mark name must be a non-empty string")
    return f'{{"event":"mark","streamSid":"{stream_sid}","mark":{{"name":{json.dumps(name)}}}}}'


def clear_message(stream_sid: str) -> str:
    """Build ``{"event":"clear","streamSid":…}``.

    Raises:
        TwilioProtocolError: unsafe *stream_sid*.
    """
    if _SAFE_TOKEN.fullmatch(stream_sid) is None:
        raise TwilioProtocolError("streamSid must match [A-Za-z0-9_-]+")
    return f'{{"event":"clear","streamSid":"{stream_sid}"}}'


# ------------------------------------------------------------------------------ inbound


_fail = raiser(TwilioProtocolError)


def _obj(msg: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = msg.get(key)
    if type(value) is not dict:
        if value is None and key not in msg:
            _fail(f"{where}: missing {key!r} object")
        _fail(f"{where}: {key!r} must be an object, got {describe(value)}")
    return value


def _str(msg: dict[str, Any], key: str, where: str) -> str:
    value = msg.get(key)
    if type(value) is not str:
        if key not in msg:
            _fail(f"{where}: missing {key!r}")
        _fail(f"{where}: {key!r} must be a string, got {describe(value)}")
    return value


def _num(msg: dict[str, Any], key: str, where: str) -> int:
    value = msg.get(key)
    if type(value) is str:
        if value.isascii() and value.isdigit() and len(value) <= _MAX_NUMBER_DIGITS:
            return int(value)
        _fail(f"{where}: {key!r} must be a numeric string")
    if type(value) is int and 0 <= value < 10**_MAX_NUMBER_DIGITS:
        return value
    if key not in msg:
        _fail(f"{where}: missing {key!r}")
    _fail(f"{where}: {key!r} must be a numeric string, got {describe(value)}")


def _event_name(value: object) -> str:
    # Echo the name only when it is a short plain token: a peer could put anything there.
    if type(value) is str:
        if len(value) <= 32 and _SAFE_TOKEN.fullmatch(value):
            return repr(value)
        return f"(a string of {len(value)} characters)"
    return describe(value)


def _load(text: object) -> dict[str, Any]:
    return load_object(text, TwilioProtocolError)


def _parse(msg: dict[str, Any]) -> tuple[TwilioEvent, str | None]:
    """Parse a decoded message into an event and its top-level ``streamSid`` (if any)."""
    event = msg.get("event")
    # Media first: ~50 of them a second, everything else is rare.
    if event == "media":
        media = _obj(msg, "media", "media")
        payload = _str(media, "payload", "media")
        try:
            data = b64decode_strict(payload)
        except (_B64Error, ValueError):
            _fail("media: 'payload' is not valid base64")
        ev: TwilioEvent = Media(
            track=_str(media, "track", "media"),
            chunk=_num(media, "chunk", "media"),
            timestamp=_num(media, "timestamp", "media"),
            payload=data,
        )
        _num(msg, "sequenceNumber", "media")
        return ev, _str(msg, "streamSid", "media")
    if event == "start":
        return _parse_start(msg)
    if event == "mark":
        mark = _obj(msg, "mark", "mark")
        ev = MarkEcho(name=_str(mark, "name", "mark"))
        _num(msg, "sequenceNumber", "mark")
        return ev, _str(msg, "streamSid", "mark")
    if event == "dtmf":
        dtmf = _obj(msg, "dtmf", "dtmf")
        digit = _str(dtmf, "digit", "dtmf")
        if digit not in DTMF_DIGITS:
            _fail("dtmf: 'digit' must be one of 0-9 * # A-D")
        ev = Dtmf(digit=digit, track=_str(dtmf, "track", "dtmf"))
        _num(msg, "sequenceNumber", "dtmf")
        return ev, _str(msg, "streamSid", "dtmf")
    if event == "stop":
        stop = _obj(msg, "stop", "stop")
        ev = Stop(
            call_sid=_str(stop, "callSid", "stop"),
            account_sid=_str(stop, "accountSid", "stop"),
        )
        _num(msg, "sequenceNumber", "stop")
        return ev, _str(msg, "streamSid", "stop")
    if event == "connected":
        ev = Connected(
            protocol=_str(msg, "protocol", "connected"),
            version=_str(msg, "version", "connected"),
        )
        sid = msg.get("streamSid")
        if sid is not None and type(sid) is not str:
            _fail("connected: 'streamSid' must be a string")
        return ev, sid
    if "event" not in msg:
        _fail("message has no 'event'")
    _fail(f"unknown event {_event_name(event)}")


def _parse_start(msg: dict[str, Any]) -> tuple[TwilioEvent, str | None]:
    start = _obj(msg, "start", "start")
    stream_sid = _str(start, "streamSid", "start")
    if _SAFE_TOKEN.fullmatch(stream_sid) is None:
        _fail("start: 'streamSid' must match [A-Za-z0-9_-]+")
    top_sid = msg.get("streamSid", stream_sid)
    if top_sid != stream_sid:
        _fail("start: top-level 'streamSid' differs from start.streamSid")
    tracks = start.get("tracks", ["inbound"])
    if type(tracks) is not list or not all(type(t) is str for t in tracks):
        _fail("start: 'tracks' must be a list of strings")
    params = start.get("customParameters", {})
    if params is None:
        params = {}
    if type(params) is not dict or not all(type(v) is str for v in params.values()):
        _fail("start: 'customParameters' must be an object of strings")
    fmt = _obj(start, "mediaFormat", "start")
    media_format = MediaFormat(
        encoding=_str(fmt, "encoding", "start.mediaFormat"),
        sample_rate=_num(fmt, "sampleRate", "start.mediaFormat"),
        channels=_num(fmt, "channels", "start.mediaFormat"),
    )
    if media_format != _TWILIO_FORMAT:
        _fail("start: unsupported mediaFormat (expected audio/x-mulaw, 8000 Hz, 1 channel)")
    ev = Start(
        stream_sid=stream_sid,
        call_sid=_str(start, "callSid", "start"),
        account_sid=_str(start, "accountSid", "start"),
        tracks=tuple(tracks),
        custom_parameters=types.MappingProxyType(dict(params)),
        media_format=media_format,
        sequence_number=_num(msg, "sequenceNumber", "start"),
    )
    return ev, stream_sid


_TWILIO_FORMAT = MediaFormat(encoding="audio/x-mulaw", sample_rate=8000, channels=1)


def parse_message(text: str) -> TwilioEvent:
    """Parse one Twilio text frame on its own (no stream-state checks).

    Raises:
        TwilioProtocolError: bad JSON, not an object, unknown event, missing or ill-typed
            fields, invalid base64, unsupported media format.
    """
    return _parse(_load(text))[0]


# ------------------------------------------------------------------------------- stream


class TwilioStream:
    """One bidirectional Media Stream, seen from the app.

    Attributes:
        state: a :class:`StreamState`.
        stream_sid: set by ``start``.
        call_sid: set by ``start``.
    """

    __slots__ = (
        "_events",
        "_media_prefix",
        "_outgoing",
        "call_sid",
        "state",
        "stream_sid",
    )

    def __init__(self) -> None:
        self.state = StreamState.AWAITING_CONNECTED
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self._events: list[TwilioEvent] = []
        self._outgoing: list[str] = []
        self._media_prefix = ""

    # -- receiving

    def receive_text(self, text: str) -> None:
        """Parse one text frame from Twilio; results go to :meth:`events_received`.

        Raises:
            TwilioProtocolError: the message is malformed or not allowed in the current
                state (see the module docstring). It is dropped; the stream is unchanged.
        """
        state = self.state
        if state is StreamState.STARTED:
            # ~50 media messages a second per call: one compiled call for the usual shape; it
            # defers (None) on anything else, and the full parser below gives the verdict.
            sid = self.stream_sid
            assert sid is not None  # set with STARTED
            fast = _media_fast(text, sid)
            if fast is not None:
                track, chunk, timestamp, payload, rms_dbfs, zcr = fast
                self._events.append(Media(track, chunk, timestamp, payload, (rms_dbfs, zcr)))
                return
        elif state is StreamState.STOPPED:
            _fail("message after stop")
        ev, sid = _parse(_load(text))
        cls = type(ev)
        if cls is Start:
            if state is StreamState.STARTED:
                _fail("second start on one stream")
            assert isinstance(ev, Start)
            self.stream_sid = ev.stream_sid
            self.call_sid = ev.call_sid
            self._media_prefix = (
                f'{{"event":"media","streamSid":"{ev.stream_sid}","media":{{"payload":"'
            )
            self.state = StreamState.STARTED
        elif cls is Connected:
            if state is not StreamState.AWAITING_CONNECTED:
                _fail("connected after the stream began")
            self.state = StreamState.AWAITING_START
        else:
            if state is not StreamState.STARTED:
                _fail(f"{_EVENT_NAMES[cls]} before start")
            if sid != self.stream_sid:
                _fail(f"{_EVENT_NAMES[cls]}: streamSid does not match the live stream")
            if cls is Stop:
                self.state = StreamState.STOPPED
        self._events.append(ev)

    def receive_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Twilio sends text frames only: a binary frame is always an error.

        Raises:
            TwilioProtocolError: always; the stream is unchanged.
        """
        _fail(f"binary frame ({len(memoryview(data))} bytes); Twilio sends JSON text only")

    def events_received(self) -> list[TwilioEvent]:
        """Return and forget the events parsed since the last call, in arrival order."""
        events, self._events = self._events, []
        return events

    # -- sending

    def _require_started(self, what: str) -> str:
        if self.state is not StreamState.STARTED:
            if self.state is StreamState.STOPPED:
                _fail(f"cannot send {what}: the stream has stopped")
            _fail(f"cannot send {what} before start (no streamSid yet)")
        assert self.stream_sid is not None
        return self.stream_sid

    def send_media(self, ulaw: bytes | bytearray | memoryview) -> None:
        """Queue one media message carrying *ulaw* (raw µ-law 8 kHz mono, any length).

        An empty *ulaw* sends nothing.

        Raises:
            TwilioProtocolError: before ``start`` or after ``stop``.
        """
        if self.state is not StreamState.STARTED:
            self._require_started("media")
        if ulaw:
            self._outgoing.append(
                self._media_prefix + b2a_base64(ulaw, newline=False).decode("ascii") + '"}}'
            )

    def send_mark(self, name: str) -> None:
        """Queue a mark; Twilio echoes it once the audio queued before it has played (or
        been cleared).

        Raises:
            TwilioProtocolError: before ``start``, after ``stop``, or *name* empty.
        """
        self._outgoing.append(mark_message(self._require_started("mark"), name))

    def send_clear(self) -> None:
        """Queue a clear: Twilio drops its playback buffer and echoes every pending mark.

        Raises:
            TwilioProtocolError: before ``start`` or after ``stop``.
        """
        self._outgoing.append(clear_message(self._require_started("clear")))

    def data_to_send(self) -> list[str]:
        """Return and forget the queued outbound text frames, in order."""
        out, self._outgoing = self._outgoing, []
        return out


_EVENT_NAMES: dict[type, str] = {
    Media: "media",
    Dtmf: "dtmf",
    MarkEcho: "mark",
    Stop: "stop",
}
