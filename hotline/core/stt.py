"""Realtime speech-to-text over WebSocket, sans-I/O: ElevenLabs Scribe v2 Realtime and Deepgram live.

Both protocol objects take the caller's raw G.711 µ-law (8 kHz, mono, as Twilio sends it after
base64 decoding) and turn the server's frames into the same events (shared/docs/conversation.md
Part A)::

    stt = ScribeRealtime(keyterms=("tour", "merch"))      # or DeepgramLive(...)
    url = stt.url("wss://api.elevenlabs.io")              # handshake: stt.headers(api_key)
    ws.send(stt.send_audio(ulaw))                         # Scribe: JSON text; Deepgram: bytes
    ws.send(stt.commit())                                 # end the utterance now
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
* :class:`SttError` -- a server error; ``fatal`` says whether the session is over.

**Scribe** (``message_type``): ``session_started``, ``partial_transcript``,
``committed_transcript`` and, when ``include_timestamps=true``, ``committed_transcript_with_timestamps``
after it. With timestamps on, the plain ``committed_transcript`` is held back and the
``_with_timestamps`` one becomes the :class:`SttCommitted` (so each utterance is committed once,
with its words); with timestamps off, ``committed_transcript`` is the commit.
``committed_transcript_entities`` is accepted and ignored. Every documented error type is an
:class:`SttError` (see :data:`SCRIBE_ERRORS` for which are fatal). Commit is the SDK's wire form,
``input_audio_chunk`` with empty audio and ``commit: true`` (the skills docs show a
``{"message_type":"commit"}`` message instead; the SDK is what is on the wire).

**Deepgram** (``type``), mapped onto the same events:

* ``Results`` with ``is_final: false`` (interim) -> :class:`SttPartial` of the finalized text
  of this utterance so far plus the interim;
* ``Results`` with ``is_final: true`` -> the segment is kept (an :class:`SttPartial` of the
  utterance so far is emitted);
* the utterance is committed (:class:`SttCommitted` with every kept segment's text and words,
  then forgotten) on the first of: ``speech_final: true`` (endpointing silence), ``from_finalize:
  true`` (our Finalize), or ``UtteranceEnd`` (``utterance_end_ms`` gap, which catches an
  utterance whose endpointing never fired). An utterance with no words commits nothing, so an
  ``UtteranceEnd`` right after a ``speech_final`` is silent;
* ``SpeechStarted`` -> :class:`SttSpeechStarted`; ``Metadata`` -> :class:`SttClosed`;
* an error message (``type: "Error"``) or a close frame with a ``NET-``/``DATA-`` reason
  (:meth:`DeepgramLive.receive_close`) -> a fatal :class:`SttError`.

Malformed input (not JSON, not an object, an unknown type, a field of the wrong type, a binary
frame where text is expected) raises :class:`SttProtocolError`, drops only that message and
leaves the object usable. Misuse (audio after the stream was closed, bad settings) raises
:class:`SttProtocolError` / :class:`ConfigError` before anything is produced.
"""

from __future__ import annotations

import base64
import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

from hotline.core._wire import describe, load_object
from hotline.errors import ConfigError, SttProtocolError

__all__ = [
    "DEEPGRAM_CLOSE_REASONS",
    "SCRIBE_AUDIO_FORMATS",
    "SCRIBE_ERRORS",
    "CommitStrategy",
    "DeepgramLive",
    "DeepgramState",
    "ScribeRealtime",
    "SttClosed",
    "SttCommitted",
    "SttError",
    "SttEvent",
    "SttPartial",
    "SttSessionStarted",
    "SttSpeechStarted",
    "SttWord",
]

_MAX_TEXT = 100_000
_MAX_KEYTERMS = 100
_MAX_KEYTERM_CHARS = 50

#: Scribe error ``message_type`` -> fatal (the server ends the session after it). The docs do not
#: say which errors end the session [?]; these are the ones that cannot be cured by the next
#: message (credentials, quota, limits, server faults). ``commit_throttled``,
#: ``chunk_size_exceeded`` and ``input_error`` reject one message and the session goes on.
SCRIBE_ERRORS: Mapping[str, bool] = {
    "error": True,
    "auth_error": True,
    "quota_exceeded": True,
    "commit_throttled": False,
    "unaccepted_terms_error": True,
    "unaccepted_terms": True,  # the skills docs' spelling
    "rate_limited": True,
    "input_error": False,
    "queue_overflow": True,
    "resource_exhausted": True,
    "session_time_limit_exceeded": True,
    "chunk_size_exceeded": False,
    "insufficient_audio_activity": True,
    "transcriber_error": True,
}

SCRIBE_AUDIO_FORMATS = (
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
)

#: Deepgram close-frame reasons (developers.deepgram.com/docs/recovering-from-connection-errors).
DEEPGRAM_CLOSE_REASONS: Mapping[str, str] = {
    "NET-0000": "the service did not respond",
    "NET-0001": "no audio or KeepAlive within 10 seconds",
    "DATA-0000": "the audio could not be decoded",
}


def _fail(message: str) -> NoReturn:
    raise SttProtocolError(message)


def _dumps(obj: Mapping[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ------------------------------------------------------------------------------- events


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
    """A finished utterance (possibly empty text when the server committed silence)."""

    text: str
    words: tuple[SttWord, ...] = ()
    language_code: str | None = None


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
class SttError:
    """A speech-to-text failure.

    Attributes:
        kind: the server's error type (Scribe ``message_type`` such as ``auth_error``, a Deepgram
            close reason such as ``NET-0001``), or one of the client's own kinds
            (``connect_failed``, ``refused``, ``dropped``, ``protocol_error``).
        message: human-readable detail (never a transcript).
        fatal: the session is over; False when only one message was rejected.
    """

    kind: str
    message: str
    fatal: bool


SttEvent = SttSessionStarted | SttPartial | SttCommitted | SttSpeechStarted | SttClosed | SttError


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


class _Base:
    def __init__(self) -> None:
        self._events: list[SttEvent] = []

    def events_received(self) -> list[SttEvent]:
        """Return and forget the events parsed since the last call."""
        events, self._events = self._events, []
        return events


# ------------------------------------------------------------------------------- Scribe


class CommitStrategy(enum.Enum):
    """Who ends an utterance: the server on silence (``vad``) or the client (``manual``)."""

    VAD = "vad"
    MANUAL = "manual"


def _range(value: float | None, lo: float, hi: float, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be within {lo}..{hi}")


class ScribeRealtime(_Base):
    """One ElevenLabs Scribe v2 Realtime session (``/v1/speech-to-text/realtime``).

    Args:
        keyterms: words or short phrases to bias recognition toward (repeatable ``keyterms``).
        language_code: ISO-639-1/-3, or None to let the server detect it.
        commit_strategy: ``VAD`` (default here: phone audio never stops streaming, so only the
            server's silence detection can end an utterance) or ``MANUAL`` (the SDK's default).
        vad_silence_threshold_secs: 0.3..3.0; None leaves the server default.
        vad_threshold: 0.1..0.9. min_speech_duration_ms / min_silence_duration_ms: 50..2000.
        include_timestamps: ask for ``committed_transcript_with_timestamps`` (word timings).
        previous_text: context sent with the first audio chunk only.
        model_id: ``scribe_v2_realtime``. audio_format: one of :data:`SCRIBE_AUDIO_FORMATS`.

    Raises:
        ConfigError: a value out of range.
    """

    def __init__(
        self,
        *,
        keyterms: Iterable[str] = (),
        language_code: str | None = None,
        commit_strategy: CommitStrategy = CommitStrategy.VAD,
        vad_silence_threshold_secs: float | None = None,
        vad_threshold: float | None = None,
        min_speech_duration_ms: int | None = None,
        min_silence_duration_ms: int | None = None,
        include_timestamps: bool = False,
        previous_text: str | None = None,
        model_id: str = "scribe_v2_realtime",
        audio_format: str = "ulaw_8000",
    ) -> None:
        super().__init__()
        if not isinstance(commit_strategy, CommitStrategy):
            raise ConfigError("commit_strategy must be a CommitStrategy")
        _range(vad_silence_threshold_secs, 0.3, 3.0, "vad_silence_threshold_secs")
        _range(vad_threshold, 0.1, 0.9, "vad_threshold")
        _range(min_speech_duration_ms, 50, 2000, "min_speech_duration_ms")
        _range(min_silence_duration_ms, 50, 2000, "min_silence_duration_ms")
        if audio_format not in SCRIBE_AUDIO_FORMATS:
            raise ConfigError(f"audio_format must be one of {', '.join(SCRIBE_AUDIO_FORMATS)}")
        if not model_id:
            raise ConfigError("model_id is empty")
        if language_code is not None and not (
            isinstance(language_code, str)
            and 2 <= len(language_code) <= 3
            and language_code.isalpha()
        ):
            raise ConfigError("language_code must be an ISO-639-1 or -3 code")
        if previous_text is not None and not isinstance(previous_text, str):
            raise ConfigError("previous_text must be a string")
        self.keyterms = _check_keyterms(keyterms)
        self.language_code = language_code
        self.commit_strategy = commit_strategy
        self.vad_silence_threshold_secs = vad_silence_threshold_secs
        self.vad_threshold = vad_threshold
        self.min_speech_duration_ms = min_speech_duration_ms
        self.min_silence_duration_ms = min_silence_duration_ms
        self.include_timestamps = bool(include_timestamps)
        self.model_id = model_id
        self.audio_format = audio_format
        self.sample_rate = int(audio_format.rsplit("_", 1)[1])
        self._previous_text = previous_text or None
        self._first_chunk = True
        self.session_id: str | None = None
        self.audio_bytes_sent = 0
        self._pending_commit: SttCommitted | None = None

    # -- handshake

    def query(self) -> list[tuple[str, str]]:
        """The query parameters, in order (``keyterms`` repeated)."""
        q: list[tuple[str, str]] = [
            ("model_id", self.model_id),
            ("audio_format", self.audio_format),
            ("commit_strategy", self.commit_strategy.value),
        ]
        for key, value in (
            ("vad_silence_threshold_secs", self.vad_silence_threshold_secs),
            ("vad_threshold", self.vad_threshold),
            ("min_speech_duration_ms", self.min_speech_duration_ms),
            ("min_silence_duration_ms", self.min_silence_duration_ms),
        ):
            if value is not None:
                q.append((key, str(value)))
        if self.language_code:
            q.append(("language_code", self.language_code))
        q.append(("include_timestamps", "true" if self.include_timestamps else "false"))
        q.extend(("keyterms", term) for term in self.keyterms)
        return q

    def url(self, base: str) -> str:
        """``{base}/v1/speech-to-text/realtime?model_id=…``; base is ``wss://api.elevenlabs.io``.

        Raises:
            ConfigError: not a ws:// or wss:// base without query.
        """
        scheme, netloc, path = _check_base(base, "Scribe")
        return f"{scheme}://{netloc}{path}/v1/speech-to-text/realtime?{urlencode(self.query())}"

    @staticmethod
    def headers(api_key: str) -> dict[str, str]:
        """The handshake headers: ``xi-api-key``."""
        return {"xi-api-key": api_key}

    # -- sending

    def send_audio(self, ulaw: bytes | bytearray | memoryview) -> str:
        """One ``input_audio_chunk`` text frame; ``previous_text`` rides on the first only.

        Raises:
            SttProtocolError: empty or non-bytes audio.
        """
        data = _check_audio(ulaw)
        msg: dict[str, object] = {
            "message_type": "input_audio_chunk",
            "audio_base_64": base64.b64encode(data).decode("ascii"),
            "commit": False,
            "sample_rate": self.sample_rate,
        }
        if self._first_chunk and self._previous_text:
            msg["previous_text"] = self._previous_text
        self._first_chunk = False
        self.audio_bytes_sent += len(data)
        return _dumps(msg)

    def commit(self) -> str:
        """End the utterance now (the SDK's form: empty audio with ``commit: true``)."""
        return _dumps(
            {
                "message_type": "input_audio_chunk",
                "audio_base_64": "",
                "commit": True,
                "sample_rate": self.sample_rate,
            }
        )

    # -- receiving

    def receive_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Scribe sends JSON text only.

        Raises:
            SttProtocolError: always.
        """
        _fail(f"binary frame ({len(memoryview(data))} bytes); Scribe sends JSON text only")

    def receive_text(self, text: str) -> None:
        """Parse one server frame; events go to :meth:`events_received`.

        Raises:
            SttProtocolError: malformed message (dropped, nothing changes).
        """
        msg = load_object(text, SttProtocolError)
        kind = msg.get("message_type")
        if type(kind) is not str:
            _fail(f"'message_type' must be a string, got {describe(kind)}")
        if kind == "session_started":
            session_id = _str_field(msg, "session_id")
            config = msg.get("config")
            if config is not None and type(config) is not dict:
                _fail(f"'config' must be an object, got {describe(config)}")
            self.session_id = session_id
            self._events.append(SttSessionStarted(session_id))
        elif kind == "partial_transcript":
            self._events.append(SttPartial(_str_field(msg, "text")))
        elif kind == "committed_transcript":
            committed = SttCommitted(_str_field(msg, "text"))
            if self.include_timestamps:
                # The _with_timestamps message follows and carries the same text with words;
                # hold this one so the utterance is committed once. A second plain commit
                # (the timed one never came) releases the first.
                if self._pending_commit is not None:
                    self._events.append(self._pending_commit)
                self._pending_commit = committed
            else:
                self._events.append(committed)
        elif kind == "committed_transcript_with_timestamps":
            text = _str_field(msg, "text")
            lang = msg.get("language_code")
            if lang is not None and type(lang) is not str:
                _fail(f"'language_code' must be a string, got {describe(lang)}")
            words = _scribe_words(msg.get("words"))
            self._pending_commit = None
            self._events.append(SttCommitted(text, words, lang))
        elif kind == "committed_transcript_entities":
            pass
        elif kind in SCRIBE_ERRORS:
            detail = msg.get("error", msg.get("message", ""))
            if type(detail) is not str:
                _fail(f"'error' must be a string, got {describe(detail)}")
            self._events.append(SttError(kind, detail[:500], SCRIBE_ERRORS[kind]))
        else:
            _fail(f"unknown message_type {kind[:40]!r}")

    def flush_pending(self) -> None:
        """Release a held ``committed_transcript`` (timestamps on, the timed copy never came).

        The shell calls this when the socket closes.
        """
        if self._pending_commit is not None:
            self._events.append(self._pending_commit)
            self._pending_commit = None


def _scribe_words(value: object) -> tuple[SttWord, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        _fail(f"'words' must be a list, got {describe(value)}")
    out = []
    for item in value:
        if type(item) is not dict:
            _fail(f"'words' items must be objects, got {describe(item)}")
        wtype = item.get("type", "word")
        if type(wtype) is not str:
            _fail(f"words[].type must be a string, got {describe(wtype)}")
        text = _str_field(item, "text")
        start = _number(item.get("start"), "words[].start")
        end = _number(item.get("end"), "words[].end")
        if wtype == "word":  # "spacing" and "audio_event" entries are not words
            out.append(SttWord(text, start, end, None))
    return tuple(out)


# ----------------------------------------------------------------------------- Deepgram


class DeepgramState(enum.Enum):
    """Deepgram stream state: OPEN until CloseStream is sent, CLOSED after."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class DeepgramLive(_Base):
    """One Deepgram live stream (``/v1/listen``), µ-law 8 kHz mono.

    Args:
        keyterms: words/phrases to boost: ``keyterm=`` (Nova-3) or, with ``keywords=True``,
            ``keywords=term`` (Nova-2 and older).
        language: e.g. ``"en-US"``; None for the model's default.
        model: e.g. ``"nova-3"``; None for the account default.
        endpointing_ms: silence that ends speech (``speech_final``); None for Deepgram's 10 ms.
        utterance_end_ms: word gap for ``UtteranceEnd`` (>= 1000 recommended); None disables it.
        interim_results: ask for interim (``is_final: false``) results; required with
            ``utterance_end_ms``.
        vad_events: ask for ``SpeechStarted``.
        smart_format / punctuate: formatting flags, sent when True.

    Raises:
        ConfigError: a value out of range, or ``utterance_end_ms`` without interim results.
    """

    def __init__(
        self,
        *,
        keyterms: Iterable[str] = (),
        keywords: bool = False,
        language: str | None = None,
        model: str | None = None,
        endpointing_ms: int | None = 300,
        utterance_end_ms: int | None = 1000,
        interim_results: bool = True,
        vad_events: bool = True,
        smart_format: bool = False,
        punctuate: bool = False,
    ) -> None:
        super().__init__()
        for name, value, lo, hi in (
            ("endpointing_ms", endpointing_ms, 10, 60_000),
            ("utterance_end_ms", utterance_end_ms, 1000, 60_000),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi
            ):
                raise ConfigError(f"{name} must be an int within {lo}..{hi}")
        if utterance_end_ms is not None and not interim_results:
            raise ConfigError("utterance_end_ms needs interim_results=True")
        self.keyterms = _check_keyterms(keyterms)
        self.keywords = bool(keywords)
        self.language = language
        self.model = model
        self.endpointing_ms = endpointing_ms
        self.utterance_end_ms = utterance_end_ms
        self.interim_results = bool(interim_results)
        self.vad_events = bool(vad_events)
        self.smart_format = bool(smart_format)
        self.punctuate = bool(punctuate)
        self.state = DeepgramState.OPEN
        self.request_id = ""
        self.audio_bytes_sent = 0
        self._segments: list[str] = []
        self._words: list[SttWord] = []

    # -- handshake

    def query(self) -> list[tuple[str, str]]:
        """The query parameters, in order (``keyterm`` / ``keywords`` repeated)."""
        q: list[tuple[str, str]] = [
            ("encoding", "mulaw"),
            ("sample_rate", "8000"),
            ("channels", "1"),
            ("interim_results", "true" if self.interim_results else "false"),
            (
                "endpointing",
                "false" if self.endpointing_ms is None else str(self.endpointing_ms),
            ),
        ]
        if self.utterance_end_ms is not None:
            q.append(("utterance_end_ms", str(self.utterance_end_ms)))
        q.append(("vad_events", "true" if self.vad_events else "false"))
        if self.model:
            q.append(("model", self.model))
        if self.language:
            q.append(("language", self.language))
        if self.smart_format:
            q.append(("smart_format", "true"))
        if self.punctuate:
            q.append(("punctuate", "true"))
        key = "keywords" if self.keywords else "keyterm"
        q.extend((key, term) for term in self.keyterms)
        return q

    def url(self, base: str) -> str:
        """``{base}/v1/listen?encoding=mulaw&sample_rate=8000&…``; base ``wss://api.deepgram.com``.

        Raises:
            ConfigError: not a ws:// or wss:// base without query.
        """
        scheme, netloc, path = _check_base(base, "Deepgram")
        return f"{scheme}://{netloc}{path}/v1/listen?{urlencode(self.query())}"

    @staticmethod
    def headers(api_key: str) -> dict[str, str]:
        """The handshake headers: ``Authorization: Token <key>``."""
        return {"Authorization": f"Token {api_key}"}

    def connection_opened(self, request_id: str = "") -> None:
        """The handshake succeeded: queue :class:`SttSessionStarted` (``dg-request-id``)."""
        self.request_id = request_id
        self._events.append(SttSessionStarted(request_id))

    # -- sending

    def _require_open(self, what: str) -> None:
        if self.state is not DeepgramState.OPEN:
            _fail(f"cannot send {what}: stream is {self.state.value}")

    def send_audio(self, ulaw: bytes | bytearray | memoryview) -> bytes:
        """One binary frame: the raw µ-law bytes.

        Raises:
            SttProtocolError: empty or non-bytes audio, or after :meth:`close_stream`.
        """
        self._require_open("audio")
        data = _check_audio(ulaw)
        self.audio_bytes_sent += len(data)
        return data

    def keep_alive(self) -> str:
        """``{"type":"KeepAlive"}``: send every 3-5 s without audio (NET-0001 after 10 s)."""
        self._require_open("KeepAlive")
        return '{"type":"KeepAlive"}'

    def finalize(self) -> str:
        """``{"type":"Finalize"}``: flush what was heard; the reply has ``from_finalize``."""
        self._require_open("Finalize")
        return '{"type":"Finalize"}'

    def commit(self) -> str:
        """End the utterance now: :meth:`finalize` (same name as Scribe's)."""
        return self.finalize()

    def close_stream(self) -> str:
        """``{"type":"CloseStream"}``: the server finishes, sends ``Metadata`` and closes."""
        self._require_open("CloseStream")
        self.state = DeepgramState.CLOSING
        return '{"type":"CloseStream"}'

    # -- receiving

    def receive_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Deepgram sends JSON text only.

        Raises:
            SttProtocolError: always.
        """
        _fail(f"binary frame ({len(memoryview(data))} bytes); Deepgram sends JSON text only")

    def _commit(self) -> None:
        text = " ".join(s for s in self._segments if s)
        words = tuple(self._words)
        self._segments = []
        self._words = []
        if text:
            self._events.append(SttCommitted(text, words, self.language))

    def receive_text(self, text: str) -> None:
        """Parse one server frame; events go to :meth:`events_received`.

        Raises:
            SttProtocolError: malformed message (dropped, nothing changes).
        """
        msg = load_object(text, SttProtocolError)
        kind = msg.get("type")
        if type(kind) is not str:
            _fail(f"'type' must be a string, got {describe(kind)}")
        if kind == "Results":
            transcript, words = _deepgram_alternative(msg.get("channel"))
            is_final = _bool_field(msg, "is_final")
            speech_final = _bool_field(msg, "speech_final")
            from_finalize = _bool_field(msg, "from_finalize")
            for key in ("start", "duration"):
                if key in msg:
                    _number(msg[key], key)
            if is_final:
                if transcript:
                    self._segments.append(transcript)
                    self._words.extend(words)
                if speech_final or from_finalize:
                    self._commit()
                elif transcript:
                    self._events.append(SttPartial(" ".join(self._segments)))
            elif transcript:
                self._events.append(SttPartial(" ".join([*self._segments, transcript])))
        elif kind == "UtteranceEnd":
            _opt_number(msg.get("last_word_end"), "last_word_end")
            self._commit()
        elif kind == "SpeechStarted":
            self._events.append(SttSpeechStarted(_number(msg.get("timestamp", 0.0), "timestamp")))
        elif kind == "Metadata":
            request_id = _str_field(msg, "request_id", optional=True)
            duration = _opt_number(msg.get("duration"), "duration") or 0.0
            self._commit()
            self.state = DeepgramState.CLOSED
            self._events.append(SttClosed(request_id, duration))
        elif kind == "Error":
            detail = msg.get("description", msg.get("message", ""))
            code = msg.get("variant", msg.get("err_code", "error"))
            if type(detail) is not str or type(code) is not str:
                _fail("Error: 'description' and 'variant' must be strings")
            self._events.append(SttError(code[:40] or "error", detail[:500], True))
        else:
            _fail(f"unknown type {kind[:40]!r}")

    def receive_close(self, code: int | None, reason: str) -> None:
        """The server closed the socket: commit what was kept, then a fatal error unless clean.

        Args:
            code: the close code (None when the connection was lost without one).
            reason: the close reason, e.g. ``"NET-0001"``.
        """
        self._commit()
        self.state = DeepgramState.CLOSED
        if code == 1000 and not reason.startswith(("NET-", "DATA-")):
            return
        kind = reason.split()[0][:40] if reason.strip() else f"close_{code}"
        message = DEEPGRAM_CLOSE_REASONS.get(kind, f"connection closed (code {code})")
        self._events.append(SttError(kind, message, True))


def _deepgram_alternative(channel: object) -> tuple[str, list[SttWord]]:
    if type(channel) is not dict:
        _fail(f"Results.channel must be an object, got {describe(channel)}")
    alternatives = channel.get("alternatives")
    if type(alternatives) is not list:
        _fail(f"channel.alternatives must be a list, got {describe(alternatives)}")
    if not alternatives:
        return "", []
    best = alternatives[0]
    if type(best) is not dict:
        _fail(f"alternatives[0] must be an object, got {describe(best)}")
    transcript = _str_field(best, "transcript")
    _opt_number(best.get("confidence"), "confidence")
    raw_words = best.get("words", [])
    if type(raw_words) is not list:
        _fail(f"alternatives[0].words must be a list, got {describe(raw_words)}")
    words = []
    for item in raw_words:
        if type(item) is not dict:
            _fail(f"words items must be objects, got {describe(item)}")
        text = item.get("punctuated_word", item.get("word"))
        if type(text) is not str:
            _fail(f"words[].word must be a string, got {describe(text)}")
        words.append(
            SttWord(
                text,
                _number(item.get("start"), "words[].start"),
                _number(item.get("end"), "words[].end"),
                _opt_number(item.get("confidence"), "words[].confidence"),
            )
        )
    return transcript.strip(), words
