"""How a call's utterances get their audio: the phrase cache first, then the call's TTS (its
``multi-stream-input`` socket, or with ``ELEVENLABS_TRANSPORT=single`` a ``stream-input``
socket per utterance).

:class:`SpeechService` is per app: the phrase store (in-process, or shared through Redis), each
call's TTS, the warm-up, the cache metrics. Each media stream gets its call's TTS where its
upgrade lands (:meth:`SpeechService.stream_socket`): with ``multi`` (the default) a socket that
starts connecting at once, so its handshake overlaps the WebSocket accept and Twilio's
``connected``/``start``. The route hands it to its :class:`~hotline.server.session.CallSession`,
whose ``start`` makes it the call's (:meth:`SpeechService.for_call`); a stream that never gets a
valid ``start`` closes it unused. :class:`CallSpeech` is per call; :meth:`CallSpeech.utter` is
the task that gets one utterance its audio. A fixed line and a streamed one take the same path:
a fixed line is a :class:`~hotline.server.elevenlabs_client.TextFeed` closed at birth, and only
a fixed line can come from the phrase store.

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
from hotline.server.elevenlabs_client import (
    SingleTTS,
    TextFeed,
    TTSConfig,
    TTSFailed,
    synthesize,
)
from hotline.server.metrics import Metrics
from hotline.server.settings import TTSTransport
from hotline.server.tts_multi import MultiStats, MultiTTS

__all__ = [
    "FIRST_SLICE",
    "MAX_PHRASE_BYTES",
    "CallSpeech",
    "CallTTS",
    "LocalPhraseStore",
    "PhraseStore",
    "SpeechHost",
    "SpeechPath",
    "SpeechService",
    "TTSFactory",
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
#: A call's TTS before a call has taken it (its logs' label).
_UNCLAIMED = "(stream)"


class SpeechPath(LabelEnum):
    """Where one utterance's audio came from (the ``path`` label)."""

    CACHE = "cache"
    MULTI = "multi"
    SINGLE = "single"


class CallTTS(Protocol):
    """What speaks a call's utterances: :class:`~hotline.server.tts_multi.MultiTTS` or
    :class:`~hotline.server.elevenlabs_client.SingleTTS`."""

    config: TTSConfig
    label: str

    def start(self) -> None:
        """Start connecting, if it keeps a socket."""

    async def synthesize(
        self,
        text: str | TextFeed,
        on_event: Callable[[TTSEvent], Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        """Speak one utterance (see :func:`hotline.server.elevenlabs_client.synthesize`)."""

    async def aclose(self) -> None:
        """Close what is open; idempotent."""


#: Records an utterance's first frame sent: (CallSid, utterance, path, seconds from text to it).
FirstFrameSent = Callable[[str, int, SpeechPath, float], None]


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


#: Builds a call's TTS for a target, given the service's own builder (:meth:`SpeechService.new_tts`).
TTSFactory = Callable[[TTSConfig, Callable[[TTSConfig], CallTTS]], CallTTS]


@dataclass(frozen=True)
class UtteranceRecord:
    """One utterance's path and time to first audio (text handed to TTS -> first frame sent)."""

    call_sid: str
    utterance_id: int
    path: SpeechPath
    time_to_first_audio: float


class SpeechService:
    """Per app: phrase store, the calls' TTS, metrics.

    Args:
        transport: ``"multi"`` (a pre-connected ``multi-stream-input`` socket per call) or
            ``"single"`` (a ``stream-input`` socket per utterance).
        store: the phrase store, or None for no cache.
        registry: where the cache and socket metrics are registered.
        inactivity_timeout: the multi socket's ``inactivity_timeout`` (keep-alives go out
            well within it).
        tts_factory: builds each call's TTS instead of :meth:`new_tts` (which it is given).

    Raises:
        ValueError: an unknown transport.
    """

    def __init__(
        self,
        *,
        transport: TTSTransport | str = TTSTransport.MULTI,
        store: PhraseStore | None = None,
        registry: CollectorRegistry | None = None,
        inactivity_timeout: int = 20,
        tts_factory: TTSFactory | None = None,
    ) -> None:
        try:
            self.transport = TTSTransport(transport)
        except ValueError:
            names = tuple(t.value for t in TTSTransport)
            raise ValueError(f"transport must be one of {names}, got {transport!r}") from None
        self.store = store
        self.inactivity_timeout = inactivity_timeout
        self.records: deque[UtteranceRecord] = deque(maxlen=1000)
        self.multi_totals = MultiStats()
        self.warmed = asyncio.Event()
        self._factory = tts_factory
        self._sockets: set[MultiTTS] = set()
        self._claimed: set[CallTTS] = set()  # opened at an upgrade, taken by its call's start
        #: TTS sockets opened at a media-stream upgrade and closed unused (no valid start).
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

    # ------------------------------------------------------------------ per call

    @property
    def record_max_bytes(self) -> int:
        """What a call should record of each utterance (0 without a phrase store)."""
        return MAX_PHRASE_BYTES if self.store is not None else 0

    def new_tts(self, config: TTSConfig) -> CallTTS:
        """A call's TTS on this service's transport (a multi socket counts in the metrics)."""
        if self.transport is TTSTransport.SINGLE:
            return SingleTTS(config, label=_UNCLAIMED)
        sock = MultiTTS(config, inactivity_timeout=self.inactivity_timeout, label=_UNCLAIMED)
        sock.on_closed = self._socket_closed
        self._sockets.add(sock)
        return sock

    @contextlib.asynccontextmanager
    async def stream_socket(self, config: TTSConfig | None) -> AsyncIterator[CallTTS | None]:
        """Around one media stream: its call's TTS, connecting from now on (None: no TTS
        configured).

        Its handshake overlaps the WebSocket accept and Twilio's ``connected``/``start``; the
        session handed it makes it the call's at ``start`` (:meth:`for_call`) and closes it
        with the call. A stream that never gets a valid ``start`` closes it on the way out,
        so no socket outlives its stream.
        """
        if config is None:
            yield None
            return
        tts = self._factory(config, self.new_tts) if self._factory else self.new_tts(config)
        tts.start()
        try:
            yield tts
        finally:
            if tts in self._claimed:
                self._claimed.discard(tts)
            elif self.transport is TTSTransport.MULTI:
                self.stream_sockets_unused += 1
            await tts.aclose()  # a call that took it has closed it already

    def for_call(self, call_sid: str, tts: CallTTS | None) -> CallSpeech:
        """Call ``call_sid`` started on the stream that opened ``tts``: its speech path."""
        if tts is not None:
            self._claimed.add(tts)
            tts.label = call_sid
        return CallSpeech(
            call_sid,
            tts,
            store=self.store,
            path=SpeechPath(self.transport.value),
            first_frame_sent=self.first_frame_sent,
        )

    def phrase_key(self, config: TTSConfig, text: str) -> str | None:
        return key_for(config, text)

    def first_frame_sent(
        self, call_sid: str, utterance_id: int, path: SpeechPath, time_to_first_audio: float
    ) -> None:
        self.first_frame.labels(path).observe(time_to_first_audio)
        self.records.append(UtteranceRecord(call_sid, utterance_id, path, time_to_first_audio))

    def _socket_closed(self, sock: MultiTTS) -> None:
        if sock in self._sockets:
            self._sockets.discard(sock)
            self.multi_totals += sock.stats

    def multi_stats(self) -> MultiStats:
        """Totals over closed and live sockets."""
        out = MultiStats(**vars(self.multi_totals))
        for sock in self._sockets:
            out += sock.stats
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
            return await warm_up(self.store, config, script)
        finally:
            self.warmed.set()

    async def aclose(self) -> None:
        for sock in list(self._sockets):
            await sock.aclose()


def key_for(config: TTSConfig, text: str) -> str | None:
    """The phrase key of ``text`` spoken with ``config``'s voice (None: not cacheable)."""
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


async def warm_up(store: PhraseStore, config: TTSConfig, script: CallScript) -> int:
    """Synthesise the script's fixed lines into ``store`` (``HOTLINE_CACHE_WARMUP=1``).

    Returns:
        How many lines were stored (already cached lines count too).
    """
    lines = [script.greeting, script.goodbye, script.invalid_digit]
    lines += [entry.say for entry in script.menu.values()]
    stored = 0
    for text in dict.fromkeys(lines):
        key = key_for(config, text)
        if key is None:
            continue
        if await store.get(key) is not None:
            stored += 1
            continue
        try:
            recording = await _record_line(config, text)
        except (TTSFailed, CodecError) as exc:
            log.warning("cache warm-up: a line failed (%s); skipped", exc)
            continue
        if recording is not None:
            await store.put(key, recording)
            stored += 1
    log.info("cache warm-up: %d of %d fixed lines cached", stored, len(set(lines)))
    return stored


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


_NO_CHARS = Alignment((), (), ())


class CallSpeech:
    """One call's speech path (see the module docstring).

    Args:
        call_sid: the call.
        tts: the call's TTS, or None when no TTS is configured (every utterance fails).
        store: the phrase store, or None for no cache.
        path: the path of an utterance that is not a cache hit (the TTS transport).
        first_frame_sent: where each utterance's time to first audio goes.
    """

    def __init__(
        self,
        call_sid: str,
        tts: CallTTS | None,
        *,
        store: PhraseStore | None,
        path: SpeechPath,
        first_frame_sent: FirstFrameSent,
    ) -> None:
        self.call_sid = call_sid
        self.tts = tts
        self.store = store
        self.path = path
        self._first_frame_sent = first_frame_sent
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

    async def utter(self, host: SpeechHost, utterance_id: int, text: str) -> None:
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
            await self._speak(host, utterance_id, text, on_event, on_bad)
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

    async def _speak(
        self,
        host: SpeechHost,
        utterance_id: int,
        text: str,
        on_event: Callable[[TTSEvent], Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        """A streamed utterance goes to the TTS piece by piece; a fixed line (a feed closed at
        birth) is looked up in the phrase store first, and stored if its recording is clean."""
        tts = self.tts
        if tts is None:
            raise TTSFailed("connect", "no TTS configured")
        store = self.store
        key: str | None = None
        feed = self._feeds.get(utterance_id)
        if feed is None:
            feed = TextFeed.fixed(text)
            key = key_for(tts.config, text) if store is not None else None
            if store is not None and key is not None:
                hit = await store.get(key)
                if hit is not None:
                    self.paths[utterance_id] = SpeechPath.CACHE
                    if host.call.play_recorded(utterance_id, hit, clock()):
                        host.dispatch()
                    return
                self._keys[utterance_id] = key
        self.paths[utterance_id] = self.path
        await tts.synthesize(feed, on_event, on_bad_message)
        recording = self._recorded.pop(utterance_id, None)
        if store is not None and key is not None and recording is not None:
            await store.put(key, recording)

    def recorded(self, action: UtteranceRecorded) -> None:
        """The Call recorded a clean miss: store it once its synthesis has returned."""
        if action.utterance_id in self._keys:
            self._recorded[action.utterance_id] = action.ulaw

    def first_frame_sent(self, utterance_id: int, time_to_first_audio: float) -> None:
        path = self.paths.pop(utterance_id, self.path)
        self._first_frame_sent(self.call_sid, utterance_id, path, time_to_first_audio)

    async def aclose(self) -> None:
        tts, self.tts = self.tts, None
        if tts is not None:
            with contextlib.suppress(Exception):
                await tts.aclose()


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
        yield CounterMetricFamily(
            "hotline_tts_stream_sockets_unused",
            "TTS sockets opened at a media-stream upgrade and closed unused (no valid start)",
            service.stream_sockets_unused,
        )
