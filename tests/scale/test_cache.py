"""The phrase cache (sans-I/O): keys, LRU by bytes, recording converter, byte-identical replay."""

from __future__ import annotations

import re

import pytest

from hotline.codec import Transcoder
from hotline.core.cache import PhraseCache, RecordingConverter, phrase_key
from hotline.core.framer import Framer
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
    }
    assert k not in others and len(others) == 7
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


def _frames(conv: RecordingConverter, chunks: list[bytes]) -> bytes:
    framer = Framer()
    out = bytearray()
    for chunk in chunks:
        for frame in framer.push(conv.feed(chunk)):
            out += frame
    for frame in framer.push(conv.flush()):
        out += frame
    tail = framer.end()
    if tail:
        out += tail
    return bytes(out)


def test_recording_replays_byte_identical() -> None:
    mp3 = _mp3("The cache replays this line exactly.")
    chunks = [mp3[i : i + 997] for i in range(0, len(mp3), 997)]  # not frame aligned
    first = RecordingConverter(Transcoder("mp3_44100_128"), max_bytes=1 << 20)
    heard_first = _frames(first, chunks)
    recorded = first.recording()
    assert recorded is not None and len(recorded) > 8000  # over a second of µ-law
    replay = RecordingConverter(Transcoder("mp3_44100_128"), max_bytes=1 << 20)
    replay.replay = True
    heard_again = _frames(replay, [recorded])
    assert heard_again == heard_first
    assert replay.recording() is None  # a replay is not recorded again


def test_recording_spoiled_by_reset_error_or_size() -> None:
    mp3 = _mp3("Interrupted line.")
    conv = RecordingConverter(Transcoder("mp3_44100_128"), max_bytes=1 << 20)
    conv.feed(mp3[: len(mp3) // 2])
    conv.reset()  # barge-in
    conv.feed(mp3[len(mp3) // 2 :])
    conv.flush()
    assert conv.recording() is None
    unflushed = RecordingConverter(Transcoder("mp3_44100_128"), max_bytes=1 << 20)
    unflushed.feed(mp3)
    assert unflushed.recording() is None  # never finished
    failed = RecordingConverter(Transcoder("mp3_44100_128"), max_bytes=1 << 20)
    failed.feed(mp3)
    failed.spoil()  # the TTS reported an error
    failed.flush()
    assert failed.recording() is None
    small = RecordingConverter(Transcoder("mp3_44100_128"), max_bytes=100)
    small.feed(mp3)
    small.flush()
    assert small.recording() is None
    ok = RecordingConverter(Transcoder("mp3_44100_128"), max_bytes=1 << 20)
    ok.feed(mp3)
    ok.flush()
    assert ok.recording() is not None
    assert getattr(ok.stats, "skipped_bytes", None) == 0
