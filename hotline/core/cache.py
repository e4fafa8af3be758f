"""The phrase cache: finished µ-law of lines already spoken, sans-I/O.

A line's audio depends on everything ElevenLabs is told about it, so the key is a hash over
the voice, the model, the output format, the voice settings, the language the model is held to
(ElevenLabs' ``language_code``: the same text in another language is another line) and the
text::

    key = phrase_key(voice_id=..., model_id=..., output_format=..., voice_settings=...,
                     language_code=..., text=...)
    cache = PhraseCache(max_bytes=32 * 2**20)
    ulaw = cache.get(key)                 # bytes (a hit, now most recently used) or None
    cache.put(key, ulaw)                  # stored; least recently used entries evicted by bytes

What goes into the cache is what the caller heard: the µ-law the utterance's converter produced,
recorded by :class:`hotline.core.call.Call` and offered as
:class:`~hotline.core.actions.UtteranceRecorded` only when the utterance completed cleanly, so a
replay (:meth:`hotline.core.call.Call.play_recorded`) is byte-identical to the first rendering.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CacheStats", "PhraseCache", "phrase_key"]

_KEY_VERSION = "hotline-phrase-2"  # 2: the language is part of the key


def phrase_key(
    *,
    voice_id: str,
    model_id: str,
    output_format: str,
    voice_settings: Mapping[str, object] | None,
    text: str,
    language_code: str | None = None,
) -> str:
    """A hex SHA-256 over everything that changes a line's audio.

    The text is stripped of surrounding white space (the TTS client adds the trailing space
    itself); voice settings are canonical JSON (sorted keys), so dict order does not matter.
    ``language_code``: the language the voice was held to (None: none), so a line cached in
    English is never served for Spanish.

    Raises:
        ValueError: blank text, or voice settings that are not JSON-serialisable.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("cannot key a blank text")
    try:
        settings = json.dumps(
            dict(voice_settings) if voice_settings else {}, sort_keys=True, separators=(",", ":")
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"voice_settings are not JSON-serialisable: {exc}") from None
    material = json.dumps(
        [_KEY_VERSION, voice_id, model_id, output_format, settings, language_code, stripped],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class CacheStats:
    """Counters over the cache's life; ``bytes``/``entries`` are the current size."""

    hits: int = 0  # including hits served by a shared (Redis) layer
    remote_hits: int = 0  # of which found in the shared layer, not in this process
    misses: int = 0
    stores: int = 0
    evictions: int = 0
    rejected: int = 0  # entries larger than the whole cache, or empty
    bytes: int = 0
    entries: int = 0


class PhraseCache:
    """An LRU map ``key -> µ-law`` bounded by the total bytes held.

    Args:
        max_bytes: the bound; 0 disables storing (every get is a miss).

    Raises:
        ValueError: a negative bound.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Membership without touching the LRU order or the counters."""
        return key in self._entries

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        return list(self._entries)

    def get(self, key: str) -> bytes | None:
        """The µ-law stored under ``key`` (now the most recently used), or None; counted."""
        data = self._entries.get(key)
        if data is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return data

    def peek(self, key: str) -> bytes | None:
        """Like :meth:`get`, without counting or reordering."""
        return self._entries.get(key)

    def put(self, key: str, ulaw: bytes) -> bool:
        """Store ``ulaw`` under ``key`` (replacing an older value), evicting least recently used
        entries until the total fits.

        Returns:
            False if it was not stored: empty, or larger than ``max_bytes`` on its own.
        """
        size = len(ulaw)
        if size == 0 or size > self.max_bytes:
            self.stats.rejected += 1
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.stats.bytes -= len(old)
        while self._entries and self.stats.bytes + size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.stats.bytes -= len(evicted)
            self.stats.evictions += 1
        self._entries[key] = bytes(ulaw)
        self.stats.bytes += size
        self.stats.stores += 1
        self.stats.entries = len(self._entries)
        return True

    def discard(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.stats.bytes -= len(old)
            self.stats.entries = len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.stats.bytes = 0
        self.stats.entries = 0
