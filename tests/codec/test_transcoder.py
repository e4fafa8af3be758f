"""Transcoder: every ElevenLabs output_format -> µ-law 8 kHz, byte-identical whatever the
chunking; flush/reset semantics; stats; zero-copy input of any contiguous buffer."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hotline.codec as codec
from hotline.codec import SUPPORTED_FORMATS, Mp3Decoder, Resampler, Transcoder
from hotline.errors import CodecError

EXPECTED_FORMATS = (
    "mp3_22050_32",
    "mp3_24000_48",
    "mp3_44100_32",
    "mp3_44100_64",
    "mp3_44100_96",
    "mp3_44100_128",
    "mp3_44100_192",
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_32000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
    "alaw_8000",
)


@pytest.fixture(scope="module")
def inputs(mp3: Callable[..., bytes], signal: Callable[..., np.ndarray]) -> dict[str, bytes]:
    """0.4 s of audio in every format (PCM with an odd trailing byte)."""
    out = {}
    for fmt in SUPPORTED_FORMATS:
        kind, rate_s = fmt.split("_")[:2]
        rate = int(rate_s)
        if kind == "mp3":
            out[fmt] = mp3(rate, 0.4, kbps=int(fmt.split("_")[2]))
        elif kind == "pcm":
            out[fmt] = signal(rate, 0.4, "bursts").astype("<i2").tobytes() + b"\x7f"
        else:
            out[fmt] = np.random.default_rng(5).integers(0, 256, 3201, np.uint8).tobytes()
    return out


def transcode(fmt: str, pieces: list[bytes] | list[object]) -> bytes:
    t = Transcoder(fmt)
    return b"".join([t.feed(p) for p in pieces] + [t.flush()])


def test_supported_formats_exactly() -> None:
    assert SUPPORTED_FORMATS == EXPECTED_FORMATS


@pytest.mark.parametrize("bad", ["mp3_44100", "opus_48000_64", "pcm_11025", "", "MP3_44100_128"])
def test_unknown_format_lists_the_supported_ones(bad: str) -> None:
    with pytest.raises(CodecError) as exc:
        Transcoder(bad)
    assert isinstance(exc.value, ValueError)
    assert "mp3_44100_128" in str(exc.value) and "ulaw_8000" in str(exc.value)


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_chunk_invariance(
    fmt: str, inputs: dict[str, bytes], cut: Callable[..., list[bytes]]
) -> None:
    data = inputs[fmt]
    one = transcode(fmt, [data])
    assert len(one) > 0
    for sizes in ([1], [2], [3], [17], [509], [4096], [1, 4095, 2, 333]):
        assert transcode(fmt, cut(data, sizes)) == one, sizes


@settings(max_examples=30, deadline=None)
@given(
    fmt=st.sampled_from(SUPPORTED_FORMATS),
    sizes=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=8),
)
def test_chunk_invariance_random(
    inputs: dict[str, bytes], cut: Callable[..., list[bytes]], fmt: str, sizes: list[int]
) -> None:
    data = inputs[fmt]
    assert transcode(fmt, cut(data, sizes)) == transcode(fmt, [data])


def test_ulaw_passes_through(inputs: dict[str, bytes]) -> None:
    data = inputs["ulaw_8000"]
    assert transcode("ulaw_8000", [data]) == data


def test_alaw_maps_by_table(inputs: dict[str, bytes]) -> None:
    data = inputs["alaw_8000"]
    assert transcode("alaw_8000", [data]) == codec.alaw_to_ulaw(data)


def test_pcm_8000_is_plain_ulaw_and_carries_the_odd_byte(inputs: dict[str, bytes]) -> None:
    data = inputs["pcm_8000"]
    even = data[:-1]
    assert transcode("pcm_8000", [data]) == codec.ulaw_encode(even)  # odd tail dropped at flush
    t = Transcoder("pcm_8000")
    assert t.feed(even[:3]) == codec.ulaw_encode(even[:2])
    assert t.feed(even[3:]) == codec.ulaw_encode(even[2:])


@pytest.mark.parametrize(
    "fmt", [f for f in SUPPORTED_FORMATS if f.startswith("pcm_") and f != "pcm_8000"]
)
def test_pcm_is_resample_then_ulaw(fmt: str, inputs: dict[str, bytes]) -> None:
    data = inputs[fmt][:-1]
    rs = Resampler(int(fmt.split("_")[1]), 8000)
    assert transcode(fmt, [data]) == codec.ulaw_encode(rs.process(data) + rs.flush())
    assert abs(len(transcode(fmt, [data])) - 0.4 * 8000) <= 1


@pytest.mark.parametrize("fmt", ["mp3_44100_128", "mp3_22050_32", "mp3_24000_48"])
def test_mp3_matches_decode_resample_encode(fmt: str, inputs: dict[str, bytes]) -> None:
    # The Transcoder resamples libmpg123's float output; Mp3Decoder rounds to int16 first.
    data = inputs[fmt]
    d = Mp3Decoder()
    pcm = d.feed(data) + d.flush()
    rs = Resampler(d.rate, 8000)
    slow = np.frombuffer(codec.ulaw_decode(codec.ulaw_encode(rs.process(pcm) + rs.flush())), "<i2")
    fast = np.frombuffer(codec.ulaw_decode(transcode(fmt, [data])), "<i2")
    assert len(fast) == len(slow)
    err = fast.astype(np.float64) - slow
    snr = 10 * math.log10(np.sum(slow.astype(np.float64) ** 2) / max(np.sum(err**2), 1e-9))
    assert snr > 40


def test_feed_after_flush_starts_a_new_utterance(inputs: dict[str, bytes]) -> None:
    for fmt in ("mp3_44100_128", "pcm_22050", "pcm_8000", "ulaw_8000"):
        data = inputs[fmt]
        t = Transcoder(fmt)
        first = t.feed(data) + t.flush()
        assert t.flush() == b""
        assert t.feed(data) + t.flush() == first


def test_reset_drops_everything(inputs: dict[str, bytes]) -> None:
    for fmt in ("mp3_44100_128", "pcm_44100", "pcm_8000"):
        data = inputs[fmt]
        fresh = transcode(fmt, [data])
        t = Transcoder(fmt)
        t.feed(data[: len(data) // 2 + 1])  # mid-frame, odd byte pending
        t.reset()
        assert t.feed(data) + t.flush() == fresh


def test_mp3_rate_change_mid_utterance(
    mp3: Callable[..., bytes], cut: Callable[..., list[bytes]]
) -> None:
    a, b = mp3(44100, 0.4, kbps=128), mp3(22050, 0.4, kbps=32)
    t = Transcoder("mp3_44100_128")
    out = t.feed(a)
    assert t.input_rate == 44100
    out += t.feed(b) + t.flush()
    assert t.input_rate == 22050
    d1, d2 = Mp3Decoder(), Mp3Decoder()
    n1 = len(d1.feed(a) + d1.flush()) // 2
    n2 = len(d2.feed(b) + d2.flush()) // 2
    assert abs(len(out) - (n1 / 44100 + n2 / 22050) * 8000) <= 3
    for sizes in ([1], [777]):
        assert transcode("mp3_44100_128", cut(a + b, sizes)) == out


def test_stats(inputs: dict[str, bytes]) -> None:
    data = inputs["mp3_44100_64"]
    t = Transcoder("mp3_44100_64")
    assert t.input_rate == 0
    out = t.feed(b'{"error":"x"}') + t.feed(data) + t.flush()
    s = t.stats
    assert (s.bytes_in, s.bytes_out, s.feeds) == (len(data) + 13, len(out), 2)
    assert (s.skipped_bytes, s.decoder_resyncs, s.input_rate) == (13, 0, 44100)
    assert s.as_dict()["bytes_in"] == s.bytes_in and "TranscoderStats(" in repr(s)
    p = Transcoder("pcm_16000")
    assert p.input_rate == 16000 and p.stats.input_rate == 16000
    assert Transcoder("ulaw_8000").stats.skipped_bytes == 0


def test_any_contiguous_buffer_zero_copy_input(inputs: dict[str, bytes]) -> None:
    for fmt in ("mp3_44100_128", "pcm_24000", "alaw_8000"):
        data = inputs[fmt]
        expected = transcode(fmt, [data])
        assert transcode(fmt, [memoryview(data)]) == expected
        assert transcode(fmt, [bytearray(data)]) == expected
        assert transcode(fmt, [np.frombuffer(data, np.uint8)]) == expected
        even = data[: len(data) // 2 * 2]
        assert transcode(fmt, [np.frombuffer(even, "<i2")]) == transcode(fmt, [even])


def test_non_contiguous_buffer_is_a_clear_error() -> None:
    t = Transcoder("pcm_16000")
    with pytest.raises(CodecError, match="contiguous"):
        t.feed(np.zeros(100, "<i2")[::2])
    assert t.feed(b"\x00\x00") == b""  # still usable


def test_empty_feed() -> None:
    for fmt in SUPPORTED_FORMATS:
        t = Transcoder(fmt)
        assert t.feed(b"") == b""
        assert t.flush() == b""
