"""How a call's utterances get their audio: the phrase cache first, then the call's
pre-connected ``multi-stream-input`` socket (or, with ``ELEVENLABS_TRANSPORT=single``, one
``stream-input`` socket per utterance).

:class:`SpeechService` is per app: the phrase store (in-process, or shared through Redis), the
sockets opened when ``POST /voice`` answers, the converters that record what callers hear, the
warm-up, the cache metrics. :class:`CallVoice` is per call.

A hit streams the stored µ-law at once (the converter passes it through untouched, so the caller
hears exactly the first rendering). A miss records the µ-law the converter produces and stores it
only if the utterance completed cleanly: ``isFinal`` seen, never reset by a barge-in or hang-up,
no TTS error, no undecodable audio skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hotline.core.cache import CacheStats, Converter, PhraseCache, RecordingConverter, phrase_key
from hotline.core.events import TTSAudio, TTSEvent, TTSFailure, TTSFinal
from hotline.core.script import CallScript
from hotline.errors import ElevenLabsProtocolError
from hotline.server.elevenlabs_client import TTSConfig, TTSFailed, synthesize
from hotline.server.tts_multi import MultiStats, MultiTTS, Preconnects

__all__ = ["CallVoice", "LocalPhraseStore", "PhraseStore", "SpeechService", "UtteranceRecord"]

log = logging.getLogger("hotline.tts")

TRANSPORTS = ("multi", "single")
#: A single utterance longer than this (µ-law, 8 kB/s) is never recorded: 2 minutes.
MAX_PHRASE_BYTES = 120 * 8000
_FIRST_FRAME = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0)


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
    path: str  # "cache" | "multi" | "single"
    time_to_first_audio: float


class SpeechService:
    """Per app: phrase store, pre-connected sockets, recording converters, metrics.

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
        transport: str = "multi",
        store: PhraseStore | None = None,
        registry: CollectorRegistry | None = None,
        preconnect_ttl: float = 10.0,
        inactivity_timeout: int = 20,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        self.transport = transport
        self.store = store
        self.inactivity_timeout = inactivity_timeout
        self.preconnects = Preconnects(ttl=preconnect_ttl)
        self.records: deque[UtteranceRecord] = deque(maxlen=1000)
        self.multi_totals = MultiStats()
        self.warmed = asyncio.Event()
        self._sockets: set[MultiTTS] = set()
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

    def converter_factory(self, output_format: str) -> Converter:
        from hotline.codec import Transcoder

        inner = Transcoder(output_format)
        if self.store is None:
            return inner
        return RecordingConverter(inner, MAX_PHRASE_BYTES)

    def new_socket(self, config: TTSConfig, call_sid: str) -> MultiTTS:
        sock = MultiTTS(config, inactivity_timeout=self.inactivity_timeout, label=call_sid)
        sock.on_closed = self._socket_closed
        self._sockets.add(sock)
        return sock

    def preconnect(self, call_sid: str, config: TTSConfig | None) -> None:
        """``POST /voice`` answered: start the call's TTS handshake now (multi only)."""
        if self.transport == "multi" and config is not None:
            self.preconnects.open(call_sid, lambda: self.new_socket(config, call_sid))

    def for_call(self, call_sid: str, config: TTSConfig | None) -> CallVoice:
        """The call's voice: the socket opened for it at ``POST /voice``, or a new one."""
        sock: MultiTTS | None = None
        if self.transport == "multi":
            sock = self.preconnects.take(call_sid)
            if sock is None and config is not None:
                sock = self.new_socket(config, call_sid)
            if sock is not None:
                sock.start()
        return CallVoice(self, call_sid, sock)

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
        self, call_sid: str, utterance_id: int, path: str, time_to_first_audio: float
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
                conv = self.converter_factory(config.output_format)
                assert isinstance(conv, RecordingConverter)

                def feed(event: TTSEvent, conv: RecordingConverter = conv) -> bool:
                    if isinstance(event, TTSAudio):
                        conv.feed(event.data)
                    elif isinstance(event, TTSFinal):
                        conv.flush()
                    return True

                try:
                    await synthesize(config, text, feed, _ignore_bad)
                except TTSFailed as exc:
                    log.warning("cache warm-up: a line failed (%s); skipped", exc)
                    continue
                recording = conv.recording()
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


def _ignore_bad(exc: ElevenLabsProtocolError) -> None:
    log.warning("cache warm-up: dropped a malformed TTS message: %s", exc)


class CallVoice:
    """One call's speech path (see the module docstring)."""

    def __init__(self, service: SpeechService, call_sid: str, sock: MultiTTS | None) -> None:
        self.service = service
        self.call_sid = call_sid
        self.socket = sock
        self.paths: dict[int, str] = {}

    async def speak(
        self,
        utterance_id: int,
        config: TTSConfig,
        text: str,
        converter: object,
        on_event: Callable[[TTSEvent], bool | Awaitable[bool]],
        on_bad_message: Callable[[ElevenLabsProtocolError], None],
    ) -> None:
        """Speak ``text`` as utterance ``utterance_id`` (contract of
        :func:`hotline.server.elevenlabs_client.synthesize`).

        Raises:
            TTSFailed: as the transport does.
        """
        service = self.service
        store = service.store
        recorder = converter if isinstance(converter, RecordingConverter) else None
        key = service.phrase_key(config, text) if store is not None else None
        if store is not None and key is not None and recorder is not None:
            hit = await store.get(key)
            if hit is not None:
                self.paths[utterance_id] = "cache"
                recorder.replay = True
                if await _deliver(on_event, TTSAudio(hit, None, None)):
                    await _deliver(on_event, TTSFinal())
                return
        failed = False

        async def watch(event: TTSEvent) -> bool:
            nonlocal failed
            if isinstance(event, TTSFailure):
                failed = True
            return await _deliver(on_event, event)

        skipped_before = _skipped(converter)
        try:
            if service.transport == "multi":
                self.paths[utterance_id] = "multi"
                sock = self.socket
                if sock is None or sock.config != config:
                    # The TTS target changed (tests swap it live): a fresh socket for it.
                    if sock is not None:
                        await sock.aclose()
                    sock = self.socket = service.new_socket(config, self.call_sid)
                    sock.start()
                await sock.synthesize(text, watch, on_bad_message)
            else:
                self.paths[utterance_id] = "single"
                await synthesize(config, text, watch, on_bad_message)
        except BaseException:
            if recorder is not None:
                recorder.spoil()
            raise
        if recorder is None or store is None or key is None:
            return
        if failed or _skipped(converter) > skipped_before:
            recorder.spoil()
            return
        recording = recorder.recording()
        if recording is not None:
            await store.put(key, recording)

    def first_frame_sent(self, utterance_id: int, time_to_first_audio: float) -> None:
        path = self.paths.pop(utterance_id, self.service.transport)
        self.service.first_frame_sent(self.call_sid, utterance_id, path, time_to_first_audio)

    async def aclose(self) -> None:
        sock, self.socket = self.socket, None
        if sock is not None:
            with contextlib.suppress(Exception):
                await sock.aclose()


async def _deliver(on_event: Callable[[TTSEvent], bool | Awaitable[bool]], event: TTSEvent) -> bool:
    result = on_event(event)
    return await result if inspect.isawaitable(result) else result


def _skipped(converter: object) -> int:
    value = getattr(getattr(converter, "stats", None), "skipped_bytes", 0)
    return value if isinstance(value, int) else 0


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
        yield GaugeMetricFamily(
            "hotline_tts_preconnected",
            "Sockets waiting for their call's stream",
            len(service.preconnects),
        )
