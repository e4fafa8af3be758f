"""The local voice's synthesis cache never splices two different MP3 streams."""

from __future__ import annotations

import threading

from hotline.codec import Transcoder
from hotline.tts_standin.synth import StreamSynth, clear_caches

PARTS = (
    "Hey, you've reached the Wren Calloway hotline, thanks for calling! ",
    "Press 1 for tour dates, 2 for the new record. ",
    "Press 9 to hear this again, or 0 to end the call.",
)


def _skipped(mp3: bytes) -> int:
    t = Transcoder("mp3_44100_128")
    t.feed(mp3)
    t.flush()
    return t.stats.skipped_bytes


def _utterance() -> bytes:
    synth = StreamSynth("mp3_44100_128")
    return b"".join(
        synth.generate(text, end=i == len(PARTS) - 1).audio for i, text in enumerate(PARTS)
    )


def test_concurrent_multi_generation_utterances_decode_cleanly() -> None:
    # eSpeak is not repeatable within a process, so concurrent cache misses used to produce
    # different PCM for one text; a later stream then took generation 1 from the cache and
    # encoded generation 2 from its own PCM: hundreds of undecodable bytes at the seam.
    for _ in range(3):
        clear_caches()
        outputs: list[bytes] = []

        def render(into: list[bytes] = outputs) -> None:
            into.append(_utterance())

        threads = [threading.Thread(target=render) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(outputs) == 6
        assert [_skipped(o) for o in outputs] == [0] * 6
    # and once cached, every later rendering is byte-identical
    assert _utterance() == _utterance()
