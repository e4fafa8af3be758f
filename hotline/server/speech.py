"""How a call's utterances get their audio: the phrase cache first, then the call's
pre-connected ``multi-stream-input`` socket (or, with ``ELEVENLABS_TRANSPORT=single``, one
``stream-input`` socket per utterance).

:class:`SpeechService` is per app: the phrase store (in-process, or shared through Redis), the
sockets opened when ``POST /voice`` answers, the warm-up, the cache metrics. :class:`CallSpeech`
is per call; :meth:`CallSpeech.utter` is the task that gets one utterance its audio.

A hit hands the stored µ-law to :meth:`hotline.core.call.Call.play_recorded` (the caller hears
exactly the first rendering). A miss is synthesised; the Call records it and reports a clean
one (``isFinal``, no error, no undecodable audio, not cut) as
:class:`~hotline.core.actions.UtteranceRecorded`, which is stored once the synthesis returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hotline.core.actions import LabelEnum, UtteranceRecorded
from hotline.core.cache import CacheStats, PhraseCache, phrase_key
from hotline.core.call import Call
from hotline.core.events import Alignment, TTSAudio, TTSEvent, TTSFinal
from hotline.core.script import CallScript
from hotline.errors import CodecError, ElevenLabsProtocolError
from hotline.server.elevenlabs_client import TextFeed, TTSConfig, TTSFailed, synthesize
from hotline.server.metrics import Metrics
from hotline.server.settings import TTSTransport
from hotline.server.tts_multi import MultiStats, MultiTTS, Preconnects

__all__ = [
    "FIRST_SLICE",
    "MAX_PHRASE_BYTES",
    "CallSpeech",
    "LocalPhraseStore",
    "PhraseStore",
    "SpeechHost",
    "SpeechPath",
    "SpeechService",
    "UtteranceRecord",
]

log = logging.getLogger("hotline.tts")
call_log = logging.getLogger("hotline.call")
clock = time.perf_counter

#: A single utterance longer than this (µ-law, 8 kB/s) is never recorded: 2 minutes.
MAX_PHRASE_BYTES = 120 * 8000
#: Bytes of an utterance's first TTS audio message converted before the first frames go out.
FIRST_SLICE = 2048
_FIRST_FRAME = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0)


class SpeechPath(LabelEnum):
    """Where one utterance's audio came from (the ``path`` label)."""

    CACHE = "cache"
    MULTI = "multi"
    SINGLE = "single"


class PhraseStore(Protocol):
    """Where finished phrases live (in-process, or Redis behind an in-process layer)."""

    stats: CacheStats

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, ulaw: bytes) -> None: ...


class LocalPhraseStore:
    """The in-process store: a :class:`PhraseCache`."""

    def __init__(self, max_bytes: int) -> None:
        self.cache = PhraseCache(max_bytes)
        self.stats = self.cache.stats

    async def get(self, key: str) -> bytes | None:
        return self.cache.get(key)

    async def put(self, key: str, ulaw: bytes) -> None:
        self.cache.put(key, ulaw)


@dataclass(frozen=True)
class UtteranceRecord:
    """One utterance's path and time to first audio (text handed to TTS -> first frame sent)."""

    call_sid: str
    utterance_id: int
    path: SpeechPath
    time_to_first_audio: float


@dataclass
class _StreamSocket:
    sock: MultiTTS
    taken: bool = False


#: The TTS socket opened where the current media stream landed (see stream_socket).
_STREAM_SOCKET: ContextVar[_StreamSocket | None] = ContextVar("hotline_stream_socket", default=None)


class SpeechService:
    """Per app: phrase store, pre-connected sockets, metrics.

    Args:
        transport: ``"multi"`` (a pre-connected ``multi-stream-input`` socket per call) or
            ``"single"`` (a ``stream-input`` socket per utterance).
        store: the phrase store, or None for no cache.
        registry: where the cache and socket metrics are registered.
        preconnect_ttl: seconds a socket opened by ``POST /voice`` waits for its stream.
        inactivity_timeout: the multi socket's ``inactivity_timeout`` (keep-alives go out
            well within it).

    Raises:
        ValueError: an unknown transport.
    """

    def __init__(
        self,
        *,
        transport: TTSTransport | str = TTSTransport.MULTI,
        store: PhraseStore | None = None,
        registry: CollectorRegistry | None = None,
        preconnect_ttl: float = 10.0,
        inactivity_timeout: int = 20,
    ) -> None:
        self.transport = transport  # the setter converts (and checks)
        self.store = store
        self.inactivity_timeout = inactivity_timeout
        self.preconnects = Preconnects(ttl=preconnect_ttl)
        self.records: deque[UtteranceRecord] = deque(maxlen=1000)
        self.multi_totals = MultiStats()
        self.warmed = asyncio.Event()
        self._sockets: set[MultiTTS] = set()
        #: Open the call's TTS socket at the media-stream upgrade (False: at ``start``; the
        #: benchmark compares the two).
        self.preopen = True
        #: Sockets opened at a media-stream upgrade and not yet ended with it.
        self.stream_sockets = 0
        #: Of those, closed unused (the stream never started: bad token, no start).
        self.stream_sockets_unused = 0
        self.first_frame = Histogram(
            "hotline_first_audio_by_path_seconds",
            "Text handed to TTS -> first media frame sent, by path (cache, multi, single)",
            ["path"],
            buckets=_FIRST_FRAME,
            registry=registry,
        )
        if registry is not None:
            registry.register(_Collector(self))

    @property
    def transport(self) -> TTSTransport:
        """How utterances reach the TTS; may be changed live (read once per utterance)."""
        return self._transport

    @transport.setter
    def transport(self, value: TTSTransport | str) -> None:
        try:
            self._transport = TTSTransport(value)
        except ValueError:
            names = tuple(t.value for t in TTSTransport)
            raise ValueError(f"transport must be one of {names}, got {value!r}") from None

    # ------------------------------------------------------------------ per call

    @property
    def record_max_bytes(self) -> int:
        """What a call should record of each utterance (0 without a phrase store)."""
        return MAX_PHRASE_BYTES if self.store is not None else 0

    def new_socket(self, config: TTSConfig, call_sid: str) -> MultiTTS:
        sock = MultiTTS(config, inactivity_timeout=self.inactivity_timeout, label=call_sid)
        sock.on_closed = self._socket_closed
        self._sockets.add(sock)
        return sock

    def preconnect(self, call_sid: str, config: TTSConfig | None) -> None:
        """``POST /voice`` answered: start the call's TTS handshake now (multi only)."""
        if self.transport is TTSTransport.MULTI and config is not None:
            self.preconnects.open(call_sid, lambda: self.new_socket(config, call_sid))

    @contextlib.asynccontextmanager
    async def stream_socket(self, config: TTSConfig | None) -> AsyncIterator[None]:
        """Around one media stream: open the TTS socket now, where the stream landed.

        Its handshake overlaps the WebSocket accept and Twilio's ``connected``/``start``;
        :meth:`for_call` (at ``start``, in the same task tree) takes it. A stream that never
        gets a valid ``start`` closes it on the way out, so no socket outlives its stream.
        """
        pending: _StreamSocket | None = None
        if self.preopen and self.transport is TTSTransport.MULTI and config is not None:
            sock = self.new_socket(config, "(stream)")
            sock.start()
            pending = _StreamSocket(sock)
            self.stream_sockets += 1
        reset = _STREAM_SOCKET.set(pending)
        try:
            yield
        finally:
            _STREAM_SOCKET.reset(reset)
            if pending is not None:
                self.stream_sockets -= 1
                if not pending.taken:
                    self.stream_sockets_unused += 1
                    await pending.sock.aclose()

    def for_call(self, call_sid: str, config: TTSConfig | None) -> CallSpeech:
        """The call's speech path: the socket opened where its stream landed, or a new one."""
        sock: MultiTTS | None = None
        if self.transport is TTSTransport.MULTI:
            pending = _STREAM_SOCKET.get()
            if pending is not None and not pending.taken:
                pending.taken = True
                sock = pending.sock
                sock.label = call_sid
            else:
                sock = self.preconnects.take(call_sid)
            if sock is None and config is not None:
                sock = self.new_socket(config, call_sid)
            if sock is not None:
                sock.start()
        return CallSpeech(self, call_sid, sock)

    def phrase_key(self, config: TTSConfig, text: str) -> str | None:
        try:
            return phrase_key(
                voice_id=config.voice_id,
                model_id=config.model_id,
                output_format=config.output_format,
                voice_settings=config.voice_settings,
                text=text,
            )
        except ValueError:
            return None

    def first_frame_sent(
        self, call_sid: str, utterance_id: int, path: SpeechPath, time_to_first_audio: float
    ) -> None:
        self.first_frame.labels(path).observe(time_to_first_audio)
        self.records.append(UtteranceRecord(call_sid, utterance_id, path, time_to_first_audio))

    def _socket_closed(self, sock: MultiTTS) -> None:
        if sock in self._sockets:
            self._sockets.discard(sock)
            total, s = self.multi_totals, sock.stats
            total.connects += s.connects
            total.reconnects += s.reconnects
            total.connect_failures += s.connect_failures
            total.contexts_opened += s.contexts_opened
            total.contexts_cancelled += s.contexts_cancelled
            total.keepalives += s.keepalives
            total.late_messages_dropped += s.late_messages_dropped
            total.slot_waits += s.slot_waits
            total.contexts_forgotten += s.contexts_forgotten

    def multi_stats(self) -> MultiStats:
        """Totals over closed and live sockets."""
        out = MultiStats(**vars(self.multi_totals))
        for sock in self._sockets:
            s = sock.stats
            out.connects += s.connects
            out.reconnects += s.reconnects
            out.connect_failures += s.connect_failures
            out.contexts_opened += s.contexts_opened
            out.contexts_cancelled += s.contexts_cancelled
            out.keepalives += s.keepalives
            out.late_messages_dropped += s.late_messages_dropped
            out.slot_waits += s.slot_waits
            out.contexts_forgotten += s.contexts_forgotten
        return out

    # ------------------------------------------------------------------ warm-up, shutdown

    async def warm_up(self, config: TTSConfig, script: CallScript) -> int:
        """Synthesise the script's fixed lines into the store (``HOTLINE_CACHE_WARMUP=1``).

        Returns:
            How many lines were stored (already cached lines count too).
        """
        try:
            if self.store is None:
                return 0
            lines = [script.greeting, script.goodbye, script.invalid_digit]
            lines += [entry.say for entry in script.menu.values()]
            stored = 0
            for text in dict.fromkeys(lines):
                key = self.phrase_key(config, text)
                if key is None:
                    continue
                if await self.store.get(key) is not None:
                    stored += 1
                    continue
                try:
                    recording = await _record_line(config, text)
                except (TTSFailed, CodecError) as exc:
                    log.warning("cache warm-up: a line failed (%s); skipped", exc)
                    continue
                if recording is not None:
                    await self.store.put(key, recording)
                    stored += 1
            log.info("cache warm-up: %d of %d fixed lines cached", stored, len(set(lines)))
            return stored
        finally:
            self.warmed.set()

    async def aclose(self) -> None:
        await self.preconnects.aclose()
        for sock in list(self._sockets):
            await sock.aclose()


async def _record_line(config: TTSConfig, text: str) -> bytes | None:
    """Synthesise ``text`` and return its µ-law as a call would record it (None: not clean).

    Raises:
        TTSFailed: as :func:`synthesize` does.
    """
    from hotline.codec import Transcoder

    conv = Transcoder(config.output_format)
    parts: list[bytes] = []
    final = False

    async def feed(event: TTSEvent) -> bool:
        nonlocal final
        if isinstance(event, TTSAudio):
            parts.append(conv.feed(event.data))
        elif isinstance(event, TTSFinal):
            parts.append(conv.flush())
            final = True
        return True

    await synthesize(config, text, feed, _ignore_bad)
    ulaw = b"".join(parts)
    if not final or conv.stats.skipped_bytes or not 0 < len(ulaw) <= MAX_PHRASE_BYTES:
        return None
    return ulaw


def _ignore_bad(exc: ElevenLabsProtocolError) -> None:
    log.warning("cache warm-up: dropped a malformed TTS message: %s", exc)


class SpeechHost(Protocol):
    """What :meth:`CallSpeech.utter` needs from the call's session."""

    @property
    def call(self) -> Call: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def label(self) -> str: ...

    def dispatch(self) -> None:
        """Execute the Call's pending actions and wake the sender."""

    def bad_message(self, side: str, exc: Exception) -> None:
        """Count (and log once per kind) a malformed message that was dropped."""


OnEvent = Callable[[TTSEvent], Awaitable[bool]]
_NO_CHARS = Alignment((), (), ())


class CallSpeech:
    """One call's speech path (see the module docstring)."""

    def __init__(self, service: SpeechService, call_sid: str, sock: MultiTTS | None) -> None:
        self.service = service
        self.call_sid = call_sid
        self.socket = sock
        self.paths: dict[int, SpeechPath] = {}
        self._keys: dict[int, str] = {}  # utterance -> phrase key, while synthesising a miss
        self._recorded: dict[int, bytes] = {}  # clean recordings waiting to be stored
        self._feeds: dict[int, TextFeed] = {}  # streamed utterances' text, by utterance

    # ------------------------------------------------------------------ streamed text

    def open_feed(self, utterance_id: int, text: str) -> TextFeed:
        """A streamed utterance starts (``StartTTS(streaming=True)``) with ``text`` so far."""
        feed = self._feeds[utterance_id] = TextFeed(text)
        return feed

    def feed_text(self, utterance_id: int, piece: str) -> None:
        """``TTSText``: more of a streamed utterance's text."""
        feed = self._feeds.get(utterance_id)
        if feed is not None:
            feed.push(piece)

    def feed_close(self, utterance_id: int) -> None:
        """``TTSClose``: a streamed utterance's text is complete."""
        feed = self._feeds.get(utterance_id)
        if feed is not None:
            feed.close()

    async def utter(
        self, host: SpeechHost, utterance_id: int, text: str, config: TTSConfig | None
    ) -> None:
        """Get utterance ``utterance_id`` its audio (the task behind a ``StartTTS``): replay it
        from the phrase store, or synthesise it into the Call. Failures end the utterance (the
        Call goes on); returns when the utterance's TTS is over, or raises CancelledError."""
        call = host.call
        metrics = host.metrics
        first = True

        async def on_event(event: TTSEvent) -> bool:
            nonlocal first
            now = clock()
            if isinstance(event, TTSAudio) and first:
                first = False
                data = event.data
                if len(data) > FIRST_SLICE:
                    # A big first chunk: convert a slice, let the sender put the first frames
                    # on the wire, then convert the rest (the codec is chunking-invariant).
                    head = TTSAudio(data[:FIRST_SLICE], event.alignment, None, event.context_id)
                    if not call.receive_tts(utterance_id, head, now):
                        return False
                    metrics.conversion.observe(clock() - now)
                    host.dispatch()
                    await asyncio.sleep(0)
                    if call.current_utterance != utterance_id:
                        return False
                    now = clock()
                    # The head carried the chunk's alignment; the tail has no characters of
                    # its own (an empty alignment, not a missing one).
                    event = TTSAudio(data[FIRST_SLICE:], _NO_CHARS, None, event.context_id)
            if not call.receive_tts(utterance_id, event, now):
                return False  # barge-in / hang-up: late audio dropped, close the socket
            if isinstance(event, TTSAudio):
                metrics.conversion.observe(clock() - now)
            host.dispatch()
            return call.current_utterance == utterance_id

        def on_bad(exc: ElevenLabsProtocolError) -> None:
            host.bad_message("elevenlabs", exc)

        try:
            await self._speak(host, utterance_id, config, text, on_event, on_bad)
        except asyncio.CancelledError:
            raise
        except TTSFailed as exc:
            metrics.elevenlabs_errors.labels(exc.kind).inc()
            call.tts_failed(utterance_id, str(exc), clock())
            host.dispatch()
        except Exception as exc:
            call_log.exception("call %s: utterance %d: TTS task failed", host.label, utterance_id)
            metrics.elevenlabs_errors.labels("internal").inc()
            call.tts_failed(utterance_id, f"internal: {type(exc).__name__}", clock())
            host.dispatch()
        else:
            # The stream ended (isFinal, or we stopped wanting it); if the Call still waits
            # for this utterance (stream ended without isFinal being seen), end it.
            if call.current_utterance == utterance_id:
                call.tts_failed(utterance_id, "stream ended without isFinal", clock())
                host.dispatch()
        finally:
            self._keys.pop(utterance_id, None)
            self._recorded.pop(utterance_id, None)
            self._feeds.pop(utterance_id, None)

    async def _socket_for(self, config: TTSConfig) -> MultiTTS:
        sock = self.socket
        if sock is None or sock.config != config:
            # The TTS target changed (tests swap it live): a fresh socket for it.
            if sock is not None:
                await sock.aclose()
            sock = self.socket = self.service.new_socket(config, self.call_sid)
            sock.start()
        return sock

    async def _speak(
        self,
        host: SpeechHost,
        utterance_id: int,
        config: TTSConfig | None,
        text: str,
        on_event: OnEvent,
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        """A streamed utterance goes to the TTS piece by piece; a fixed line (a feed closed at
        birth) is looked up in the phrase store first, and stored if its recording is clean."""
        if config is None:
            raise TTSFailed("connect", "no TTS configured")
        service = self.service
        store = service.store
        key: str | None = None
        feed = self._feeds.get(utterance_id)
        if feed is None:
            feed = TextFeed.fixed(text)
            key = service.phrase_key(config, text) if store is not None else None
            if store is not None and key is not None:
                hit = await store.get(key)
                if hit is not None:
                    self.paths[utterance_id] = SpeechPath.CACHE
                    if host.call.play_recorded(utterance_id, hit, clock()):
                        host.dispatch()
                    return
                self._keys[utterance_id] = key
        if service.transport is TTSTransport.MULTI:
            self.paths[utterance_id] = SpeechPath.MULTI
            sock = await self._socket_for(config)
            await sock.synthesize(feed, on_event, on_bad_message)
        else:
            self.paths[utterance_id] = SpeechPath.SINGLE
            await synthesize(config, feed, on_event, on_bad_message)
        recording = self._recorded.pop(utterance_id, None)
        if store is not None and key is not None and recording is not None:
            await store.put(key, recording)

    def recorded(self, action: UtteranceRecorded) -> None:
        """The Call recorded a clean miss: store it once its synthesis has returned."""
        if action.utterance_id in self._keys:
            self._recorded[action.utterance_id] = action.ulaw

    def first_frame_sent(self, utterance_id: int, time_to_first_audio: float) -> None:
        path = self.paths.pop(utterance_id, SpeechPath(self.service.transport.value))
        self.service.first_frame_sent(self.call_sid, utterance_id, path, time_to_first_audio)

    async def aclose(self) -> None:
        sock, self.socket = self.socket, None
        if sock is not None:
            with contextlib.suppress(Exception):
                await sock.aclose()


class _Collector(Collector):
    def __init__(self, service: SpeechService) -> None:
        self.service = service

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        service = self.service
        store = service.store
        stats = store.stats if store is not None else CacheStats()
        yield CounterMetricFamily(
            "hotline_phrase_cache_hits", "Utterances served from the phrase cache", stats.hits
        )
        yield CounterMetricFamily(
            "hotline_phrase_cache_misses", "Utterances synthesised (not cached)", stats.misses
        )
        yield CounterMetricFamily(
            "hotline_phrase_cache_evictions", "Phrases evicted (LRU)", stats.evictions
        )
        yield GaugeMetricFamily(
            "hotline_phrase_cache_bytes", "µ-law bytes held in this process", stats.bytes
        )
        yield GaugeMetricFamily(
            "hotline_phrase_cache_entries", "Phrases held in this process", stats.entries
        )
        multi = service.multi_stats()
        yield CounterMetricFamily(
            "hotline_tts_socket_connects", "multi-stream-input sockets opened", multi.connects
        )
        yield CounterMetricFamily(
            "hotline_tts_socket_reconnects",
            "multi-stream-input sockets reopened after a drop",
            multi.reconnects,
        )
        yield CounterMetricFamily(
            "hotline_tts_contexts_cancelled",
            "Contexts closed without flush (barge-in)",
            multi.contexts_cancelled,
        )
        yield CounterMetricFamily(
            "hotline_tts_context_slot_waits",
            "Utterances that waited for a closed context's final (5 contexts counted)",
            multi.slot_waits,
        )
        yield GaugeMetricFamily(
            "hotline_tts_preconnected",
            "Sockets waiting for their call's stream",
            len(service.preconnects),
        )
        yield CounterMetricFamily(
            "hotline_tts_stream_sockets_unused",
            "TTS sockets opened at a media-stream upgrade and closed unused (no valid start)",
            service.stream_sockets_unused,
        )
