"""Deepgram live (``/v1/listen``), sans-I/O, mapped onto the events of :mod:`hotline.core.stt`.

* ``Results`` with ``is_final: false`` (interim) -> :class:`SttPartial` of the finalized text
  of this utterance so far plus the interim;
* ``Results`` with ``is_final: true`` -> the segment is kept (an :class:`SttPartial` of the
  utterance so far is emitted);
* the utterance is committed (:class:`SttCommitted` with every kept segment's text and words,
  then forgotten) on the first of: ``speech_final: true`` (endpointing silence), ``from_finalize:
  true`` (our Finalize), or ``UtteranceEnd`` (``utterance_end_ms`` gap, which catches an
  utterance whose endpointing never fired). An utterance with no words commits nothing, so an
  ``UtteranceEnd`` right after a ``speech_final`` is silent; except the answer to our Finalize,
  which always commits (an empty :class:`SttCommitted` when nothing new was heard), so the turn
  taker that asked knows at once that nothing more is coming;
* ``SpeechStarted`` -> :class:`SttSpeechStarted`; ``Metadata`` -> :class:`SttClosed`;
* an error message (``type: "Error"``) or a close frame with a ``NET-``/``DATA-`` reason
  (:meth:`DeepgramLive.receive_close`) -> a fatal :class:`SttFailure` (not permanent: Deepgram
  refuses bad credentials at the handshake, so a new stream may do better).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from hotline.core._wire import describe, load_object
from hotline.core.stt import (
    SttClosed,
    SttCommitted,
    SttFailure,
    SttPartial,
    SttProtocol,
    SttSessionStarted,
    SttSpeechStarted,
    SttWord,
    _bool_field,
    _check_audio,
    _check_keyterms,
    _fail,
    _number,
    _opt_number,
    _str_field,
)
from hotline.errors import ConfigError, SttProtocolError

__all__ = ["DEEPGRAM_CLOSE_REASONS", "DeepgramLive", "DeepgramState"]

#: Deepgram close-frame reasons (developers.deepgram.com/docs/recovering-from-connection-errors).
DEEPGRAM_CLOSE_REASONS: Mapping[str, str] = {
    "NET-0000": "the service did not respond",
    "NET-0001": "no audio or KeepAlive within 10 seconds",
    "DATA-0000": "the audio could not be decoded",
}


class DeepgramState(enum.Enum):
    """Deepgram stream state: OPEN until CloseStream is sent, CLOSED after."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class DeepgramLive(SttProtocol):
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

    provider = "Deepgram"
    path = "/v1/listen"

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
        self._confidences: list[float | None] = []

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

    def send_audio(self, ulaw: bytes | bytearray | memoryview) -> None:
        """Queue one binary frame: the raw µ-law bytes.

        Raises:
            SttProtocolError: empty or non-bytes audio, or after :meth:`close_stream`.
        """
        self._require_open("audio")
        data = _check_audio(ulaw)
        self.audio_bytes_sent += len(data)
        self._outgoing.append(data)

    def keep_alive(self) -> None:
        """Queue ``{"type":"KeepAlive"}``: every 3-5 s without audio (NET-0001 after 10 s)."""
        self._require_open("KeepAlive")
        self._outgoing.append('{"type":"KeepAlive"}')

    def finalize(self) -> None:
        """Queue ``{"type":"Finalize"}``: flush what was heard; the reply has ``from_finalize``."""
        self._require_open("Finalize")
        self._outgoing.append('{"type":"Finalize"}')

    def commit(self) -> None:
        """End the utterance now: :meth:`finalize` (same name as Scribe's)."""
        self.finalize()

    def close_stream(self) -> None:
        """Queue ``{"type":"CloseStream"}``: the server finishes, sends ``Metadata``, closes."""
        self._require_open("CloseStream")
        self.state = DeepgramState.CLOSING
        self._outgoing.append('{"type":"CloseStream"}')

    # -- receiving

    def receive_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Deepgram sends JSON text only.

        Raises:
            SttProtocolError: always.
        """
        _fail(f"binary frame ({len(memoryview(data))} bytes); Deepgram sends JSON text only")

    def _commit(self, *, asked: bool = False) -> None:
        text = " ".join(s for s in self._segments if s)
        words = tuple(self._words)
        confidences = self._confidences
        self._segments = []
        self._words = []
        self._confidences = []
        if text or asked:
            # the least sure segment's; unknown if any segment came without one
            known = [c for c in confidences if c is not None]
            confidence = min(known) if known and len(known) == len(confidences) else None
            self._events.append(SttCommitted(text, words, self.language, confidence))

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
            transcript, words, confidence = _deepgram_alternative(msg.get("channel"))
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
                    self._confidences.append(confidence)
                if speech_final or from_finalize:
                    self._commit(asked=from_finalize)
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
            self._events.append(SttFailure(code[:40] or "error", detail[:500], True))
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
        self._events.append(SttFailure(kind, message, True))


def _deepgram_alternative(channel: object) -> tuple[str, list[SttWord], float | None]:
    if type(channel) is not dict:
        _fail(f"Results.channel must be an object, got {describe(channel)}")
    alternatives = channel.get("alternatives")
    if type(alternatives) is not list:
        _fail(f"channel.alternatives must be a list, got {describe(alternatives)}")
    if not alternatives:
        return "", [], None
    best = alternatives[0]
    if type(best) is not dict:
        _fail(f"alternatives[0] must be an object, got {describe(best)}")
    transcript = _str_field(best, "transcript")
    confidence = _opt_number(best.get("confidence"), "confidence")
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
    return transcript.strip(), words, confidence
