"""The phrase cache (sans-I/O): keys, LRU by bytes, LRU by bytes."""

from __future__ import annotations

import re

import pytest

from hotline.core.cache import PhraseCache, phrase_key
from hotline.tts_standin.synth import StreamSynth

BASE = {
    "voice_id": "v1",
    "model_id": "eleven_flash_v2_5",
    "output_format": "mp3_44100_128",
    "voice_settings": {"stability": 0.5, "speed": 1.0},
    "text": "Hello there.",
}


def key(**changes: object) -> str:
    return phrase_key(**{**BASE, **changes})  # type: ignore[arg-type]


def test_key_covers_everything_that_changes_the_audio() -> None:
    k = key()
    assert re.fullmatch(r"[0-9a-f]{64}", k), k  # a SHA-256 hex digest
    assert key(text="  Hello there. ") == k  # surrounding white space is not audio
    assert key(voice_settings={"speed": 1.0, "stability": 0.5}) == k  # order is not audio
    others = {
        key(voice_id="v2"),
        key(model_id="eleven_turbo_v2_5"),
        key(output_format="ulaw_8000"),
        key(voice_settings={"stability": 0.6, "speed": 1.0}),
        key(voice_settings=None),
        key(text="Hello there!"),
        key(text="hello there."),
        key(language_code="es"),  # the same line held to Spanish is another line
    }
    assert k not in others and len(others) == 8
    assert key(language_code="es") != key(language_code="fr")
    with pytest.raises(ValueError):
        key(text="   ")
    with pytest.raises(ValueError):
        key(voice_settings={"x": object()})


def test_lru_bounded_by_bytes() -> None:
    cache = PhraseCache(max_bytes=1000)
    assert cache.put("a", b"a" * 400) and cache.put("b", b"b" * 400)
    assert cache.get("a") == b"a" * 400  # a is now the most recently used
    assert cache.put("c", b"c" * 400)  # evicts b, the least recently used
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.stats.bytes == 800 and cache.stats.evictions == 1
    assert cache.get("b") is None
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)
    assert not cache.put("huge", b"x" * 1001)  # larger than the whole cache: refused
    assert cache.stats.rejected == 1 and len(cache) == 2
    assert cache.put("a", b"A" * 100)  # replacing frees the old size
    assert cache.stats.bytes == 500 and cache.peek("a") == b"A" * 100
    assert cache.put("d", b"d" * 900)  # evicts c (the least recently used); a still fits
    assert cache.keys() == ["a", "d"] and cache.stats.bytes == 1000
    assert cache.stats.evictions == 2
    cache.clear()
    assert len(cache) == 0 and cache.stats.bytes == 0
    off = PhraseCache(0)
    assert not off.put("k", b"x") and off.get("k") is None
    with pytest.raises(ValueError):
        PhraseCache(-1)


def _mp3(text: str) -> bytes:
    synth = StreamSynth("mp3_44100_128", cache=False)
    return synth.generate(text, end=True).audio


# Recording and byte-identical replay now live in the Call: tests/core/test_call.py.
