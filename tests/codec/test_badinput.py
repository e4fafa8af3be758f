"""Bad input never kills the process: random bytes, zero runs, runs of MP3 sync words,
truncated and corrupted frames, an HTTP/JSON error body fed as audio. The decoder resyncs, a
valid stream that follows decodes in full, skipped bytes are counted, memory stays flat."""

from __future__ import annotations

import ctypes
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.codec import SUPPORTED_FORMATS, Mp3Decoder, Transcoder, _codec
from hotline.errors import DecoderError
from tests.codec import memfault

ROOT = Path(__file__).resolve().parents[2]

JSON_ERROR = b'{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}'
SYNC_WORDS = [b"\xff\xfb", b"\xff\xfa", b"\xff\xf3", b"\xff\xe3", b"\xff\xfd", b"\xff\xff"]


@pytest.fixture(scope="module")
def valid(mp3: Callable[..., bytes]) -> list[bytes]:
    return [mp3(44100, 0.3, kbps=128), mp3(22050, 0.3, kbps=32), mp3(8000, 0.3, kbps=8)]


def piece_strategy(valid: list[bytes]) -> st.SearchStrategy[bytes]:
    def frame_slice(args: tuple[int, int, int]) -> bytes:
        which, start, size = args
        data = valid[which % len(valid)]
        start %= len(data)
        return data[start : start + size]

    def corrupt(args: tuple[int, list[tuple[int, int]]]) -> bytes:
        which, edits = args
        data = bytearray(valid[which % len(valid)])
        for pos, val in edits:
            data[pos % len(data)] = val
        return bytes(data)

    return st.one_of(
        st.binary(max_size=3000),
        st.integers(0, 4000).map(bytes),
        st.tuples(st.sampled_from(SYNC_WORDS), st.integers(1, 600)).map(lambda t: t[0] * t[1]),
        st.tuples(st.sampled_from(SYNC_WORDS), st.binary(min_size=2, max_size=2)).map(
            lambda t: (t[0] + t[1]) * 50
        ),
        st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 1500)).map(frame_slice),
        st.tuples(
            st.integers(0, 2),
            st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=40),
        ).map(corrupt),
        st.just(JSON_ERROR),
        st.just(b"HTTP/1.1 500 Internal Server Error\r\n\r\n<html>oops</html>"),
    )


def fresh_transcode(fmt: str, data: bytes) -> bytes:
    t = Transcoder(fmt)
    return t.feed(data) + t.flush()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_mp3_transcoder_survives_and_recovers(valid: list[bytes], data: st.DataObject) -> None:
    pieces = data.draw(st.lists(piece_strategy(valid), max_size=12))
    cut = data.draw(st.integers(1, 5000))
    t = Transcoder("mp3_44100_128")
    d = Mp3Decoder()
    for p in pieces:
        for i in range(0, len(p), cut):
            assert isinstance(t.feed(p[i : i + cut]), bytes)
            assert isinstance(d.feed(p[i : i + cut]), bytes)
    t.flush()
    d.flush()
    total = sum(map(len, pieces))
    assert 0 <= t.stats.skipped_bytes <= total and t.stats.bytes_in == total
    # after flush the object is as good as new: a valid stream decodes exactly as fresh
    good = valid[0]
    assert t.feed(good) + t.flush() == fresh_transcode("mp3_44100_128", good)
    dd = Mp3Decoder()
    assert d.feed(good) + d.flush() == dd.feed(good) + dd.flush()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_junk_then_valid_stream_without_flush(valid: list[bytes], data: st.DataObject) -> None:
    # junk, then a valid stream in the same utterance: the stream is decoded in full (every
    # frame; the first ones may differ slightly where the junk left decoder state behind)
    junk = data.draw(st.lists(piece_strategy(valid), max_size=6))
    good = valid[0]
    ref_d = Mp3Decoder()
    ref = ref_d.feed(good) + ref_d.flush()
    d = Mp3Decoder()
    head = b"".join(d.feed(p) for p in junk)
    tail = d.feed(b"\x00" * 4 + good) + d.flush()
    assert len(head) % 2 == 0
    # the junk may end inside something that looks like a frame and swallow the first frame
    # or two of the stream; everything after that is there
    assert len(tail) >= len(ref) - 2 * 2 * 1152


@pytest.mark.parametrize(
    "junk",
    [
        b'ID3{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}',  # found by fuzzing
        b"ID3\x05\x00\x00\x00\x00\x10\x00",  # no ID3v2.5
        b"ID3\x03\x00\x01\x00\x00\x10\x00",  # an undefined flag bit
    ],
)
def test_id3_lookalike_at_the_start_keeps_the_stream(valid: list[bytes], junk: bytes) -> None:
    """At a stream's start "ID3" is believed only with a real version and flags: a JSON error
    body ("ID3" then '{"', a 200 MB syncsafe size) must not swallow the audio behind it."""
    good = valid[0]
    ref_d = Mp3Decoder()
    ref = ref_d.feed(good) + ref_d.flush()
    d = Mp3Decoder()
    out = d.feed(junk) + d.feed(b"\x00" * 4 + good) + d.flush()
    assert len(out) >= len(ref) - 2 * 2 * 1152
    assert d.metadata_bytes == 0


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_random_bytes_every_format(fmt: str) -> None:
    rng = random.Random(fmt)
    t = Transcoder(fmt)
    total = 0
    for _ in range(200):
        chunk = rng.randbytes(rng.randint(0, 700))
        total += len(t.feed(chunk))
    total += len(t.flush())
    assert t.stats.bytes_out == total


def test_sync_word_run_then_valid(valid: list[bytes]) -> None:
    good = valid[1]
    t = Transcoder("mp3_22050_32")
    t.feed(b"\xff\xfb\x90\x64" * 5000)  # plausible headers, no valid frames behind them
    out = t.feed(good) + t.flush()
    assert abs(len(out) - len(fresh_transcode("mp3_22050_32", good))) <= 2 * 8000 * 1152 // 22050
    assert t.stats.skipped_bytes >= 5000 * 4 - 2000


@pytest.mark.parametrize(
    "junk", [b"\xff\xfc\x00\x00", b"\xff\xfd\x00\x00", b"\xff\xfb\x00\x00", b"\xff\xe3\x00\x00"]
)
def test_free_format_header_does_not_swallow_the_stream(valid: list[bytes], junk: bytes) -> None:
    # found by the fuzz test: with libmpg123's default free-format read-ahead, these four
    # bytes (a free-format header) made the decoder skip the whole valid stream after them
    good = valid[0]
    t = Transcoder("mp3_44100_128")
    out = t.feed(junk) + t.feed(good) + t.flush()
    assert abs(len(out) - len(fresh_transcode("mp3_44100_128", good))) <= 8000 * 1152 // 44100
    assert t.stats.skipped_bytes <= len(junk) + 1000


def test_json_error_body_is_skipped_and_counted(valid: list[bytes]) -> None:
    good = valid[0]
    t = Transcoder("mp3_44100_128")
    assert t.feed(JSON_ERROR) == b""
    assert t.feed(good) + t.flush() == fresh_transcode("mp3_44100_128", good)
    assert t.stats.skipped_bytes == len(JSON_ERROR)


def test_truncated_frames_between_streams(valid: list[bytes]) -> None:
    good = valid[0]
    t = Transcoder("mp3_44100_128")
    out = t.feed(good[:2000]) + t.feed(good) + t.flush()
    assert len(out) >= len(fresh_transcode("mp3_44100_128", good))
    assert t.stats.skipped_bytes > 0 and t.stats.decoder_resyncs >= 1


def test_reset_after_error_path_makes_the_object_usable(valid: list[bytes]) -> None:
    # DecoderError is what an unrecoverable libmpg123 error raises; reset() must always give a
    # working object, whatever state it was left in.
    assert issubclass(DecoderError, ValueError)
    t = Transcoder("mp3_44100_128")
    t.feed(os.urandom(5000))
    t.feed(valid[0][:1234])
    t.reset()
    assert t.feed(valid[0]) + t.flush() == fresh_transcode("mp3_44100_128", valid[0])


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_memory_flat_over_100k_feeds(valid: list[bytes]) -> None:
    rng = random.Random(0)
    stream = valid[0] + valid[1]
    pieces = [stream[i : i + 97] for i in range(0, len(stream), 97)]
    junk = [rng.randbytes(300), b"\xff\xfb" * 150, bytes(300), JSON_ERROR]
    t = Transcoder("mp3_44100_128")
    p = Transcoder("pcm_22050")

    def run(n: int, offset: int) -> None:
        for i in range(offset, offset + n):
            t.feed(pieces[i % len(pieces)])
            if i % 50 == 0:
                t.feed(junk[i % len(junk)])
            if i % 10 == 0:
                p.feed(pieces[i % len(pieces)])
            if i % 1000 == 999:
                t.flush()
                p.flush()
            if i % 7919 == 0:
                t.reset()

    run(10_000, 0)  # warm up: scratch buffers, filter tables, allocator pools
    before = _rss_bytes()
    run(90_000, 10_000)
    grown = _rss_bytes() - before
    assert grown < 2 * 1024 * 1024, f"RSS grew by {grown} bytes over 90,000 feeds"
    assert t.stats.feeds > 100_000


RANDOM_RUN_PIECES = 20_000  # about 2 s here


def test_random_run(valid: list[bytes]) -> None:
    # A bounded stand-in for a long fuzzing run: a fixed number of pieces (the same run on every
    # machine, however loaded) of junk of every kind, valid and corrupted streams of several
    # rates, random cuts, flushes and resets, through both MP3 paths.
    rng = random.Random(20261126)
    t, d = Transcoder("mp3_44100_128"), Mp3Decoder()
    for _ in range(RANDOM_RUN_PIECES):
        k = rng.random()
        if k < 0.3:
            piece = rng.randbytes(rng.randint(0, 3000))
        elif k < 0.45:
            piece = rng.choice(SYNC_WORDS) * rng.randint(1, 500)
        elif k < 0.55:
            piece = bytes(rng.randint(0, 3000))
        elif k < 0.7:
            g = rng.choice(valid)
            a = rng.randrange(len(g))
            piece = g[a : a + rng.randint(0, 2000)]
        elif k < 0.8:
            b = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 50)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            piece = bytes(b)
        elif k < 0.85:
            piece = JSON_ERROR
        else:
            piece = rng.choice(valid)
        for o in (t, d):
            assert isinstance(o.feed(piece), bytes)
            if rng.random() < 0.05:
                o.flush()
            if rng.random() < 0.01:
                o.reset()
    t.flush()
    assert t.feed(valid[0]) + t.flush() == fresh_transcode("mp3_44100_128", valid[0])


MEMORY_ERROR_CHILD = """
import json, sys
from tests.codec import memfault
memfault.prepare()
from tests.codec.conftest import make_mp3
from hotline.codec import Transcoder

warm = make_mp3(44100, 5.0, kbps=192, seed=1)
big = make_mp3(16000, 60.0, kbps=16, seed=2)  # 45 s of output in one feed(): its buffer grows
big = big[: len(big) * 3 // 4]                # (sliced before the cap: not the failing alloc)
after = make_mp3(22050, 1.0, kbps=32, seed=3)
fresh = Transcoder("mp3_44100_128")
expected = fresh.feed(after) + fresh.flush()

t = Transcoder("mp3_44100_128")
t.feed(warm)
t.flush()
err = memfault.call_capped(lambda: t.feed(big))
mid_feed = t.input_rate == 16000  # decoding of `big` had begun when the allocation failed
t.reset()
got = t.feed(after) + t.flush()
json.dump({"err": type(err).__name__, "mid_feed": mid_feed, "identical": got == expected,
           "n": len(got)}, sys.stdout)
"""


@pytest.mark.skipif(not memfault.supported(), reason="needs Linux RLIMIT_AS")
def test_reset_after_a_memory_error_mid_feed_gives_a_fresh_transcoder() -> None:
    # issue 9: after any exception (not only a codec error) reset() must leave an object that
    # behaves exactly as a new one. The allocation failure is real (address space capped in a
    # child process), inside feed(), after libmpg123 was fed and decoding had begun.
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_ERROR_CHILD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"err": "MemoryError", "mid_feed": True, "identical": True, "n": report["n"]}
    assert report["n"] > 7000  # about 1 s of µ-law


def test_mp3sync_refuses_a_buffer_below_its_minimum() -> None:
    # issue 9: hl_mp3sync_init() did not check its capacity; with a buffer smaller than a
    # pending frame + 4 bytes, push() takes nothing, pull() waits, and the feed loop spun for
    # ever. The C kernels are exported by the extension: call the real function.
    lib = ctypes.CDLL(_codec.__file__)
    lib.hl_mp3sync_init.restype = ctypes.c_int
    lib.hl_mp3sync_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    state = ctypes.create_string_buffer(1024)  # >= sizeof(hl_mp3sync)
    buf = ctypes.create_string_buffer(16384)
    assert lib.hl_mp3sync_init(state, buf, 4095) == -1  # HL_EINVAL (< HL_MP3SYNC_MIN_CAP)
    assert lib.hl_mp3sync_init(state, None, 16384) == -1
    assert lib.hl_mp3sync_init(state, buf, 4096) == 0
