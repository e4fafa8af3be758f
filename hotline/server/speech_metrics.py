"""The speech service's metrics read at scrape time: the phrase cache and the TTS sockets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hotline.core.cache import CacheStats
from hotline.server.phrases import PhraseStore
from hotline.server.tts_multi import MultiStats, SocketPool

__all__ = ["SpeechCollector"]


class _Counted(Protocol):
    """What the collector reads (:class:`hotline.server.speech_service.SpeechService`)."""

    @property
    def store(self) -> PhraseStore | None: ...

    @property
    def stream_sockets_unused(self) -> int: ...

    @property
    def pool(self) -> SocketPool: ...

    def multi_stats(self) -> MultiStats: ...


class SpeechCollector(Collector):
    def __init__(self, service: _Counted) -> None:
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
        pool = service.pool
        lent = CounterMetricFamily(
            "hotline_tts_language_sockets_lent",
            "Sockets in another language than their call's own lent to a call (idle: reused)",
            labels=["socket"],
        )
        lent.add_metric(["new"], pool.stats.lent_new)
        lent.add_metric(["idle"], pool.stats.lent_idle)
        yield lent
        yield GaugeMetricFamily(
            "hotline_tts_language_sockets_idle",
            "Sockets in another language kept open for the next call in it",
            pool.idle_sockets,
        )
