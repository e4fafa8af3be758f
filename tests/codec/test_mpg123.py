"""The libmpg123 feed decoder: chunking never changes the output, rates follow the stream,
stereo is mixed to mono, LAME tags make decoding gapless, junk is skipped and counted."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.codec import Mp3Decoder, Transcoder, mpg123_version

JSON_ERROR = b'{"detail":{"status":"quota_exceeded","message":"This request exceeds your quota."}}'


def decode(data: bytes, pieces: list[bytes] | None = None) -> tuple[bytes, Mp3Decoder]:
    d = Mp3Decoder()
    out = [d.feed(p) for p in (pieces if pieces is not None else [data])]
    out.append(d.flush())
    return b"".join(out), d


def i16(b: bytes) -> np.ndarray:
    return np.frombuffer(b, "<i2").astype(np.float64)


def best_lag(ref: np.ndarray, out: np.ndarray, max_lag: int = 3000) -> tuple[int, float]:
    """Lag of out against ref that maximises the normalised correlation, and that correlation."""
    n = min(len(ref), len(out) - max_lag)
    best = (0, -1.0)
    for lag in range(max_lag):
        a, b = ref[:n], out[lag : lag + n]
        c = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
        if c > best[1]:
            best = (lag, c)
    return best


def test_version() -> None:
    v = mpg123_version()
    assert isinstance(v, str) and any(ch.isdigit() for ch in v)


@pytest.mark.parametrize(
    "kw",
    [
        {"rate": 44100, "kbps": 128},
        {"rate": 22050, "kbps": 32},
        {"rate": 24000, "kbps": 48},
        {"rate": 8000, "kbps": 16},
        {"rate": 44100, "vbr": True},
        {"rate": 44100, "channels": 2, "kbps": 128},
    ],
)
def test_chunk_invariance(
    mp3: Callable[..., bytes], cut: Callable[..., list[bytes]], kw: dict
) -> None:
    data = mp3(seconds=0.6, **kw)
    one, d1 = decode(data)
    assert len(one) > 0 and d1.rate == kw["rate"]
    for sizes in ([1], [7], [417], [4096], [1, 2, 3, 1000, 5]):
        out, d = decode(data, cut(data, sizes))
        assert out == one, sizes
        assert d.skipped_bytes == d1.skipped_bytes == 0


@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=2500), min_size=1, max_size=10))
def test_chunk_invariance_random(
    mp3: Callable[..., bytes], cut: Callable[..., list[bytes]], sizes: list[int]
) -> None:
    data = mp3(seconds=0.5)
    assert decode(data, cut(data, sizes))[0] == decode(data)[0]


def test_stereo_is_mixed_to_mono(
    mp3: Callable[..., bytes], signal: Callable[..., np.ndarray]
) -> None:
    rate = 44100
    data = mp3(rate, 0.5, channels=2, kbps=192)  # left: bursts, right: a 440 Hz tone
    out, d = decode(data)
    assert d.rate == rate
    left = signal(rate, 0.5, "bursts").astype(np.float64)
    right = signal(rate, 0.5, "tone").astype(np.float64)
    y = i16(out)
    lag, corr = best_lag((left + right) / 2, y)
    assert corr > 0.9
    assert 500 < lag < 2000  # LAME's encoder delay (no tag, so not trimmed)
    # the mix, not one channel
    n = len(left) - 100
    assert np.dot(y[lag : lag + n], right[:n]) > 0.3 * np.dot(right[:n], right[:n]) / 2


def test_new_format_mid_stream(mp3: Callable[..., bytes], cut: Callable[..., list[bytes]]) -> None:
    a, b = mp3(44100, 0.4, kbps=128), mp3(22050, 0.4, kbps=32)
    da, db = decode(a)[0], decode(b)[0]
    d = Mp3Decoder()
    first = d.feed(a)
    assert d.rate == 44100
    rest = d.feed(b) + d.flush()
    assert d.rate == 22050
    # the format change is followed sample-exactly (the second stream starts fresh)
    assert len(first + rest) == len(da) + len(db)
    assert d.skipped_bytes == 0 and d.resyncs == 0  # a new stream is not junk
    assert (first + rest)[-len(db) // 2 :] == db[-len(db) // 2 :]
    for sizes in ([1], [333], [4096]):
        assert decode(a + b, cut(a + b, sizes))[0] == first + rest


def test_gapless_with_lame_tag(
    lame_tagged: Callable[[np.ndarray, int], bytes], signal: Callable[..., np.ndarray]
) -> None:
    for rate in (44100, 22050):
        pcm = signal(rate, 0.7, "bursts", seed=3)
        data = lame_tagged(pcm, rate)
        out, d = decode(data)
        assert len(out) // 2 == len(pcm)  # encoder delay and padding trimmed
        lag, corr = best_lag(pcm.astype(np.float64)[: rate // 2], i16(out), max_lag=50)
        assert lag == 0 and corr > 0.6  # 64 kb/s noise bursts: the lag is what matters
        for sizes in ([1], [100], [3000]):
            pieces = [data[i : i + sizes[0]] for i in range(0, len(data), sizes[0])]
            assert decode(data, pieces)[0] == out
        # the ID3 tag and the Info frame are metadata, not junk
        assert data.startswith(b"ID3")
        assert d.skipped_bytes == 0 and d.resyncs == 0


def test_untagged_stream_keeps_encoder_delay(mp3: Callable[..., bytes]) -> None:
    out, _ = decode(mp3(44100, 0.5))
    assert len(out) // 2 >= int(44100 * 0.5) + 576  # not trimmed: whole frames


def test_junk_is_skipped_and_counted(mp3: Callable[..., bytes]) -> None:
    m = mp3(44100, 0.5)
    clean, _ = decode(m)
    out, d = decode(JSON_ERROR + m)
    assert out == clean
    assert d.skipped_bytes == len(JSON_ERROR) and d.resyncs == 0
    out, d = decode(m + JSON_ERROR + m)
    assert d.skipped_bytes == len(JSON_ERROR) and d.resyncs == 1
    assert len(out) == 2 * len(clean)
    # the stream after the junk decodes in full; the decoder's filter-bank state from the
    # first stream may move a few samples by 1 LSB (float rounding), nothing more
    diff = np.abs(i16(out[-len(clean) :]) - i16(clean))
    assert diff.max() <= 1 and np.count_nonzero(diff) < 20


def test_zero_run_between_streams(mp3: Callable[..., bytes]) -> None:
    m = mp3(22050, 0.3, kbps=32)
    out, d = decode(m + bytes(5000) + m)
    assert d.skipped_bytes == 5000 and d.resyncs == 1
    assert len(out) == 2 * len(decode(m)[0])


def test_truncated_last_frame_counts_as_skipped(mp3: Callable[..., bytes]) -> None:
    m = mp3(44100, 0.5)
    out, d = decode(m[:-100])
    assert 0 < len(out) < len(decode(m)[0])
    assert d.skipped_bytes > 0


def test_flush_ends_the_stream_and_the_next_feed_starts_fresh(mp3: Callable[..., bytes]) -> None:
    m = mp3(24000, 0.3, kbps=48)
    clean, _ = decode(m)
    d = Mp3Decoder()
    assert d.feed(m) + d.flush() == clean
    assert d.flush() == b""
    assert d.feed(m) + d.flush() == clean


def test_reset_drops_buffered_input(mp3: Callable[..., bytes]) -> None:
    m = mp3(44100, 0.5)
    clean, _ = decode(m)
    d = Mp3Decoder()
    d.feed(m[: len(m) // 2 + 77])
    d.reset()
    assert d.feed(m) + d.flush() == clean


def test_any_contiguous_buffer(mp3: Callable[..., bytes]) -> None:
    m = mp3(22050, 0.3, kbps=32)
    clean, _ = decode(m)
    for buf in (bytearray(m), memoryview(m), np.frombuffer(m, np.uint8)):
        assert decode(m, [buf])[0] == clean  # type: ignore[list-item]


def test_id3_tag_between_streams_is_metadata(mp3: Callable[..., bytes]) -> None:
    m = mp3(22050, 0.3, kbps=32)
    body = b"TIT2\x00\x00\x00\x05\x00\x00\x03abcd"
    tag = b"ID3\x03\x00\x00" + bytes([0, 0, 0, len(body)]) + body
    out, d = decode(tag + m + tag + m)
    assert len(out) == 2 * len(decode(m)[0])
    assert d.skipped_bytes == 0 and d.resyncs == 0


def test_tiny_streams(mp3: Callable[..., bytes]) -> None:
    # a stream of one or two frames has no successor to confirm its first header: flush()
    # accepts a complete last frame
    for seconds in (0.005, 0.03):
        m = mp3(44100, seconds, kbps=128)
        out, d = decode(m)
        assert len(out) // 2 >= 1152 and d.skipped_bytes == 0
        assert decode(m, [m[i : i + 1] for i in range(len(m))])[0] == out


def test_fake_header_right_after_a_frame_does_not_swallow_the_stream(
    mp3: Callable[..., bytes],
) -> None:
    # found by fuzzing: the first frames of a stream, then junk whose first bytes are a
    # header of another stream claiming a ~1 KB frame, exactly where the next frame should
    # start, then a valid stream. The header must be confirmed before it is believed.
    g = mp3(22050, 0.3, kbps=32)
    clean, _ = decode(g)
    for fake in (b"\xff\xe2\xe5\xd3", b"\xff\xe3\xc9\x1d", b"\xff\xf3\xd2\x1f" * 40):
        first = 2 * 104 + 1  # a little over the first two 104/105-byte frames
        cut = g.find(b"\xff\xf3", first)  # the third frame's header
        out, d = decode(g[:cut] + fake + g)
        tail = out[-len(clean) :]
        assert len(out) >= len(clean) and len(tail) == len(clean)
        assert d.skipped_bytes >= len(fake)


def id3_header(size: int, flags: int = 0) -> bytes:
    """An ID3v2.3 tag header announcing a body of ``size`` bytes (syncsafe)."""
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00" + bytes([flags]) + syncsafe


@pytest.mark.parametrize("pieces", [None, 1, 7, 333])
def test_id3_lookalike_in_junk_loses_no_valid_audio(
    mp3: Callable[..., bytes], pieces: int | None
) -> None:
    # issue 9: 20 junk bytes between two valid streams, "ID3" plus a plausible syncsafe size
    # (here 335: a 345-byte "tag"), made the sync skip 345 bytes of the second stream as
    # metadata, uncounted as junk: 3.08 s of speech came out as 2.04 s
    m = mp3(22050, 1.5, kbps=32)
    clean, _ = decode(m)
    junk = id3_header(335) + b"not a tag!"
    assert len(junk) == 20
    data = m + junk + m
    chunks = None if pieces is None else [data[i : i + pieces] for i in range(0, len(data), pieces)]
    out, d = decode(data, chunks)
    assert len(out) == 2 * len(clean)  # the second stream in full
    assert d.skipped_bytes == len(junk) and d.metadata_bytes == 0 and d.resyncs == 1
    # exactly what the same junk without the "ID3" look gives
    assert out == decode(m + b"x" * len(junk) + m)[0]


def test_id3_lookalike_right_where_a_frame_should_start(mp3: Callable[..., bytes]) -> None:
    # the junk starts exactly at a frame boundary of the running stream
    m = mp3(44100, 0.8, kbps=64)
    clean, _ = decode(m)
    junk = id3_header(1000) + bytes(30)
    head = m[: m.find(b"\xff\xfb", len(m) // 2)]  # up to a frame header of the stream
    out, d = decode(head + junk + m)
    assert d.metadata_bytes == 0 and d.skipped_bytes == len(junk)
    assert out == decode(head + b"x" * len(junk) + m)[0]  # as if the junk did not say "ID3"
    assert len(out) > len(clean)


def test_id3_tags_are_counted_as_metadata(mp3: Callable[..., bytes]) -> None:
    m = mp3(22050, 0.3, kbps=32)
    body = b"TIT2\x00\x00\x00\x05\x00\x00\x03abcd"
    tag = id3_header(len(body)) + body
    out, d = decode(tag + m + tag + m)  # at the start and between streams: both real tags
    assert len(out) == 2 * len(decode(m)[0])
    assert d.metadata_bytes == 2 * len(tag) and d.skipped_bytes == 0 and d.resyncs == 0
    t = Transcoder("mp3_22050_32")  # exported in the transcoder's stats too
    t.feed(tag + m + tag + m)
    t.flush()
    assert t.stats.metadata_bytes == 2 * len(tag) and t.stats.skipped_bytes == 0
    assert t.stats.as_dict()["metadata_bytes"] == 2 * len(tag)


def test_large_tag_away_from_the_start_is_junk_not_a_hole(mp3: Callable[..., bytes]) -> None:
    # a 20 KB tag between streams cannot be checked against the frame after it (the sync holds
    # 16 KB): it is scanned as junk, and the stream after it still decodes in full
    m = mp3(22050, 0.5, kbps=32)
    clean, _ = decode(m)
    tag = id3_header(20_000) + bytes(20_000)
    out, d = decode(m + tag + m)
    assert len(out) == 2 * len(clean)
    assert d.skipped_bytes == len(tag) and d.metadata_bytes == 0
    # at the start of a stream the same tag is metadata
    out, d = decode(tag + m)
    assert out == clean and d.metadata_bytes == len(tag) and d.skipped_bytes == 0
