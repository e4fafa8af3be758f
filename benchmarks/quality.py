"""Every quality figure tests/codec/test_quality.py asserts, printed (with rivals for contrast).

    python -m benchmarks.quality [--json]

1. speech: hotline's output for each ElevenLabs format against the reference (whole-file decode
   + soxr VHQ), µ-law decoded: SNR, SNR against the unquantised reference, worst 20 ms window,
   lag, duration error;
2. gapless: lag of a LAME-tagged MP3 (and of the same stream untagged) against its source;
3. anti-aliasing: worst 20 ms window once a sweep is above 4.4 kHz, re the pass band, for
   hotline's Resampler and for soxr HQ/VHQ streams and audioop.ratecv;
4. telephone band: per-tone gain 300–3400 Hz, resampler and full Transcoder.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

import numpy as np

from benchmarks.common import versions
from tests import audio
from tests.codec import test_quality as tq

ALIAS_RATES = (44100, 48000, 32000, 24000, 22050, 16000)
FLAT_RATES = (44100, 48000, 24000, 22050, 16000)


def _soxr(quality: str) -> Any:
    def resample(rate: int, pcm16: bytes) -> bytes:
        import soxr

        s = soxr.ResampleStream(rate, 8000, 1, dtype="int16", quality=quality)
        out = bytearray()
        pos = 0
        for chunk in audio.chunks(pcm16, seed=rate):  # same cuts as hotline's measurement
            n = len(chunk) & ~1
            out += s.resample_chunk(np.frombuffer(pcm16[pos : pos + n], "<i2")).tobytes()
            pos += n
        out += s.resample_chunk(np.frombuffer(pcm16[pos:], "<i2")).tobytes()
        out += s.resample_chunk(np.zeros(0, np.int16), last=True).tobytes()
        return bytes(out)

    return resample


def _ratecv(rate: int, pcm16: bytes) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    state = None
    out = bytearray()
    for i in range(0, len(pcm16), 3000):
        frag, state = audioop.ratecv(pcm16[i : i + 3000], 2, 1, rate, 8000, state)
        out += frag
    return bytes(out)


def collect() -> dict[str, Any]:
    report: dict[str, Any] = {"versions": versions()}
    speech = {}
    sources = [(fmt, fmt, audio.encoded(fmt)) for fmt in audio.iter_all_formats()]
    sources = [s for s in sources if s[0] != "ulaw_8000"]  # passes through byte for byte
    sources += [(f"mp3 {v}", "mp3_44100_128", audio.mp3_variant(v)) for v in audio.MP3_VARIANTS]
    for name, fmt, data in sources:
        fig = tq.Figures(fmt, data, tq.transcode(fmt, data))
        speech[name] = {
            "snr_db": fig.snr,
            "snr_vs_unquantised_db": fig.snr_vs_linear,
            "worst_20ms_snr_db": float(fig.segmental.min()),
            "speech_windows": len(fig.segmental),
            "lag": fig.lag,
            "duration_error_pct": 100 * fig.duration_error,
        }
    report["speech"] = speech

    gapless = {}
    for fmt in ("mp3_44100_128", "mp3_22050_32", "mp3_24000_48"):
        rate = audio.format_rate(fmt)
        ref = audio.reference_8k(f"pcm_{rate}", audio.speech(rate))
        tagged = audio.ulaw_to_float(tq.transcode(fmt, audio.encoded(fmt, tag=True)))
        plain = audio.ulaw_to_float(tq.transcode(fmt, audio.encoded(fmt)))
        gapless[fmt] = {
            "tagged_lag": audio.xcorr_lag(ref, tagged),
            "untagged_lag": audio.xcorr_lag(ref, plain),
            "tagged_duration_error_pct": 100 * abs(len(tagged) - len(ref)) / len(ref),
        }
    report["gapless"] = gapless

    resamplers = {
        "hotline": tq._resample_even_chunks,
        "soxr_hq": _soxr("HQ"),
        "soxr_vhq": _soxr("VHQ"),
        "audioop_ratecv": _ratecv,
    }
    alias: dict[str, dict[int, float]] = {}
    for name, fn in resamplers.items():
        alias[name] = {rate: tq.alias_figures(rate, fn)[0] for rate in ALIAS_RATES}
    report["alias_rejection_db"] = {k: {r: -v for r, v in d.items()} for k, d in alias.items()}

    flat: dict[str, dict[int, dict[float, float]]] = {"resampler": {}, "transcoder": {}}
    for rate in FLAT_RATES:
        for path in flat:
            gains = {}
            for f in tq.TONES:
                pcm = audio.tone(f, rate, seconds=0.5, dbfs=-10.0)
                if path == "resampler":
                    y = audio.as_float(tq._resample_even_chunks(rate, pcm))
                else:
                    y = audio.ulaw_to_float(tq.transcode(f"pcm_{rate}", pcm))
                gains[f] = tq.tone_gain_db(y, f) + 10.0
            flat[path][rate] = gains
    report["band_gain_db"] = flat
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = collect()
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
        return 0
    print("[speech: hotline Transcoder, ~3 KB random chunks, vs whole-file decode + soxr VHQ]")
    print(
        f"  {'format':<22}{'SNR dB':>9}{'vs lin dB':>11}{'worst 20ms':>12}{'windows':>9}"
        f"{'lag':>5}{'dur err %':>11}"
    )
    for fmt, s in report["speech"].items():
        print(
            f"  {fmt:<22}{s['snr_db']:9.2f}{s['snr_vs_unquantised_db']:11.2f}"
            f"{s['worst_20ms_snr_db']:12.2f}{s['speech_windows']:9d}{s['lag']:5d}"
            f"{s['duration_error_pct']:11.3f}"
        )
    print("\n[gapless: lag at 8 kHz against the PCM that went into LAME]")
    for fmt, g in report["gapless"].items():
        print(
            f"  {fmt:<15} tagged {g['tagged_lag']:+d} samples "
            f"(duration error {g['tagged_duration_error_pct']:.3f} %), "
            f"untagged {g['untagged_lag']:+d} samples"
        )
    print("\n[alias rejection dB: worst 20 ms once the sweep is above 4.4 kHz, re pass band]")
    print(f"  {'resampler':<16}" + "".join(f"{r:>9}" for r in ALIAS_RATES))
    for name, d in report["alias_rejection_db"].items():
        print(f"  {name:<16}" + "".join(f"{d[r]:9.1f}" for r in ALIAS_RATES))
    print("\n[telephone band: gain dB of tones, re input]")
    for path, by_rate in report["band_gain_db"].items():
        print(f"  {path + ' Hz':<16}" + "".join(f"{f:>7.0f}" for f in tq.TONES) + "   spread")
        for rate, gains in by_rate.items():
            g = list(gains.values())
            print(f"  {rate:<16}" + "".join(f"{v:7.2f}" for v in g) + f"   {max(g) - min(g):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
