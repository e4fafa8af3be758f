"""Blocking synthesis for the local voice: eSpeak NG PCM -> one continuous encoded stream.

A :class:`StreamSynth` is one ElevenLabs utterance (``stream-input`` socket) or context
(``multi-stream-input``): every generation goes through the same :class:`Encoder`, so an MP3
stream is one continuous MP3 stream (bit reservoir and all) however many generations it took.
``flush`` ends the encoder (its tail is emitted) and the next generation starts a new one.

Calls block (eSpeak holds a global lock, LAME encodes): the server runs them in a worker
thread. A process-wide cache keyed by the whole generation history makes repeated utterances
(the same greeting on a hundred calls) cost a dictionary lookup, byte-identical to a fresh
synthesis: on a miss after hits, the encoder is rebuilt by replaying this stream's own PCM.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from hotline.tts_standin.encode import Encoder
from hotline.tts_standin.espeak import Pcm, synthesize


class _Lru:
    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._size = 0
        self._data: OrderedDict[object, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: object) -> object | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: object, value: object, size: int) -> None:
        if size > self._max:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._data[key] = (value, size)
            self._size += size
            while self._size > self._max and self._data:
                _k, (_v, s) = self._data.popitem(last=False)
                self._size -= s

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._size = 0


_PCM_CACHE = _Lru(8 << 20)  # bounded so a soak with many distinct texts stays flat
_OUT_CACHE = _Lru(16 << 20)


def clear_caches() -> None:
    _PCM_CACHE.clear()
    _OUT_CACHE.clear()


_PCM_FILL = threading.Lock()  # one synthesis per missing key (eSpeak is serialised anyway)


def speech_pcm(text: str, voice: str, rate_wpm: int, *, cache: bool = True) -> Pcm:
    """eSpeak NG PCM for ``text`` (cached per process when ``cache``).

    eSpeak is not repeatable within a process (its pitch flutter runs on between calls), so
    two syntheses of one text differ slightly; the fill lock makes concurrent misses share one.
    """
    key = (text, voice, rate_wpm)
    if not cache:
        return synthesize(text, voice=voice, rate_wpm=rate_wpm)
    hit = _PCM_CACHE.get(key)
    if isinstance(hit, Pcm):
        return hit
    with _PCM_FILL:
        hit = _PCM_CACHE.get(key)
        if isinstance(hit, Pcm):
            return hit
        pcm = synthesize(text, voice=voice, rate_wpm=rate_wpm)
        _PCM_CACHE.put(key, pcm, len(pcm.samples) + 64)
    return pcm


def _pcm_id(pcm: Pcm) -> tuple[int, int]:
    # bytes cache their hash, so this is cheap after the first call on a cached Pcm
    return (len(pcm.samples), hash(pcm.samples))


@dataclass(frozen=True)
class Generation:
    """One generation's encoded audio and the speech duration it carries."""

    audio: bytes
    duration_ms: float
    text: str


class StreamSynth:
    """One continuous encoded stream. Not thread-safe; use from one worker at a time.

    Args:
        output_format: an ElevenLabs ``output_format`` the encoder supports.
        voice: eSpeak NG voice name.
        rate_wpm: speaking rate.
        cache: use the process-wide caches.
    """

    def __init__(
        self, output_format: str, *, voice: str = "en-us", rate_wpm: int = 175, cache: bool = True
    ) -> None:
        self.output_format = output_format
        self._voice = voice
        self._rate = rate_wpm
        self._cache = cache
        self._history: list[tuple[str, Pcm]] = []  # generations since the encoder started
        self._encoder: Encoder | None = None
        self._encoder_current = True  # False after cache hits: encoder state lags history

    def generate(self, text: str, *, end: bool) -> Generation:
        """Synthesize ``text`` and encode it; ``end`` also emits the encoder's tail.

        Raises:
            SynthesisError, CodecError: bad text or format (from eSpeak / the encoder).
        """
        pcm = (
            speech_pcm(text, self._voice, self._rate, cache=self._cache)
            if text.strip()
            else Pcm(b"", 22050)
        )
        # Keyed by the PCM itself, not the text: a hit must mean this stream's encoder would
        # have produced exactly these bytes, or replaying our own history after it would splice
        # two different MP3 streams (a bit reservoir pointing at someone else's bytes).
        key = (
            self.output_format,
            tuple(_pcm_id(p) for _, p in self._history),
            _pcm_id(pcm),
            end,
        )
        audio: bytes | None = None
        if self._cache:
            hit = _OUT_CACHE.get(key)
            if isinstance(hit, bytes):
                audio = hit
                self._encoder_current = False
        if audio is None:
            enc = self._ensure_encoder(pcm.sample_rate if pcm.samples else None)
            audio = enc.feed(pcm.samples) if pcm.samples else b""
            if end:
                audio += enc.flush()
            if self._cache:
                _OUT_CACHE.put(key, audio, len(audio) + 256)
        duration_ms = 1000.0 * pcm.n_samples / pcm.sample_rate if pcm.samples else 0.0
        if end:
            self._history = []
            self._encoder = None
            self._encoder_current = True
        else:
            self._history.append((text, pcm))
        return Generation(audio, duration_ms, text)

    def _ensure_encoder(self, rate: int | None) -> Encoder:
        if self._encoder is not None and self._encoder_current:
            return self._encoder
        in_rate = rate
        for _t, p in self._history:
            if p.samples:
                in_rate = p.sample_rate
                break
        enc = Encoder(self.output_format, in_rate or 22050)
        for _t, p in self._history:  # replay to reach the state the cached output implies
            if p.samples:
                enc.feed(p.samples)
        self._encoder = enc
        self._encoder_current = True
        return enc
