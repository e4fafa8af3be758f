"""The codec's kernels against their peers: µ-law encoding, resampling, MP3 decoding.

    python -m benchmarks.bench_kernels [--json] [--rounds N]

- ``ulaw_encode``: hotline (C) vs ``audioop.lin2ulaw`` vs the pure-Python reference (if
  ``hotline.codec.reference`` has one), ns per sample, on 10.8 s of 8 kHz speech.
- ``resample A->B``: ``hotline.codec.Resampler`` vs ``soxr.ResampleStream`` (int16, HQ and
  VHQ), fed the test speech in 4096-sample blocks; ns per input sample.
- ``mp3 decode``: ``hotline.codec.Mp3Decoder`` (libmpg123) vs PyAV's streaming parse + decode
  with each of ffmpeg's MP3 decoders, on the ~3 KB chunks of the pipeline benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest

from benchmarks.common import (
    Row,
    best_cpu_seconds,
    best_cpu_seconds_interleaved,
    format_rows,
    ratios,
    versions,
)
from tests import audio

BLOCK = 4096  # samples per Resampler.process call
RESAMPLE_PAIRS = ((44100, 8000), (24000, 8000), (16000, 8000), (22050, 44100))
SOXR_QUALITIES = ("HQ", "VHQ")


@cache
def speech_blocks(rate: int) -> list[bytes]:
    pcm = audio.speech(rate)
    return [pcm[i : i + 2 * BLOCK] for i in range(0, len(pcm), 2 * BLOCK)]


def _ulaw_reference() -> Callable[[bytes], bytes] | None:
    try:
        from hotline.codec import reference
    except ImportError:
        return None
    fn = getattr(reference, "ulaw_encode", None)
    return fn if callable(fn) else None


def ulaw_cases() -> dict[str, tuple[str, Callable[[bytes], bytes]]]:
    from hotline.codec import ulaw_encode

    cases: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
        "hotline": ("hotline ulaw_encode (C)", ulaw_encode),
        "audioop": ("audioop.lin2ulaw", audio.lin2ulaw),
    }
    ref = _ulaw_reference()
    if ref is not None:
        cases["reference"] = ("pure-Python reference", ref)
    return cases


def resample_cases(in_rate: int, out_rate: int) -> dict[str, tuple[str, Callable[[], bytes]]]:
    """Each case resamples the whole speech at ``in_rate`` in BLOCK-sample pieces."""
    import soxr

    from hotline.codec import Resampler

    blocks = speech_blocks(in_rate)

    def ours() -> bytes:
        r = Resampler(in_rate, out_rate)
        out = [r.process(b) for b in blocks]
        out.append(r.flush())
        return b"".join(out)

    def theirs(quality: str) -> Callable[[], bytes]:
        arrays = [np.frombuffer(b, "<i2") for b in blocks]

        def run() -> bytes:
            s = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
            out = [s.resample_chunk(a).tobytes() for a in arrays]
            out.append(s.resample_chunk(np.zeros(0, np.int16), last=True).tobytes())
            return b"".join(out)

        return run

    cases: dict[str, tuple[str, Callable[[], bytes]]] = {"hotline": ("hotline Resampler", ours)}
    for q in SOXR_QUALITIES:
        cases[f"soxr_{q.lower()}"] = (f"soxr ResampleStream int16 {q}", theirs(q))
    return cases


def decode_cases() -> dict[str, tuple[str, Callable[[], object]]]:
    import av

    from hotline.codec import Mp3Decoder

    chunks = audio.chunks(audio.encoded("mp3_44100_128"))

    def ours() -> object:
        d = Mp3Decoder()
        out = [d.feed(c) for c in chunks]
        out.append(d.flush())
        return out

    def pyav(decoder: str) -> Callable[[], object]:
        def run() -> object:
            ctx: Any = av.CodecContext.create(decoder, "r")
            frames = []
            for c in chunks:
                for p in ctx.parse(c):
                    frames.extend(ctx.decode(p))
            frames.extend(ctx.decode(None))
            return frames

        return run

    return {
        "hotline": ("hotline Mp3Decoder (libmpg123)", ours),
        "pyav_float": ("PyAV parse + decode (mp3float)", pyav("mp3float")),
        "pyav": ("PyAV parse + decode (mp3, fixed)", pyav("mp3")),
    }


# --- pytest-benchmark -------------------------------------------------------------------------


def _info(benchmark: Any, group: str, key: str, label: str, seconds: float, samples: int) -> None:
    benchmark.group = group
    benchmark.extra_info.update(
        key=key, label=label, audio_seconds=seconds, samples=samples, chunks=0
    )


@pytest.mark.parametrize("key", ["hotline", "audioop", "reference"])
def test_ulaw_encode(benchmark: Any, key: str) -> None:
    cases = ulaw_cases()
    if key not in cases:
        pytest.skip("hotline.codec.reference has no ulaw_encode")
    label, fn = cases[key]
    pcm = audio.speech(8000)
    if key == "reference":
        pcm = pcm[:16000]  # 1 s: pure Python is slow
    _info(benchmark, "ulaw_encode", key, label, len(pcm) / 2 / 8000, len(pcm) // 2)
    out = benchmark(fn, pcm)
    assert out == audio.lin2ulaw(pcm)


@pytest.mark.parametrize("key", ["hotline", *(f"soxr_{q.lower()}" for q in SOXR_QUALITIES)])
@pytest.mark.parametrize("pair", RESAMPLE_PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_resample(benchmark: Any, pair: tuple[int, int], key: str) -> None:
    in_rate, out_rate = pair
    label, fn = resample_cases(in_rate, out_rate)[key]
    n = len(audio.speech(in_rate)) // 2
    _info(benchmark, f"resample {in_rate}->{out_rate}", key, label, n / in_rate, n)
    out = benchmark(fn)
    assert abs(len(out) // 2 - n * out_rate / in_rate) < 64


@pytest.mark.parametrize("key", ["hotline", "pyav_float", "pyav"])
def test_mp3_decode(benchmark: Any, key: str) -> None:
    label, fn = decode_cases()[key]
    data = audio.encoded("mp3_44100_128")
    _info(benchmark, "mp3 decode", key, label, len(data) * 8 / 128000, 0)
    benchmark(fn)


# --- standalone -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    rows: list[Row] = []

    pcm8 = audio.speech(8000)
    n8 = len(pcm8) // 2
    for key, (label, fn) in ulaw_cases().items():
        data = pcm8[:16000] if key == "reference" else pcm8
        fn(data)
        t = best_cpu_seconds(lambda f=fn, d=data: f(d), 3 if key == "reference" else args.rounds)  # type: ignore[misc]
        n = len(data) // 2
        rows.append(Row("ulaw_encode", key, label, t, n / 8000, samples=n))
    assert n8 > 0
    for in_rate, out_rate in RESAMPLE_PAIRS:
        n = len(audio.speech(in_rate)) // 2
        cases = resample_cases(in_rate, out_rate)
        for _label, resample in cases.values():
            resample()
        times = best_cpu_seconds_interleaved({k: c[1] for k, c in cases.items()}, args.rounds)
        for key, (label, _) in cases.items():
            rows.append(
                Row(
                    f"resample {in_rate}->{out_rate}",
                    key,
                    label,
                    times[key],
                    n / in_rate,
                    samples=n,
                )
            )
    data = audio.encoded("mp3_44100_128")
    dcases = decode_cases()
    for _label, decode in dcases.values():
        decode()
    times = best_cpu_seconds_interleaved({k: c[1] for k, c in dcases.items()}, args.rounds)
    for key, (label, _) in dcases.items():
        rows.append(Row("mp3 decode", key, label, times[key], len(data) * 8 / 128000))

    if args.json:
        report = {
            "versions": versions(),
            "rows": [r.as_dict() for r in rows],
            "ratios": ratios(rows),
        }
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    for name, version in versions().items():
        print(f"{name}: {version}")
    print(f"\nCPU time (process_time), best of {args.rounds}; resampler blocks of {BLOCK} samples")
    for line in format_rows(rows):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
