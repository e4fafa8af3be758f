"""One ElevenLabs ``stream-input`` utterance over a real WebSocket (the I/O around
:class:`hotline.core.elevenlabs.ElevenLabsStream`)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hotline.core.elevenlabs import ElevenLabsStream, stream_input_url
from hotline.core.events import TTSEvent, TTSFailure, TTSFinal
from hotline.errors import ElevenLabsProtocolError, TTSError
from hotline.server.ws_client import WsError, WsOptions, close_ws, open_ws

__all__ = ["SingleTTS", "TTSConfig", "TTSFailed", "TextFeed", "TextSource", "synthesize"]

log = logging.getLogger("hotline.tts")

# ElevenLabs audio messages are a few KB to a few hundred KB of base64; ElevenLabs' own side
# allows 16 MB (pipecat PR #1107, from an ElevenLabs contributor), so accept what it may send.
_MAX_MESSAGE = 16 * 2**20


@dataclass(frozen=True)
class TTSConfig:
    base_url: str
    voice_id: str
    model_id: str
    output_format: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 8.0  # no message for this long -> the utterance ends
    open_timeout: float = 5.0
    voice_settings: Mapping[str, object] | None = None
    generation_config: Mapping[str, object] | None = None
    extra_query: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        from hotline.server.settings import check_model_options

        check_model_options(self.model_id, "", self.extra_query)  # raises ConfigError

    def ws_options(self, backoff: tuple[float, float] = (0.05, 2.0)) -> WsOptions:
        """The TTS use of the shared client policy (see :mod:`hotline.server.ws_client`): no
        pings (ElevenLabs' inactivity timer wants its own keep-alive messages), 16 MB
        messages."""
        return WsOptions(
            open_timeout=self.open_timeout,
            close_timeout=1.0,
            ping_interval=None,
            max_size=_MAX_MESSAGE,
            compression=None,
            backoff=backoff,
            logger=log,
        )

    @property
    def language_code(self) -> str | None:
        """The language the model is held to (ElevenLabs' ``language_code`` query parameter;
        None: none)."""
        return (self.extra_query or {}).get("language_code")

    def in_language(self, code: str | None) -> TTSConfig:
        """This target with ``language_code`` ``code`` (None: without one): ElevenLabs takes
        the language per connection, so another language is another socket."""
        query = {k: v for k, v in (self.extra_query or {}).items() if k != "language_code"}
        if code:
            query["language_code"] = code
        return replace(self, extra_query=query or None)

    def url(self) -> str:
        return stream_input_url(
            self.base_url,
            self.voice_id,
            model_id=self.model_id,
            output_format=self.output_format,
            extra=self.extra_query,
        )


class TextSource(Protocol):
    """Where a feed's text is kept: the Call's :class:`~hotline.core.utterances.Utterance`
    (a streamed reply's text grows there; ``closed`` once it is whole)."""

    @property
    def text(self) -> str: ...

    @property
    def closed(self) -> bool: ...


class _FixedText:
    __slots__ = ("text",)

    closed = True

    def __init__(self, text: str) -> None:
        self.text = text


class TextFeed:
    """A streamed utterance's text on its way into a TTS stream. The text is kept once, by the
    Call (``source``); the feed only remembers how much of it went out.

    :meth:`take` hands out what is ready to send: up to the last white space while the text is
    still open (a word cut between two pieces is never sent in halves), everything once
    closed. ``on_change`` (set by the TTS stream) is called by :meth:`changed`, which the shell
    calls when the Call says the text grew or closed (``TTSText`` / ``TTSClose``).

    A fixed line is a feed closed at birth (:meth:`fixed`): the TTS clients speak both through
    the same path.
    """

    __slots__ = ("_flushed", "_sent", "_source", "_unflushed", "on_change")

    def __init__(self, source: TextSource) -> None:
        self._source = source
        self._sent = 0  # characters of the source's text handed out by take()
        self.on_change: Callable[[], None] | None = None
        self._flushed = False  # a piece went with flush (the first audio is on its way)
        self._unflushed = False  # text went without flush since

    @classmethod
    def fixed(cls, text: str) -> TextFeed:
        """A fixed line: its whole text, closed at birth."""
        return cls(_FixedText(text))

    @property
    def closed(self) -> bool:
        return self._source.closed

    def changed(self) -> None:
        """The source's text grew or closed: wake the TTS stream."""
        if self.on_change is not None:
            self.on_change()

    def take(self) -> str:
        """The text ready to send now (``""``: nothing yet; blank text is never handed out)."""
        source = self._source
        text = source.text
        held = text[self._sent :]
        if source.closed:
            self._sent = len(text)
            return held if held.strip() else ""
        if held and (held[-1].isspace() or held[-1] in _WORD_END):
            cut = len(held) - 1  # a piece ending in white space or punctuation ends a word
        else:
            cut = max(held.rfind(" "), held.rfind("\n"), held.rfind("\t"))
        if cut < 0:
            return ""
        self._sent += cut + 1
        out = held[: cut + 1]
        return out if out.strip() else ""

    def flush_due(self, piece: str) -> bool:
        """Whether ``piece`` (just taken; ``""``: none) goes to the TTS with ``flush``.

        Pieces go without it, so the TTS buffers them as it does any streamed text
        (ElevenLabs' ``chunk_length_schedule``) and voices them together, with prosody across
        words, instead of one generation a word. Flushed: the first piece (the first audio
        comes as soon as it did when every piece was flushed), a piece that ends a sentence
        (waiting for the schedule's next 160-290 characters would only delay speech that is
        complete), and the end (the closed feed's last piece, or a bare flush when the
        feed closed with nothing new: ``piece`` ``""``)."""
        if piece:
            self._unflushed = True
            due = self.closed or not self._flushed or bool(_SENTENCE_END.search(piece))
        else:
            due = self.closed and self._unflushed
        if due:
            self._flushed, self._unflushed = True, False
        return due

    def flush_held(self) -> bool:
        """The brain went quiet (:data:`STALL_FLUSH`) with text sent unflushed: True once, and
        the caller flushes it (the TTS would hold it until more text came)."""
        due = self._unflushed
        if due:
            self._flushed, self._unflushed = True, False
        return due

    @property
    def held(self) -> bool:
        """Text went to the TTS without flush since the last flush."""
        return self._unflushed

    @property
    def wants(self) -> int:
        """Characters of the whole text (stripped), for "has it all been voiced"."""
        return len(self._source.text.strip())


_WORD_END = frozenset(".,!?;:")
#: A piece that ends a sentence (closing quotes or brackets may follow).
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s*$")

#: While a streamed utterance waits for the brain's next words, at most this long.
FEED_WAIT = 30.0
#: Seconds without new words after which text sent unflushed is flushed (the brain paused
#: mid-sentence: what it said is voiced rather than held for the rest).
STALL_FLUSH = 0.5


class TTSFailed(TTSError):
    """The utterance's TTS stream failed; ``kind`` labels the metric."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


async def synthesize(
    config: TTSConfig,
    text: str | TextFeed,
    on_event: Callable[[TTSEvent], Awaitable[bool]],
    on_bad_message: Callable[[ElevenLabsProtocolError], None],
) -> None:
    """Speak ``text`` on a ``stream-input`` socket of its own; hand every event to ``on_event``.

    ``text`` is a fixed line (a :class:`TextFeed` closed at birth) or a streamed utterance's
    feed: init, then each ready piece with ``flush`` as it arrives (so the first words are
    voiced at once), keep-alives while the feed waits, and the ``""`` end once it is closed.

    ``on_event`` (a coroutine function) resolves to False when the audio is no longer wanted;
    the socket is then closed.
    Returns after ``isFinal``. Malformed messages go to ``on_bad_message`` and are dropped
    (never treated as audio).

    Raises:
        TTSFailed: could not connect, handshake refused, an error message, a close without
            ``isFinal``, or nothing received for ``config.timeout`` seconds.
    """
    feed = text if isinstance(text, TextFeed) else TextFeed.fixed(text)
    stream = ElevenLabsStream(
        voice_settings=config.voice_settings, generation_config=config.generation_config
    )
    headers = {"xi-api-key": config.api_key} if config.api_key else None
    try:
        ws = await open_ws(config.url(), config.ws_options(), headers)
    except WsError as err:
        failure = err.failure
        if failure.status is not None:
            raise TTSFailed("handshake", f"HTTP {failure.status}") from None
        exc = failure.exc
        raise TTSFailed("connect", f"{type(exc).__name__}: {exc}") from None
    try:
        stream.send_init()
        writer: asyncio.Task[None] | None = None
        first = feed.take()
        if first:
            stream.send_text(first, flush=feed.flush_due(first))
        if feed.closed:
            stream.send_end()
        for message in stream.data_to_send():
            await ws.send(message)
        if not feed.closed:
            writer = asyncio.get_running_loop().create_task(_feed_writer(ws, stream, feed))
        try:
            await _receive(config, ws, stream, on_event, on_bad_message, feed)
        finally:
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        raise TTSFailed("closed", f"closed while sending (code {code})") from None
    except (OSError, asyncio.TimeoutError) as exc:
        raise TTSFailed("connect", f"{type(exc).__name__}: {exc}") from None
    finally:
        await close_ws(ws)


class SingleTTS:
    """A call's TTS with ``ELEVENLABS_TRANSPORT=single``: a ``stream-input`` socket per
    utterance (:func:`synthesize`); nothing is open between utterances.

    The same surface as :class:`hotline.server.tts_multi.MultiTTS` (``config``, ``label``,
    :meth:`start`, :meth:`synthesize`, :meth:`aclose`).
    """

    def __init__(self, config: TTSConfig, *, label: str = "") -> None:
        self.config = config
        self.label = label

    def start(self) -> None:
        """Nothing to open ahead: each utterance connects."""

    async def synthesize(
        self,
        text: str | TextFeed,
        on_event: Callable[[TTSEvent], Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        """:func:`synthesize` on this call's target."""
        await synthesize(self.config, text, on_event, on_bad_message)

    async def aclose(self) -> None:
        """Nothing to close: an utterance's socket closes with its task."""


async def _feed_writer(ws: ClientConnection, stream: ElevenLabsStream, feed: TextFeed) -> None:
    wake = asyncio.Event()
    feed.on_change = wake.set
    wake.set()  # pieces may have arrived while the first went out
    keepalive = 10.0  # well within stream-input's 20 s inactivity timeout
    while True:
        try:
            await asyncio.wait_for(wake.wait(), STALL_FLUSH if feed.held else keepalive)
        except asyncio.TimeoutError:
            if feed.flush_held():
                stream.send_flush()
            else:
                stream.send_keepalive()
        wake.clear()
        piece = feed.take()
        if piece:
            stream.send_text(piece, flush=feed.flush_due(piece))
        if feed.closed:
            stream.send_end()  # generates whatever is still buffered
        for message in stream.data_to_send():
            await ws.send(message)
        if feed.closed:
            return


async def _receive(
    config: TTSConfig,
    ws: ClientConnection,
    stream: ElevenLabsStream,
    on_event: Callable[[TTSEvent], Awaitable[bool]],
    on_bad_message: Callable[[ElevenLabsProtocolError], None],
    feed: TextFeed,
) -> None:
    while True:
        wait = config.timeout
        if not feed.closed:
            wait = max(wait, FEED_WAIT)  # the brain may still be thinking
        try:
            raw = await asyncio.wait_for(ws.recv(), wait)
        except asyncio.TimeoutError:
            raise TTSFailed(
                "timeout", f"no message for {config.timeout:g} s (no isFinal)"
            ) from None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            raise TTSFailed("closed", f"closed without isFinal (code {code})") from None
        try:
            if isinstance(raw, str):
                stream.receive_text(raw)
            else:
                stream.receive_bytes(raw)
        except ElevenLabsProtocolError as exc:
            on_bad_message(exc)
            continue
        for event in stream.events_received():
            wanted = await on_event(event)
            if isinstance(event, TTSFailure):
                raise TTSFailed("error", f"{event.error}: {event.message}")
            if isinstance(event, TTSFinal) or not wanted:
                return
