"""The streaming resampler: against the direct double-precision reference (within 1 LSB), chunk
invariance, lengths, flush/reset semantics and time alignment."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.codec import Resampler, reference
from hotline.errors import CodecError

PAIRS = [
    (44100, 8000),
    (48000, 8000),
    (32000, 8000),
    (24000, 8000),
    (22050, 8000),
    (16000, 8000),
    (11025, 8000),
    (8000, 8000),
    (22050, 44100),
    (22050, 24000),
    (8000, 16000),
]


def noise(n: int, seed: int = 0, scale: float = 6000.0) -> bytes:
    x = np.random.default_rng(seed).standard_normal(n) * scale
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


def run(rs: Resampler, data: bytes, chunk_samples: int | list[int]) -> bytes:
    sizes = [chunk_samples] if isinstance(chunk_samples, int) else chunk_samples
    out = []
    i = k = 0
    while i < len(data):
        n = 2 * sizes[k % len(sizes)]
        out.append(rs.process(data[i : i + n]))
        i += n
        k += 1
    out.append(rs.flush())
    return b"".join(out)


def as_i16(b: bytes) -> np.ndarray:
    return np.frombuffer(b, "<i2").astype(np.int64)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_matches_reference_within_one_lsb(in_rate: int, out_rate: int) -> None:
    data = noise(in_rate // 10, seed=in_rate)
    rs = Resampler(in_rate, out_rate)
    ours = as_i16(rs.process(data) + rs.flush())
    ref = as_i16(reference.resample(data, in_rate, out_rate))
    assert len(ours) == len(ref)
    assert np.max(np.abs(ours - ref)) <= 1


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_chunk_invariance(in_rate: int, out_rate: int) -> None:
    data = noise(in_rate // 2 + 13, seed=1)
    one = run(Resampler(in_rate, out_rate), data, 10**9)
    for size in (1, 17, 509, 4096):
        assert run(Resampler(in_rate, out_rate), data, size) == one, size
    assert run(Resampler(in_rate, out_rate), data, [1, 3, 4097, 2, 8191]) == one


@settings(max_examples=25, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    sizes=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=12),
)
def test_chunk_invariance_random(pair: tuple[int, int], sizes: list[int]) -> None:
    data = noise(6000, seed=2)
    one = run(Resampler(*pair), data, 10**9)
    # zero-length pieces are allowed too: they must change nothing
    rs = Resampler(*pair)
    out = []
    i = k = 0
    while i < len(data):
        n = 2 * sizes[k % len(sizes)]
        out.append(rs.process(data[i : i + n]))
        i += n if n else 0
        k += 1
        if k > 10_000:  # all sizes zero
            out.append(rs.process(data[i:]))
            break
    out.append(rs.flush())
    assert b"".join(out) == one


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
@pytest.mark.parametrize("n", [0, 1, 17, 509, 4096])
def test_output_length(in_rate: int, out_rate: int, n: int) -> None:
    out = run(Resampler(in_rate, out_rate), noise(n), 10**9)
    assert len(out) % 2 == 0
    # one stage: ceil(n * out / in); two stages round up twice: round(n * out / in) +- 1
    assert abs(len(out) // 2 - round(n * out_rate / in_rate)) <= 1
    if n == 0:
        assert out == b""


def test_single_stage_length_is_exact_ceiling() -> None:
    for n in (1, 2, 3, 100, 101, 999):
        out = run(Resampler(16000, 8000), noise(n), 10**9)
        assert len(out) // 2 == math.ceil(n * 8000 / 16000)


def test_empty_input_and_flush_twice() -> None:
    rs = Resampler(44100, 8000)
    assert rs.process(b"") == b""
    assert rs.flush() == b""
    assert rs.flush() == b""
    rs.process(noise(1000))
    assert rs.flush() != b""
    assert rs.flush() == b""


def test_process_after_flush_starts_a_new_stream() -> None:
    data = noise(3000)
    rs = Resampler(22050, 8000)
    first = rs.process(data) + rs.flush()
    assert rs.process(data) + rs.flush() == first


def test_reset_drops_history() -> None:
    data = noise(3000)
    fresh = run(Resampler(48000, 8000), data, 10**9)
    rs = Resampler(48000, 8000)
    rs.process(noise(777, seed=9))
    rs.reset()
    assert run(rs, data, 10**9) == fresh


@pytest.mark.parametrize(("in_rate", "out_rate"), [(44100, 8000), (22050, 8000), (22050, 44100)])
def test_output_is_time_aligned(in_rate: int, out_rate: int) -> None:
    # an impulse at input time 0.1 s comes out centred at output time 0.1 s
    x = np.zeros(in_rate // 5, "<i2")
    x[in_rate // 10] = 30000
    y = as_i16(run(Resampler(in_rate, out_rate), x.tobytes(), 10**9))
    assert int(np.argmax(y)) == out_rate // 10


def test_delay_property() -> None:
    assert Resampler(8000, 8000).delay == 0.0
    d = Resampler(44100, 8000).delay
    assert 0.0 < d < 0.05  # look-ahead in seconds; a few ms


def test_passband_and_stopband_smoke() -> None:
    rate = 44100
    t = np.arange(rate // 2) / rate

    def level(freq: float) -> float:
        x = np.rint(16000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
        y = as_i16(run(Resampler(rate, 8000), x, 10**9))[200:-200].astype(np.float64)
        return 20 * math.log10(max(np.sqrt(np.mean(y**2)), 1e-9) / (16000 / math.sqrt(2)))

    for f in (300.0, 1000.0, 3400.0):
        assert abs(level(f)) < 0.05
    for f in (4400.0, 6000.0, 12000.0):
        assert level(f) < -70.0


def test_odd_byte_count_is_an_error() -> None:
    with pytest.raises(CodecError):
        Resampler(16000, 8000).process(b"\x00\x01\x02")


@pytest.mark.parametrize(("in_rate", "out_rate"), [(0, 8000), (8000, 999), (500_000, 8000)])
def test_unsupported_rates(in_rate: int, out_rate: int) -> None:
    with pytest.raises(CodecError):
        Resampler(in_rate, out_rate)


def test_saturates_instead_of_wrapping() -> None:
    # a full-scale square wave overshoots after filtering (Gibbs); it must clip, not wrap
    x = np.tile(np.array([32767] * 20 + [-32768] * 20, "<i2"), 200)
    y = as_i16(run(Resampler(16000, 8000), x.tobytes(), 10**9))
    assert y.max() == 32767 and y.min() == -32768


def test_an_absurd_ratio_is_refused_before_any_design() -> None:
    # issue 9: Resampler(383998, 1000) designed a 20.6 M-float table (3.6 s, +79 MiB), cached
    # for the life of the process. Now the size is checked from the plan alone.
    from hotline.codec import _codec

    before = _codec._table_cache_info()[:2]
    with pytest.raises(CodecError, match=r"383998 -> 1000 Hz: its filter would need more than"):
        Resampler(383998, 1000)
    with pytest.raises(CodecError, match=r"ratio is too fine"):
        Resampler(44101, 8000)  # 8000 phases
    with pytest.raises(CodecError, match=r"rates must be 1000\.\.384000 Hz"):
        Resampler(384001, 8000)
    assert _codec._table_cache_info()[:2] == before  # nothing designed, nothing cached
    # the largest table a common rate pair needs is far below the cap
    rs = Resampler(11025, 32000)
    assert len(rs.process(noise(1000))) > 0


def test_table_cache_is_bounded_and_evicted_tables_stay_usable() -> None:
    from hotline.codec import _codec

    _, _, max_tables, max_floats = _codec._table_cache_info()
    first = Resampler(9000, 8000)
    ref = first.process(noise(4000, seed=5)) + first.flush()
    # more distinct pairs than the cache holds (small filters: quick to design)
    for k in range(max_tables + 8):
        Resampler(8000 + 250 * (k + 1), 8000)
        tables, floats, _, _ = _codec._table_cache_info()
        assert tables <= max_tables and floats <= max_floats
    # (9000, 8000) was evicted long ago: the live object kept its table, a new one redesigns
    assert first.process(noise(4000, seed=5)) + first.flush() == ref
    again = Resampler(9000, 8000)
    assert again.process(noise(4000, seed=5)) + again.flush() == ref
    # five tables near the cap (0.88-0.98 M floats each, 4.6 M together) stay within the
    # float bound too
    for in_rate in (383962, 383947, 383849, 383754, 383715):
        Resampler(in_rate, 1000)
        assert _codec._table_cache_info()[1] <= max_floats
