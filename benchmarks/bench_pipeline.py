"""ElevenLabs stream -> Twilio µ-law: hotline against the rivals, on the same chunked stream.

The stream: ~10.8 s of eSpeak NG speech as MP3 44.1 kHz / 128 kb/s (LAME CBR, what ElevenLabs
sends by default), cut into random ~3 KB chunks that ignore MP3 frame boundaries. Also the PCM
path (pcm_16000 / 24000 / 44100) against PyAV-free soxr streaming.

    python -m benchmarks.bench_pipeline [--json] [--rounds N] [--quick]

prints CPU throughput (audio seconds per CPU second, µs per chunk) with hotline's ratio against
each rival, then the quality of each pipeline's output against the reference used by
tests/codec/test_quality.py (whole-file decode + soxr VHQ). Under pytest
(``pytest benchmarks --benchmark-only``) the same pipelines run as pytest-benchmark benchmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest

from benchmarks import rivals
from benchmarks.common import (
    Row,
    best_cpu_seconds_interleaved,
    cpu_time,
    format_rows,
    ratios,
    versions,
)
from tests import audio

MP3_FORMAT = "mp3_44100_128"
PCM_FORMATS = ("pcm_16000", "pcm_24000", "pcm_44100")
PROTOTYPE_CHUNKS_IN_PYTEST = 4  # ≈150 ms each: a few are enough for a per-chunk figure

PIPELINES: dict[str, tuple[str, Callable[[str], rivals.Pipeline]]] = {
    "hotline": ("hotline Transcoder", rivals.Hotline),
    "mpg123": ("libmpg123 decode only (floor)", rivals.Mpg123Only),
    "pyav_soxr": ("PyAV + soxr HQ float32 + audioop", rivals.PyAvSoxr),
    "pyav_soxr_s16": ("PyAV + soxr HQ int16 + audioop", rivals.PyAvSoxrS16),
    "pyav_swr": ("PyAV + swresample + audioop", rivals.PyAvSwr),
    "prototype": ("prototype: pydub per chunk", rivals.Prototype),
}
PCM_PIPELINES = ("hotline", "pyav_soxr", "pyav_soxr_s16")  # PCM: no PyAV, soxr only


@cache
def stream(output_format: str, seed: int = 0) -> tuple[list[bytes], float]:
    """(chunks, audio seconds) of the test speech in ``output_format``."""
    data = audio.encoded(output_format)
    return audio.chunks(data, seed=seed), audio_seconds(output_format, data)


def audio_seconds(output_format: str, data: bytes) -> float:
    codec, rate = output_format.split("_")[0], audio.format_rate(output_format)
    if codec == "mp3":
        return len(data) * 8 / (int(output_format.split("_")[2]) * 1000)
    return len(data) / (2 if codec == "pcm" else 1) / rate


def run_fresh(key: str, output_format: str, chunks: list[bytes]) -> bytes:
    """One utterance through a new pipeline (construction is part of the cost)."""
    return rivals.run(PIPELINES[key][1](output_format), chunks)


# --- pytest-benchmark -------------------------------------------------------------------------


def _info(benchmark: Any, key: str, group: str, seconds: float, chunks: int) -> None:
    benchmark.group = group
    benchmark.extra_info.update(
        key=key, label=PIPELINES[key][0], audio_seconds=seconds, chunks=chunks
    )


@pytest.mark.parametrize("key", ["hotline", "mpg123", "pyav_soxr", "pyav_soxr_s16", "pyav_swr"])
def test_mp3_pipeline(benchmark: Any, key: str) -> None:
    chunks, seconds = stream(MP3_FORMAT)
    _info(benchmark, key, f"{MP3_FORMAT} pipeline", seconds, len(chunks))
    out = benchmark(run_fresh, key, MP3_FORMAT, chunks)
    assert len(out) > 0.9 * seconds * (8000 if key != "mpg123" else 2 * 44100)


def test_mp3_prototype(benchmark: Any) -> None:
    chunks, _ = stream(MP3_FORMAT)
    few = chunks[:PROTOTYPE_CHUNKS_IN_PYTEST]
    seconds = audio_seconds(MP3_FORMAT, b"".join(few))
    _info(benchmark, "prototype", f"{MP3_FORMAT} pipeline", seconds, len(few))
    out = benchmark.pedantic(run_fresh, args=("prototype", MP3_FORMAT, few), rounds=1, iterations=1)
    assert len(out) > 0.5 * seconds * 8000


@pytest.mark.parametrize("key", PCM_PIPELINES)
@pytest.mark.parametrize("output_format", PCM_FORMATS)
def test_pcm_pipeline(benchmark: Any, output_format: str, key: str) -> None:
    chunks, seconds = stream(output_format)
    _info(benchmark, key, f"{output_format} pipeline", seconds, len(chunks))
    out = benchmark(run_fresh, key, output_format, chunks)
    assert abs(len(out) - seconds * 8000) < 100


# --- standalone -------------------------------------------------------------------------------


def quality(output_format: str, data: bytes, out: bytes) -> dict[str, float]:
    """The figures tests/codec/test_quality.py asserts, for any pipeline's µ-law output."""
    ref_linear = audio.reference_8k(output_format, data)
    ref = audio.ulaw_to_float(audio.reference_ulaw(output_format, data))
    y = audio.ulaw_to_float(out)
    seg = audio.segmental_snr(ref, y)
    return {
        "snr_db": audio.snr_db(ref, y),
        "snr_vs_unquantised_db": audio.snr_db(ref_linear, y),
        "worst_20ms_snr_db": float(seg.min()),
        "median_20ms_snr_db": float(np.median(seg)),
        "speech_windows_below_12db_pct": float(100 * np.mean(seg < 12.0)),
        "lag_samples": float(audio.xcorr_lag(ref, y)),
        "duration_error_pct": 100 * (len(y) - len(ref)) / len(ref),
    }


def gapless_lag(key: str) -> float:
    """Lag at 8 kHz of a pipeline's output for a LAME-tagged MP3 against its source PCM."""
    tagged = audio.encoded(MP3_FORMAT, tag=True)
    ref = audio.reference_8k("pcm_44100", audio.speech(44100))
    y = audio.ulaw_to_float(run_fresh(key, MP3_FORMAT, audio.chunks(tagged)))
    return float(audio.xcorr_lag(ref, y, max_lag=4000))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--rounds", type=int, default=20, help="rounds per pipeline (best kept)")
    parser.add_argument(
        "--quick", action="store_true", help="prototype on a few chunks only, no quality"
    )
    args = parser.parse_args(argv)

    rows: list[Row] = []
    chunks, seconds = stream(MP3_FORMAT)
    group = f"{MP3_FORMAT} pipeline"
    outputs: dict[str, bytes] = {}
    keys = ("hotline", "mpg123", "pyav_soxr", "pyav_soxr_s16", "pyav_swr")
    for key in keys:
        outputs[key] = run_fresh(key, MP3_FORMAT, chunks)  # warm-up + output for quality
    times = best_cpu_seconds_interleaved(
        {k: (lambda k=k: run_fresh(k, MP3_FORMAT, chunks)) for k in keys},  # type: ignore[misc]
        args.rounds,
    )
    for key in keys:
        rows.append(Row(group, key, PIPELINES[key][0], times[key], seconds, len(chunks)))
    proto_chunks = chunks[:PROTOTYPE_CHUNKS_IN_PYTEST] if args.quick else chunks
    t0, w0 = cpu_time(), time.perf_counter()
    outputs["prototype"] = run_fresh("prototype", MP3_FORMAT, proto_chunks)
    t, proto_wall = cpu_time() - t0, time.perf_counter() - w0
    proto_seconds = audio_seconds(MP3_FORMAT, b"".join(proto_chunks))
    proto_row = Row(
        group, "prototype", PIPELINES["prototype"][0], t, proto_seconds, len(proto_chunks)
    )
    rows.append(proto_row)
    for fmt in PCM_FORMATS:
        pchunks, pseconds = stream(fmt)
        times = best_cpu_seconds_interleaved(
            {k: (lambda k=k, f=fmt, c=pchunks: run_fresh(k, f, c)) for k in PCM_PIPELINES},  # type: ignore[misc]
            args.rounds,
        )
        for key in PCM_PIPELINES:
            rows.append(
                Row(f"{fmt} pipeline", key, PIPELINES[key][0], times[key], pseconds, len(pchunks))
            )

    report: dict[str, Any] = {
        "versions": versions(),
        "stream": {
            "format": MP3_FORMAT,
            "audio_seconds": seconds,
            "chunks": len(chunks),
            "mean_chunk_bytes": sum(map(len, chunks)) / len(chunks),
        },
        "rows": [r.as_dict() for r in rows],
        "ratios": ratios(rows),
    }
    if not args.quick:
        data = audio.encoded(MP3_FORMAT)
        q: dict[str, dict[str, float]] = {}
        other_chunks, _ = stream(MP3_FORMAT, seed=1)
        for key in ("hotline", "pyav_soxr", "pyav_soxr_s16", "pyav_swr", "prototype"):
            q[key] = quality(MP3_FORMAT, data, outputs[key])
            if key == "prototype":
                # Re-cutting only the first ~30 KB keeps this cheap (one ffmpeg pair per chunk).
                head = data[:30000]
                a = run_fresh(key, MP3_FORMAT, audio.chunks(head, seed=0))
                b = run_fresh(key, MP3_FORMAT, audio.chunks(head, seed=1))
                q[key]["chunking_invariant"] = float(a == b)
                q[key]["lost_at_seams_pct"] = 100 * (
                    1 - len(outputs[key]) / len(audio.reference_ulaw(MP3_FORMAT, data))
                )
                q[key]["ms_per_chunk"] = 1000 * proto_row.seconds / len(proto_chunks)
                q[key]["wall_ms_per_chunk"] = 1000 * proto_wall / len(proto_chunks)
            else:
                again = run_fresh(key, MP3_FORMAT, other_chunks)
                q[key]["chunking_invariant"] = float(again == outputs[key])
                q[key]["gapless_lag_samples_8k"] = gapless_lag(key)
        report["quality"] = q

    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    for name, version in report["versions"].items():
        print(f"{name}: {version}")
    s = report["stream"]
    print(
        f"\nstream: {s['format']}, {s['audio_seconds']:.2f} s of speech, {s['chunks']} chunks "
        f"of ~{s['mean_chunk_bytes']:.0f} B; CPU time (process + children), best of "
        f"{args.rounds}; prototype: one pass over {len(proto_chunks)} chunks"
    )
    for line in format_rows(rows):
        print(line)
    if "quality" in report:
        print("\n[quality vs reference: whole-file decode + soxr VHQ, µ-law decoded]")
        cols = [
            ("snr_db", "SNR dB"),
            ("snr_vs_unquantised_db", "vs lin dB"),
            ("worst_20ms_snr_db", "worst 20ms"),
            ("median_20ms_snr_db", "median 20ms"),
            ("speech_windows_below_12db_pct", "<12dB %"),
            ("lag_samples", "lag"),
            ("duration_error_pct", "dur err %"),
            ("chunking_invariant", "invariant"),
            ("gapless_lag_samples_8k", "tagged lag"),
        ]
        print(f"  {'pipeline':<34}" + "".join(f"{title:>12}" for _, title in cols))
        for key, fig in report["quality"].items():
            cells = []
            for col, _ in cols:
                v = fig.get(col)
                if v is None:
                    cells.append(f"{'-':>12}")
                elif col == "chunking_invariant":
                    cells.append(f"{'yes' if v else 'NO':>12}")
                else:
                    cells.append(f"{v:12.2f}")
            print(f"  {PIPELINES[key][0]:<34}" + "".join(cells))
        p = report["quality"]["prototype"]
        print(
            f"  prototype: {p['lost_at_seams_pct']:.2f} % of the audio lost at chunk seams, "
            f"{p['ms_per_chunk']:.0f} ms CPU (process + ffmpeg children) and "
            f"{p['wall_ms_per_chunk']:.0f} ms wall-clock per chunk"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
