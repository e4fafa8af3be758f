"""Realtime speech-to-text over WebSocket, sans-I/O: what Scribe and Deepgram share.

The protocol objects (:class:`hotline.core.scribe.ScribeRealtime`,
:class:`hotline.core.deepgram.DeepgramLive`) take the caller's raw G.711 µ-law (8 kHz, mono, as
Twilio sends it after base64 decoding) and turn the server's frames into the same events
(shared/docs/conversation.md Part A). Like every protocol object in :mod:`hotline.core`, they
queue what is to be sent and the shell drains it::

    stt = ScribeRealtime(keyterms=("tour", "merch"))      # or DeepgramLive(...)
    url = stt.url("wss://api.elevenlabs.io")              # handshake: stt.headers(api_key)
    stt.send_audio(ulaw)                                  # queued: Scribe JSON text, Deepgram bytes
    stt.commit()                                          # end the utterance now
    for message in stt.data_to_send(): ws.send(message)   # drained
    stt.receive_text(frame)                               # every text frame received
    for ev in stt.events_received(): ...                  # SttEvent

Events (:data:`SttEvent`):

* :class:`SttSessionStarted` -- Scribe's ``session_started``; for Deepgram, which sends no such
  message, :meth:`DeepgramLive.connection_opened` queues one (the shell calls it after the
  handshake, with the ``dg-request-id`` header if any).
* :class:`SttPartial` -- text so far of the utterance in progress (replaces the previous partial).
* :class:`SttCommitted` -- one finished utterance: the text the caller said, and word timings
  when the server sent them.
* :class:`SttSpeechStarted` -- Deepgram ``SpeechStarted`` (``vad_events=true``); Scribe has none.
* :class:`SttClosed` -- Deepgram ``Metadata``, which it sends when the stream ends (CloseStream).
* :class:`SttFailure` -- something failed: ``fatal`` says whether the session is over,
  ``permanent`` whether a new one would fail the same way (credentials, quota, terms).

Malformed input (not JSON, not an object, an unknown type, a field of the wrong type, a binary
frame where text is expected) raises :class:`SttProtocolError`, drops only that message and
leaves the object usable. Misuse (audio after the stream was closed, bad settings) raises
:class:`SttProtocolError` / :class:`ConfigError` before anything is queued.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from hotline.core._wire import describe, raiser
from hotline.errors import ConfigError, SttProtocolError

__all__ = [
    "SttClosed",
    "SttCommitted",
    "SttEvent",
    "SttFailure",
    "SttPartial",
    "SttProtocol",
    "SttSessionStarted",
    "SttSpeechStarted",
    "SttWord",
]

_MAX_TEXT = 100_000
_MAX_KEYTERMS = 100
_MAX_KEYTERM_CHARS = 50


_fail = raiser(SttProtocolError)


def _dumps(obj: Mapping[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SttWord:
    """One recognised word with its time in the stream (seconds since the stream began)."""

    text: str
    start: float
    end: float
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class SttSessionStarted:
    """The server accepted the stream (Scribe ``session_started``; Deepgram: the handshake)."""

    session_id: str


@dataclass(frozen=True, slots=True)
class SttPartial:
    """The utterance in progress so far; replaces the previous partial."""

    text: str


@dataclass(frozen=True, slots=True)
class SttCommitted:
    """A finished utterance (possibly empty text when the server committed silence).

    ``confidence`` (0..1) is how sure the recogniser is of the words: Deepgram's
    ``alternatives[0].confidence`` (the lowest of the utterance's segments), or Scribe's
    ``words[].logprob`` (the least probable word's, as a probability). None: the server sent none
    (cloud Scribe without timestamps, or a word without one): unknown, not doubtful.
    """

    text: str
    words: tuple[SttWord, ...] = ()
    language_code: str | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class SttSpeechStarted:
    """Deepgram heard speech begin at ``timestamp`` seconds into the stream."""

    timestamp: float


@dataclass(frozen=True, slots=True)
class SttClosed:
    """Deepgram ``Metadata``: the stream is over (after CloseStream); audio seconds processed."""

    request_id: str
    duration: float


@dataclass(frozen=True, slots=True)
class SttFailure:
    """A speech-to-text failure (an event: the protocol objects and the client report it).

    Attributes:
        kind: the server's error type (Scribe ``message_type`` such as ``auth_error``, a Deepgram
            close reason such as ``NET-0001``), or one of the client's own kinds
            (``connect_failed``, ``refused``, ``dropped``, ``protocol_error``).
        message: human-readable detail (never a transcript).
        fatal: the session is over (the stream is down until a new one starts); False when
            only one message was rejected.
        permanent: a new session would fail the same way (credentials, quota, terms): the
            client stops reconnecting. Implies ``fatal``.
    """

    kind: str
    message: str
    fatal: bool
    permanent: bool = False


SttEvent = SttSessionStarted | SttPartial | SttCommitted | SttSpeechStarted | SttClosed | SttFailure


# ------------------------------------------------------------------------------ helpers


def _check_base(base: str, provider: str) -> tuple[str, str, str]:
    if not isinstance(base, str):
        raise ConfigError(f"{provider} base URL must be a string")
    parts = urlsplit(base)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ConfigError(f"{provider} base URL must be ws:// or wss://host, got {parts.scheme!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{provider} base URL must not carry a query or fragment")
    return parts.scheme, parts.netloc, parts.path.rstrip("/")


def _check_keyterms(keyterms: Iterable[str]) -> tuple[str, ...]:
    if isinstance(keyterms, str):
        raise ConfigError("keyterms must be a sequence of strings, not one string")
    out = []
    for term in keyterms:
        if not isinstance(term, str) or not term.strip():
            raise ConfigError("every key term must be a non-blank string")
        if len(term) > _MAX_KEYTERM_CHARS:
            raise ConfigError(f"key term longer than {_MAX_KEYTERM_CHARS} characters")
        out.append(" ".join(term.split()))
    if len(out) > _MAX_KEYTERMS:
        raise ConfigError(f"at most {_MAX_KEYTERMS} key terms")
    return tuple(out)


def _check_audio(ulaw: object) -> bytes:
    if not isinstance(ulaw, bytes | bytearray | memoryview):
        _fail(f"audio must be bytes, got {describe(ulaw)}")
    data = bytes(ulaw)
    if not data:
        _fail("audio chunk is empty (use commit() to end an utterance)")
    return data


def _str_field(msg: Mapping[str, Any], key: str, *, optional: bool = False) -> str:
    value = msg.get(key)
    if value is None and optional:
        return ""
    if type(value) is not str:
        _fail(f"{key!r} must be a string, got {describe(value)}")
    if len(value) > _MAX_TEXT:
        _fail(f"{key!r} is longer than {_MAX_TEXT} characters")
    return value


def _number(value: object, where: str) -> float:
    if type(value) is int or type(value) is float:
        f = float(value)
        if math.isfinite(f):
            return f
    _fail(f"{where} must be a finite number, got {describe(value)}")


def _opt_number(value: object, where: str) -> float | None:
    return None if value is None else _number(value, where)


def _bool_field(msg: Mapping[str, Any], key: str) -> bool:
    value = msg.get(key, False)
    if value is None:
        return False
    if type(value) is not bool:
        _fail(f"{key!r} must be a boolean, got {describe(value)}")
    return value


class SttProtocol:
    """What both providers share: the event list, the send queue, the URL.

    Subclasses set ``provider`` (for messages), ``path`` (the endpoint) and :meth:`query`.
    """

    provider: ClassVar[str]
    path: ClassVar[str]

    def __init__(self) -> None:
        self._events: list[SttEvent] = []
        self._outgoing: list[str | bytes] = []

    def query(self) -> list[tuple[str, str]]:
        """The handshake's query parameters, in order."""
        raise NotImplementedError

    def url(self, base: str) -> str:
        """``{base}{path}?{query}``; base is e.g. ``wss://api.elevenlabs.io``.

        Raises:
            ConfigError: not a ws:// or wss:// base without query.
        """
        scheme, netloc, path = _check_base(base, self.provider)
        return f"{scheme}://{netloc}{path}{self.path}?{urlencode(self.query())}"

    def data_to_send(self) -> list[str | bytes]:
        """Return and forget the messages queued since the last call, in order."""
        out, self._outgoing = self._outgoing, []
        return out

    def events_received(self) -> list[SttEvent]:
        """Return and forget the events parsed since the last call."""
        events, self._events = self._events, []
        return events
