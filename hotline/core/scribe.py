"""ElevenLabs Scribe v2 Realtime (``/v1/speech-to-text/realtime``), sans-I/O.

**Scribe** (``message_type``): ``session_started``, ``partial_transcript``,
``committed_transcript`` and, when ``include_timestamps=true``, ``committed_transcript_with_timestamps``
after it. With timestamps on, the plain ``committed_transcript`` is held back and the
``_with_timestamps`` one becomes the :class:`SttCommitted` (so each utterance is committed once,
with its words); with timestamps off, ``committed_transcript`` is the commit.
``committed_transcript_entities`` is accepted and ignored. Every documented error type is an
:class:`SttFailure` (see :data:`SCRIBE_ERRORS` for which end the session and
:data:`SCRIBE_PERMANENT` for which no new session cures). Commit is the SDK's wire form,
``input_audio_chunk`` with empty audio and ``commit: true`` (the skills docs show a
``{"message_type":"commit"}`` message instead; the SDK is what is on the wire).

Events, the send queue and malformed input: :mod:`hotline.core.stt`.
"""

from __future__ import annotations

import base64
import enum
import math
from collections.abc import Iterable, Mapping

from hotline.core._wire import describe, load_object
from hotline.core.stt import (
    SttCommitted,
    SttFailure,
    SttPartial,
    SttProtocol,
    SttSessionStarted,
    SttWord,
    _check_audio,
    _check_keyterms,
    _dumps,
    _fail,
    _number,
    _opt_number,
    _str_field,
)
from hotline.errors import ConfigError, SttProtocolError

__all__ = [
    "SCRIBE_AUDIO_FORMATS",
    "SCRIBE_ERRORS",
    "SCRIBE_PERMANENT",
    "CommitStrategy",
    "ScribeRealtime",
]

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

#: The Scribe errors a new session would meet again (credentials, quota, terms): the client
#: stops reconnecting after one of them.
SCRIBE_PERMANENT = frozenset(
    {"auth_error", "quota_exceeded", "unaccepted_terms_error", "unaccepted_terms"}
)


class CommitStrategy(enum.Enum):
    """Who ends an utterance: the server on silence (``vad``) or the client (``manual``)."""

    VAD = "vad"
    MANUAL = "manual"


def _range(value: float | None, lo: float, hi: float, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be within {lo}..{hi}")


class ScribeRealtime(SttProtocol):
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

    provider = "Scribe"
    path = "/v1/speech-to-text/realtime"

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

    @staticmethod
    def headers(api_key: str) -> dict[str, str]:
        """The handshake headers: ``xi-api-key``."""
        return {"xi-api-key": api_key}

    # -- sending

    def send_audio(self, ulaw: bytes | bytearray | memoryview) -> None:
        """Queue one ``input_audio_chunk`` text frame; ``previous_text`` rides on the first only.

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
        self._outgoing.append(_dumps(msg))

    def commit(self) -> None:
        """End the utterance now (the SDK's form: empty audio with ``commit: true``)."""
        self._outgoing.append(
            _dumps(
                {
                    "message_type": "input_audio_chunk",
                    "audio_base_64": "",
                    "commit": True,
                    "sample_rate": self.sample_rate,
                }
            )
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
            self._events.append(SttCommitted(text, words, lang, _least_confident(words)))
        elif kind == "committed_transcript_entities":
            pass
        elif kind in SCRIBE_ERRORS:
            detail = msg.get("error", msg.get("message", ""))
            if type(detail) is not str:
                _fail(f"'error' must be a string, got {describe(detail)}")
            self._events.append(
                SttFailure(kind, detail[:500], SCRIBE_ERRORS[kind], kind in SCRIBE_PERMANENT)
            )
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
        # ElevenLabs' schema for the message (@elevenlabs/types, generated from its AsyncAPI
        # contract) gives each word an optional ``logprob``, the log-probability of the word
        logprob = _opt_number(item.get("logprob"), "words[].logprob")
        if logprob is not None and logprob > 0:
            _fail("words[].logprob must be at most 0 (a log-probability)")
        if wtype == "word":  # "spacing" and "audio_event" entries are not words
            out.append(SttWord(text, start, end, None if logprob is None else math.exp(logprob)))
    return tuple(out)


def _least_confident(words: tuple[SttWord, ...]) -> float | None:
    """The utterance's confidence: its least probable word's (None if any word has none)."""
    if not words or any(w.confidence is None for w in words):
        return None
    return min(w.confidence for w in words if w.confidence is not None)
