"""ElevenLabs streaming TTS over WebSocket, sans-I/O.

Two protocol objects, both fed and drained by the shell:

* :class:`ElevenLabsStream` -- ``stream-input``: one socket = one utterance::

      tts = ElevenLabsStream(voice_settings={...})
      tts.send_init()                       # {"text":" ", ...}            first message, once
      tts.send_text("Hello there.")         # {"text":"Hello there. "}     trailing space added
      tts.send_flush()                      # {"text":" ","flush":true}    generate what is buffered
      tts.send_end()                        # {"text":""}                  server finishes, closes
      for text in tts.data_to_send(): ...
      tts.receive_text(frame)               # for every frame received
      for ev in tts.events_received(): ...  # TTSAudio | TTSFinal | TTSFailure

* :class:`ElevenLabsMultiStream` -- ``multi-stream-input``: one socket per call, one context
  per utterance, at most five live contexts; ``context_id`` on the way out, ``contextId`` on
  the way in; an empty text only resets a context's inactivity timer.

Inbound rules (both): every frame must be a JSON text object. A message with an ``error`` key
is a :class:`TTSFailure` (ElevenLabs closes with 1008 right after). A message is audio only if
``audio`` is a non-empty base64 string; invalid base64 raises. ``audio`` null or empty yields no
audio event. ``isFinal`` (or ``is_final``) true yields :class:`TTSFinal` after any audio in the
same message. Both alignment spellings (``charsDurationsMs`` per the schema,
``charDurationsMs`` as other clients parse it) are read; alignment may be null. A message with
none of ``audio``, ``isFinal``/``is_final``, ``error`` is rejected. Every
:class:`ElevenLabsProtocolError` drops only that message; the object stays usable.

Misuse (sending in the wrong state, a sixth context, empty text) raises
:class:`ElevenLabsProtocolError` too, before anything is queued.
"""

from __future__ import annotations

import enum
import json
from binascii import Error as _B64Error
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from hotline.core._wire import b64decode_strict, describe, load_object, raiser
from hotline.core.events import Alignment, TTSAudio, TTSEvent, TTSFailure, TTSFinal
from hotline.errors import ConfigError, ElevenLabsProtocolError

__all__ = [
    "LANGUAGE_MODELS",
    "MAX_CONTEXTS",
    "ElevenLabsMultiStream",
    "ElevenLabsStream",
    "TTSState",
    "language_code",
    "parse_message",
    "stream_input_url",
    "takes_language",
]

#: Live contexts allowed on one ``multi-stream-input`` socket.
MAX_CONTEXTS = 5

_MAX_INACTIVITY_TIMEOUT = 180
_MAX_ERROR_CHARS = 500


_fail = raiser(ElevenLabsProtocolError)


def _dumps(obj: Mapping[str, object]) -> str:
    # ensure_ascii keeps lone surrogates in user text sendable (escaped) instead of failing
    # later in the socket's UTF-8 encoder.
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------------------------- languages

#: Models that take ``language_code`` (ElevenLabs' API reference: "Currently only Turbo v2.5
#: and Flash v2.5 support language enforcement. For other models, an error will be returned
#: if language code is provided.").
LANGUAGE_MODELS = frozenset({"eleven_flash_v2_5", "eleven_turbo_v2_5"})


def language_code(tag: str | None) -> str | None:
    """ElevenLabs' ``language_code`` (ISO 639-1, lower case) for a BCP-47 tag such as a
    ConversationRelay ``ttsLanguage`` (``"es-ES"`` -> ``"es"``); None for no tag, ``"multi"``
    (any language: nothing is enforced) or a tag whose primary subtag is not 2-3 letters."""
    if not tag:
        return None
    primary = tag.strip().split("-")[0].split("_")[0].lower()
    if primary == "multi" or not (2 <= len(primary) <= 3 and primary.isalpha()):
        return None
    return primary if primary.isascii() else None


def takes_language(model_id: str) -> bool:
    """Whether ElevenLabs accepts ``language_code`` with ``model_id`` (:data:`LANGUAGE_MODELS`)."""
    return model_id in LANGUAGE_MODELS


# ---------------------------------------------------------------------------------- URLs


def stream_input_url(
    base: str,
    voice_id: str,
    *,
    model_id: str,
    output_format: str,
    multi: bool = False,
    inactivity_timeout: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """The ``stream-input`` URL, ``{base}/v1/text-to-speech/{voice_id}/stream-input?…``, or
    with ``multi`` the ``multi-stream-input`` one.

    Args:
        base: ``"wss://api.elevenlabs.io"`` or a local ``"ws://127.0.0.1:PORT"``.
        voice_id: percent-encoded into the path.
        model_id: e.g. ``"eleven_flash_v2_5"``; always sent.
        output_format: e.g. ``"ulaw_8000"``; always sent (ElevenLabs' default is MP3).
        multi: the ``multi-stream-input`` endpoint (contexts on one socket).
        inactivity_timeout: seconds, 1..180; omitted when None (server default 20).
        extra: more query parameters (``sync_alignment``, ``auto_mode``, …).

    The API key is not part of the URL: send it as the ``xi-api-key`` handshake header.

    Raises:
        ConfigError: a bad base URL, empty ids, an out-of-range timeout.
    """
    endpoint = "multi-stream-input" if multi else "stream-input"
    parts = urlsplit(base)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ConfigError(
            f"ElevenLabs base URL must be ws:// or wss://host, got scheme {parts.scheme!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigError("ElevenLabs base URL must not carry a query or fragment")
    if not voice_id:
        raise ConfigError("ElevenLabs voice_id is empty")
    if not model_id:
        raise ConfigError("ElevenLabs model_id is empty")
    if not output_format:
        raise ConfigError("ElevenLabs output_format is empty")
    query: dict[str, str] = {"model_id": model_id, "output_format": output_format}
    if inactivity_timeout is not None:
        if (
            isinstance(inactivity_timeout, bool)
            or not isinstance(inactivity_timeout, int)
            or not 1 <= inactivity_timeout <= _MAX_INACTIVITY_TIMEOUT
        ):
            raise ConfigError(f"inactivity_timeout must be 1..{_MAX_INACTIVITY_TIMEOUT} seconds")
        query["inactivity_timeout"] = str(inactivity_timeout)
    if extra:
        for key, value in extra.items():
            if key in query:
                raise ConfigError(f"extra query parameter {key!r} duplicates a named argument")
            query[key] = value
    path = parts.path.rstrip("/")
    return (
        f"{parts.scheme}://{parts.netloc}{path}/v1/text-to-speech/"
        f"{quote(voice_id, safe='')}/{endpoint}?{urlencode(query)}"
    )


# ------------------------------------------------------------------------------ inbound


def _load(text: object) -> dict[str, Any]:
    return load_object(text, ElevenLabsProtocolError)


def _int_list(value: object, where: str) -> tuple[int, ...]:
    if type(value) is not list:
        _fail(f"{where} must be a list, got {describe(value)}")
    out = []
    for item in value:
        if type(item) is int:
            out.append(item)
        elif type(item) is float and item == item and abs(item) < 1e15:
            out.append(round(item))
        else:
            _fail(f"{where} must hold numbers, got {describe(item)}")
    return tuple(out)


def _alignment(msg: dict[str, Any], key: str) -> Alignment | None:
    value = msg.get(key)
    if value is None:
        return None
    if type(value) is not dict:
        _fail(f"{key!r} must be an object or null, got {describe(value)}")
    chars = value.get("chars")
    if type(chars) is not list or not all(type(c) is str for c in chars):
        _fail(f"{key}.chars must be a list of strings")
    starts = _int_list(value.get("charStartTimesMs"), f"{key}.charStartTimesMs")
    if "charsDurationsMs" in value:
        durations_key = "charsDurationsMs"
    elif "charDurationsMs" in value:
        durations_key = "charDurationsMs"
    else:
        _fail(f"{key}: missing charsDurationsMs / charDurationsMs")
    durations = _int_list(value[durations_key], f"{key}.{durations_key}")
    return Alignment(tuple(chars), starts, durations)


def _parse(msg: dict[str, Any], context_id: str | None) -> list[TTSEvent]:
    """Turn one decoded server message into events (audio first, then final)."""
    if "error" in msg and msg["error"] is not None:
        error = msg["error"]
        message = msg.get("message")
        code = msg.get("code")
        return [
            TTSFailure(
                # Bounded: these end up in logs.
                error=(error if type(error) is str else json.dumps(error))[:_MAX_ERROR_CHARS],
                message=message[:_MAX_ERROR_CHARS] if type(message) is str else "",
                code=code if type(code) is int else None,
                context_id=context_id,
            )
        ]
    events: list[TTSEvent] = []
    known = False
    if "audio" in msg:
        known = True
        audio = msg["audio"]
        if type(audio) is str:
            if audio:
                try:
                    data = b64decode_strict(audio)
                except (_B64Error, ValueError):
                    _fail("'audio' is not valid base64")
                events.append(
                    TTSAudio(
                        data=data,
                        alignment=_alignment(msg, "alignment"),
                        normalized_alignment=_alignment(msg, "normalizedAlignment"),
                        context_id=context_id,
                    )
                )
        elif audio is not None:
            _fail(f"'audio' must be a base64 string or null, got {describe(audio)}")
    final = msg.get("isFinal", msg.get("is_final"))
    if "isFinal" in msg or "is_final" in msg:
        known = True
        if final is True:
            events.append(TTSFinal(context_id=context_id))
        elif final is not None and final is not False:
            _fail(f"'isFinal' must be a boolean or null, got {describe(final)}")
    if not known:
        _fail("message has none of 'audio', 'isFinal', 'error'")
    return events


def parse_message(text: str) -> list[TTSEvent]:
    """Parse one server message of either endpoint on its own (no state checks).

    ``contextId`` (multi-context) is copied into the events when present.

    Raises:
        ElevenLabsProtocolError: not a JSON object, invalid base64, ill-typed fields, or no
            recognisable content.
    """
    msg = _load(text)
    ctx = msg.get("contextId")
    return _parse(msg, ctx if type(ctx) is str else None)


def _settings_fields(
    voice_settings: Mapping[str, object] | None, generation_config: Mapping[str, object] | None
) -> dict[str, object]:
    fields: dict[str, object] = {}
    if voice_settings is not None:
        fields["voice_settings"] = dict(voice_settings)
    if generation_config is not None:
        fields["generation_config"] = dict(generation_config)
    # Fail now, at construction, rather than at the first send.
    try:
        json.dumps(fields, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"voice_settings / generation_config are not JSON: {exc}") from None
    return fields


def _text_with_space(text: str) -> str:
    if not isinstance(text, str):
        _fail(f"text must be a string, got {describe(text)}")
    if not text.strip():
        _fail("text is empty (use send_keepalive / send_end for control messages)")
    return text if text.endswith(" ") else text + " "


# ------------------------------------------------------------------------- stream-input


class TTSState(enum.Enum):
    """Life of one ``stream-input`` utterance.

    IDLE -> (send_init) OPEN -> (send_end) ENDED -> (isFinal) FINISHED; an error message from
    the server moves any state to FAILED. ``isFinal`` while OPEN also means FINISHED.
    """

    IDLE = "idle"
    OPEN = "open"
    ENDED = "ended"
    FINISHED = "finished"
    FAILED = "failed"


class _Socket:
    """What both socket kinds share: queued outgoing frames and parsed events."""

    def __init__(self) -> None:
        self._events: list[TTSEvent] = []
        self._outgoing: list[str] = []

    def data_to_send(self) -> list[str]:
        """Return and forget the queued text frames, in order."""
        out, self._outgoing = self._outgoing, []
        return out

    def receive_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """ElevenLabs sends JSON text only.

        Raises:
            ElevenLabsProtocolError: always; nothing changes.
        """
        _fail(f"binary frame ({len(memoryview(data))} bytes); ElevenLabs sends JSON text only")

    def events_received(self) -> list[TTSEvent]:
        """Return and forget the events parsed since the last call."""
        events, self._events = self._events, []
        return events


class ElevenLabsStream(_Socket):
    """One ``stream-input`` socket, i.e. one utterance.

    Args:
        voice_settings: sent in the first message only (``stability``, ``similarity_boost``,
            ``style``, ``use_speaker_boost``, ``speed``); ElevenLabs does not accept changes later.
        generation_config: first message only, e.g. ``{"chunk_length_schedule": [50, 90]}``.

    Raises:
        ConfigError: the settings are not JSON-serialisable.
    """

    def __init__(
        self,
        *,
        voice_settings: Mapping[str, object] | None = None,
        generation_config: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__()
        self.state = TTSState.IDLE
        self._init_fields = _settings_fields(voice_settings, generation_config)
        self.audio_bytes = 0
        """Decoded audio bytes received so far."""

    # -- sending

    def _require_open(self, what: str) -> None:
        if self.state is not TTSState.OPEN:
            if self.state is TTSState.IDLE:
                _fail(f"cannot send {what} before send_init()")
            _fail(f"cannot send {what}: stream is {self.state.value}")

    def send_init(self) -> None:
        """Queue the first message ``{"text":" ", "voice_settings":…, "generation_config":…}``.

        Raises:
            ElevenLabsProtocolError: not the first message.
        """
        if self.state is not TTSState.IDLE:
            _fail("send_init() may only be the first message")
        self._outgoing.append(_dumps({"text": " ", **self._init_fields}))
        self.state = TTSState.OPEN

    def send_text(
        self, text: str, *, flush: bool = False, try_trigger_generation: bool = False
    ) -> None:
        """Queue ``{"text": text + " "}``; a trailing space is added when missing.

        Args:
            text: non-blank text.
            flush: add ``"flush": true`` (generate everything buffered now).
            try_trigger_generation: add ``"try_trigger_generation": true``.

        Raises:
            ElevenLabsProtocolError: not OPEN, or *text* is blank (a blank text would be a
                keep-alive or, if empty, the end of the stream).
        """
        self._require_open("text")
        msg: dict[str, object] = {"text": _text_with_space(text)}
        if try_trigger_generation:
            msg["try_trigger_generation"] = True
        if flush:
            msg["flush"] = True
        self._outgoing.append(_dumps(msg))

    def send_flush(self) -> None:
        """Queue ``{"text":" ","flush":true}``: generate all buffered text now, keep the socket.

        ``text`` is required by the ``stream-input`` schema, and a single space is what the
        docs use for a message that adds no words.

        Raises:
            ElevenLabsProtocolError: not OPEN.
        """
        self._require_open("flush")
        self._outgoing.append('{"text":" ","flush":true}')

    def send_keepalive(self) -> None:
        """Queue ``{"text":" "}``; resets the server's inactivity timer.

        Raises:
            ElevenLabsProtocolError: not OPEN.
        """
        self._require_open("keep-alive")
        self._outgoing.append('{"text":" "}')

    def send_end(self) -> None:
        """Queue ``{"text":""}``: the server flushes, sends ``isFinal`` and closes the socket.

        Raises:
            ElevenLabsProtocolError: not OPEN.
        """
        self._require_open("end")
        self._outgoing.append('{"text":""}')
        self.state = TTSState.ENDED

    # -- receiving

    def receive_text(self, text: str) -> None:
        """Parse one server frame; events go to :meth:`events_received`.

        Raises:
            ElevenLabsProtocolError: malformed message (dropped, state unchanged), or a
                message after ``isFinal`` / an error.
        """
        if self.state is TTSState.FINISHED or self.state is TTSState.FAILED:
            _fail(f"message after the stream {self.state.value}")
        events = _parse(_load(text), None)
        if self.state is TTSState.IDLE and events and type(events[0]) is not TTSFailure:
            _fail("audio/final before send_init()")
        for ev in events:
            if type(ev) is TTSAudio:
                self.audio_bytes += len(ev.data)
            elif type(ev) is TTSFinal:
                self.state = TTSState.FINISHED
            else:
                self.state = TTSState.FAILED
        self._events.extend(events)


# ------------------------------------------------------------------- multi-stream-input


class ElevenLabsMultiStream(_Socket):
    """One ``multi-stream-input`` socket: contexts (one per utterance) on one connection.

    A context is *live* from :meth:`open_context` until :meth:`close_context`, its final
    message, or an error naming it. Closed contexts whose final message has not arrived yet
    are *closing*: their late audio and final are still accepted (the shell discards them).
    ElevenLabs keeps counting a closed context until it has finished (a flushed one goes on
    generating after ``close_context``), so closing contexts count toward the limit of
    :data:`MAX_CONTEXTS` just as live ones do (:attr:`active_contexts`); a sixth context is
    refused here rather than by the server's ``max_active_conversations`` and 1008 close.
    The shell waits for a slot, and may :meth:`forget_context` a closing context whose final
    never came (a bounded wait).

    Args:
        voice_settings, generation_config: sent in every context's init message.
    """

    def __init__(
        self,
        *,
        voice_settings: Mapping[str, object] | None = None,
        generation_config: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__()
        self._init_fields = _settings_fields(voice_settings, generation_config)
        self._live: set[str] = set()
        self._closing: set[str] = set()
        self._forgotten: set[str] = set()
        self.socket_closed = False
        """True after :meth:`close_socket` or a socket-level error."""

    @property
    def live_contexts(self) -> frozenset[str]:
        """Contexts that accept text now."""
        return frozenset(self._live)

    @property
    def closing_contexts(self) -> frozenset[str]:
        """Contexts closed by us whose final message has not arrived yet."""
        return frozenset(self._closing)

    @property
    def active_contexts(self) -> int:
        """Contexts ElevenLabs counts toward its limit: live plus closing."""
        return len(self._live) + len(self._closing)

    def forget_context(self, context_id: str) -> None:
        """Stop counting a closing context whose final message never came (the shell's
        bounded wait ran out). Its late messages are still accepted (and discarded)."""
        if context_id in self._closing:
            self._closing.discard(context_id)
            if len(self._forgotten) >= 64:
                self._forgotten.clear()
            self._forgotten.add(context_id)

    # -- sending

    def _require_socket(self) -> None:
        if self.socket_closed:
            _fail("the socket is closed")

    def _require_live(self, context_id: str, what: str) -> None:
        self._require_socket()
        if context_id not in self._live:
            _fail(f"cannot send {what}: context {context_id!r} is not live")

    def open_context(self, context_id: str) -> None:
        """Queue ``{"text":" ", voice_settings…, "context_id": id}``.

        Raises:
            ElevenLabsProtocolError: empty or live id, :data:`MAX_CONTEXTS` already live, or
                the socket is closed.
        """
        self._require_socket()
        if not isinstance(context_id, str) or not context_id:
            _fail("context_id must be a non-empty string")
        if context_id in self._live:
            _fail(f"context {context_id!r} is already live")
        if len(self._live) + len(self._closing) >= MAX_CONTEXTS:
            _fail(f"at most {MAX_CONTEXTS} contexts per socket (live, or closed and not final yet)")
        self._outgoing.append(_dumps({"text": " ", **self._init_fields, "context_id": context_id}))
        # A reused id starts afresh: anything still arriving for the old one is unrelated.
        self._closing.discard(context_id)
        self._forgotten.discard(context_id)
        self._live.add(context_id)

    def send_text(self, context_id: str, text: str, *, flush: bool = False) -> None:
        """Queue ``{"text": text + " ", "context_id": id}`` (+ ``"flush": true``).

        Raises:
            ElevenLabsProtocolError: context not live, or blank *text*.
        """
        self._require_live(context_id, "text")
        msg: dict[str, object] = {"text": _text_with_space(text), "context_id": context_id}
        if flush:
            msg["flush"] = True
        self._outgoing.append(_dumps(msg))

    def flush_context(self, context_id: str) -> None:
        """Queue ``{"context_id": id, "flush": true}``.

        Raises:
            ElevenLabsProtocolError: context not live.
        """
        self._require_live(context_id, "flush")
        self._outgoing.append(_dumps({"context_id": context_id, "flush": True}))

    def close_context(self, context_id: str, *, flush: bool = False) -> None:
        """Queue ``{"context_id": id, "close_context": true}`` (+ ``"flush": true``).

        Without *flush* the server drops text it has not generated yet (barge-in); with it,
        buffered text is spoken first. The context stops being live at once.

        Raises:
            ElevenLabsProtocolError: context not live.
        """
        self._require_live(context_id, "close_context")
        msg: dict[str, object] = {"context_id": context_id, "close_context": True}
        if flush:
            msg["flush"] = True
        self._outgoing.append(_dumps(msg))
        self._live.discard(context_id)
        self._closing.add(context_id)

    def keepalive(self, context_id: str) -> None:
        """Queue ``{"text":"","context_id": id}``: on this endpoint it only resets the timer.

        Raises:
            ElevenLabsProtocolError: context not live (ElevenLabs rejects a keep-alive for a
                context whose init was never sent).
        """
        self._require_live(context_id, "keep-alive")
        self._outgoing.append(_dumps({"text": "", "context_id": context_id}))

    def close_socket(self, *, flush: bool = False) -> None:
        """Queue ``{"close_socket": true}`` (+ ``"flush": true``); the server closes every
        context and the connection. All live contexts become closing.

        Raises:
            ElevenLabsProtocolError: the socket is already closed.
        """
        self._require_socket()
        msg: dict[str, object] = {"close_socket": True}
        if flush:
            msg["flush"] = True
        self._outgoing.append(_dumps(msg))
        self._closing |= self._live
        self._live.clear()
        self.socket_closed = True

    # -- receiving

    def receive_text(self, text: str) -> None:
        """Parse one server frame; events carry the message's ``contextId``.

        Audio and finals must name a live or closing context. An error without ``contextId``
        fails the whole socket (every context becomes closing, :attr:`socket_closed` is set).

        Raises:
            ElevenLabsProtocolError: malformed message, missing/unknown ``contextId``
                (dropped; nothing changes).
        """
        msg = _load(text)
        ctx = msg.get("contextId", msg.get("context_id"))
        if ctx is not None and type(ctx) is not str:
            _fail(f"'contextId' must be a string, got {describe(ctx)}")
        is_error = msg.get("error") is not None
        if not is_error:
            if ctx is None:
                _fail("audio/final message without 'contextId'")
            if ctx not in self._live and ctx not in self._closing and ctx not in self._forgotten:
                _fail(f"message for unknown context {ctx!r}")
        events = _parse(msg, ctx)
        for ev in events:
            if type(ev) is TTSFinal or type(ev) is TTSFailure:
                if ctx is None:
                    self._closing |= self._live
                    self._live.clear()
                    self.socket_closed = True
                else:
                    self._live.discard(ctx)
                    self._closing.discard(ctx)
                    self._forgotten.discard(ctx)
        self._events.extend(events)
