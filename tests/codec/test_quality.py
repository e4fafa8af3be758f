"""What callers hear: hotline.codec output against an independent high-quality reference.

Reference: the whole file decoded at once by PyAV/ffmpeg (for PCM sources, the PCM itself), then
resampled to 8 kHz by soxr VHQ (linear phase, so it adds no delay). hotline's output comes from
``Transcoder`` fed the stream in random ~3 KB chunks, cut the way ElevenLabs cuts it (never on
MP3 frame boundaries). Both are compared sample by sample in the linear domain after µ-law
decoding (stdlib ``audioop``): no shifting, no gain fitting. The lag that best aligns the two is
found by cross-correlation and asserted separately, so no delay can hide in the SNR.

Targets (issue #2): speech SNR ≥ 36 dB; no 20 ms window of speech below 12 dB; duration within
0.3 %; gapless MP3 (LAME tag) aligned within 2 samples; ≥ 70 dB of alias rejection above
4.4 kHz; the 300–3400 Hz band flat within 0.5 dB.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from hotline.codec import Resampler, Transcoder
from tests import audio

F64 = npt.NDArray[np.float64]

SNR_DB = 36.0
SEGMENTAL_SNR_DB = 12.0
DURATION_TOLERANCE = 0.003
MAX_LAG = 2
ALIAS_REJECTION_DB = 70.0
STOPBAND_HZ = 4400.0
FLATNESS_DB = 0.5
TELEPHONE_BAND = (300.0, 3400.0)

MP3_FORMATS = [f for f in audio.iter_all_formats() if f.startswith("mp3_")]
PCM_FORMATS = [f for f in audio.iter_all_formats() if f.startswith("pcm_")]


def transcode(output_format: str, data: bytes, *, seed: int = 0) -> bytes:
    """hotline's µ-law output for ``data`` fed in ElevenLabs-like random ~3 KB chunks."""
    t = Transcoder(output_format)
    out = bytearray()
    for chunk in audio.chunks(data, seed=seed):
        out += t.feed(chunk)
    out += t.flush()
    return bytes(out)


class Figures:
    """Every quality figure for one source, computed once (also quoted by the benchmarks)."""

    def __init__(self, output_format: str, data: bytes, out_ulaw: bytes) -> None:
        ref_linear = audio.reference_8k(output_format, data)
        ref = audio.ulaw_to_float(audio.reference_ulaw(output_format, data))
        out = audio.ulaw_to_float(out_ulaw)
        self.n_out, self.n_ref = len(out), len(ref)
        self.lag = audio.xcorr_lag(ref, out)
        self.snr = audio.snr_db(ref, out)
        self.snr_vs_linear = audio.snr_db(ref_linear, out)
        self.segmental = audio.segmental_snr(ref, out)
        self.duration_error = abs(len(out) - len(ref)) / len(ref)

    def __repr__(self) -> str:
        return (
            f"lag={self.lag} snr={self.snr:.2f} dB (vs unquantised {self.snr_vs_linear:.2f} dB) "
            f"worst 20 ms={self.segmental.min():.2f} dB over {len(self.segmental)} windows "
            f"duration {self.n_out} vs {self.n_ref} ({100 * self.duration_error:.3f} %)"
        )


def assert_speech_quality(fig: Figures) -> None:
    assert abs(fig.lag) <= MAX_LAG, fig
    assert fig.snr >= SNR_DB, fig
    # Against the unquantised reference µ-law itself caps the SNR near 38 dB; the issue's
    # 36 dB target holds there too (the careful rival reaches ~37 dB).
    assert fig.snr_vs_linear >= SNR_DB, fig
    assert len(fig.segmental) > 100, fig  # the speech detector saw the speech
    assert fig.segmental.min() >= SEGMENTAL_SNR_DB, fig
    assert fig.duration_error <= DURATION_TOLERANCE, fig


@pytest.mark.parametrize("output_format", MP3_FORMATS + PCM_FORMATS)
def test_speech_quality(output_format: str) -> None:
    data = audio.encoded(output_format)
    assert_speech_quality(Figures(output_format, data, transcode(output_format, data)))


def test_alaw_speech_quality() -> None:
    data = audio.encoded("alaw_8000")
    assert_speech_quality(Figures("alaw_8000", data, transcode("alaw_8000", data)))


@pytest.mark.parametrize("variant", list(audio.MP3_VARIANTS))
def test_other_mp3_streams(variant: str) -> None:
    """VBR, stereo (mixed down to mono), MPEG-2/2.5 rates: the stream's headers decide."""
    data = audio.mp3_variant(variant)
    assert_speech_quality(Figures("mp3_44100_128", data, transcode("mp3_44100_128", data)))


def test_ulaw_passes_through() -> None:
    data = audio.encoded("ulaw_8000")
    assert transcode("ulaw_8000", data) == data


def test_chunking_does_not_change_the_output() -> None:
    data = audio.encoded("mp3_44100_128")
    one_shot = Transcoder("mp3_44100_128")
    whole = one_shot.feed(data) + one_shot.flush()
    assert transcode("mp3_44100_128", data, seed=1) == whole
    assert transcode("mp3_44100_128", data, seed=2) == whole


@pytest.mark.parametrize("output_format", ["mp3_44100_128", "pcm_24000"])
def test_next_utterance_sounds_the_same(output_format: str) -> None:
    """After flush() (utterance end) or reset() (barge-in mid-utterance) nothing leaks over."""
    data = audio.encoded(output_format)
    chunks = audio.chunks(data)
    t = Transcoder(output_format)
    first = b"".join(t.feed(c) for c in chunks) + t.flush()
    second = b"".join(t.feed(c) for c in chunks) + t.flush()
    for c in chunks[: len(chunks) // 3]:
        t.feed(c)
    t.reset()  # barge-in with a third of an utterance in flight
    third = b"".join(t.feed(c) for c in chunks) + t.flush()
    assert first == second == third


@pytest.mark.parametrize("output_format", ["mp3_44100_128", "mp3_22050_32", "mp3_24000_48"])
def test_gapless_lame_tag(output_format: str) -> None:
    """A LAME-tagged MP3 lines up with its source PCM: encoder delay and padding trimmed."""
    rate = audio.format_rate(output_format)
    source = audio.speech(rate)
    tagged = audio.encoded(output_format, tag=True)
    ref = audio.reference_8k(f"pcm_{rate}", source)  # the PCM that went into LAME
    out = audio.ulaw_to_float(transcode(output_format, tagged))
    lag = audio.xcorr_lag(ref, out)
    assert abs(lag) <= MAX_LAG, f"tagged MP3 is {lag} samples off its source at 8 kHz"
    assert abs(len(out) - len(ref)) / len(ref) <= DURATION_TOLERANCE, (len(out), len(ref))
    # The measurement can see a delay: the same stream without its tag is late by LAME's
    # 576 + the decoder's 529 samples (unless a decoder guesses them, which none does).
    untagged = audio.ulaw_to_float(transcode(output_format, audio.encoded(output_format)))
    expected = round(1105 * 8000 / rate)
    assert abs(audio.xcorr_lag(ref, untagged) - expected) <= MAX_LAG


# --- anti-aliasing and the telephone band -----------------------------------------------------
#
# Aliasing is measured on the int16 output of Resampler(rate, 8000) itself, not after µ-law:
# µ-law's quantisation noise (≈ 38 dB below the signal, and a step of 8 LSB near zero) sits
# far above a −70 dB alias and would hide it. The Transcoder's PCM path is shown to be exactly
# that resampler followed by µ-law, so the figure is the Transcoder's. Flatness is measured
# with steady tones by least-squares amplitude fits, which average µ-law noise away, so it is
# checked on both the resampler and the full Transcoder.


def _resample_even_chunks(rate: int, pcm16: bytes) -> bytes:
    r = Resampler(rate, 8000)
    out = bytearray()
    pos = 0
    for chunk in audio.chunks(pcm16, seed=rate, mean=3000, spread=1000):
        n = len(chunk) & ~1
        out += r.process(pcm16[pos : pos + n])
        pos += n
    out += r.process(pcm16[pos:])
    out += r.flush()
    return bytes(out)


def alias_figures(
    rate: int, resample: Callable[[int, bytes], bytes] = _resample_even_chunks
) -> tuple[float, float]:
    """(worst stop-band window level re the pass-band level in dB, pass-band level in dBFS).

    ``resample(rate, pcm16) -> pcm16 at 8 kHz``: hotline's Resampler unless told otherwise
    (the benchmarks measure rivals with it too).
    """
    seconds = 4.0
    f1 = min(20000.0, 0.45 * rate)
    sweep = audio.sweep(rate, f0=100.0, f1=f1, seconds=seconds, dbfs=-6.0, kind="linear")
    y = audio.as_float(resample(rate, sweep))
    win = 160  # 20 ms
    # A window counts once the sweep has been above 4.4 kHz over the filter's whole support:
    # each output sample depends on ±delay seconds of input (hotline's filter half-length).
    guard = Resampler(rate, 8000).delay
    assert 0.0 < guard < 0.02, guard  # a real filter, and no window-hiding excuse
    stop, passband = [], []
    for i in range(0, len(y) - win + 1, win):
        t0, t1 = i / 8000 - guard, (i + win) / 8000 + guard
        if t0 < 0 or t1 > seconds:
            continue  # the sweep's own on/off transients are not aliasing
        lo = float(audio.sweep_frequency(t0, f1=f1, seconds=seconds))
        hi = float(audio.sweep_frequency(t1, f1=f1, seconds=seconds))
        level = float(np.sqrt(np.mean(y[i : i + win] ** 2)))
        if lo >= STOPBAND_HZ:
            stop.append(level)
        elif lo >= TELEPHONE_BAND[0] and hi <= TELEPHONE_BAND[1]:
            passband.append(level)
    assert len(stop) > 10 and len(passband) > 10
    ref = float(np.median(passband))
    return 20 * np.log10(max(stop) / ref), 20 * np.log10(ref)


@pytest.mark.parametrize("rate", [44100, 48000, 32000, 24000, 22050, 16000])
def test_anti_aliasing(rate: int) -> None:
    worst, passband_dbfs = alias_figures(rate)
    assert abs(passband_dbfs - (-6.0 - 3.01)) < 0.5, passband_dbfs  # the sweep passes at unity
    assert worst <= -ALIAS_REJECTION_DB, f"aliases only {-worst:.1f} dB down at {rate} Hz"


def test_transcoder_pcm_path_is_resampler_then_ulaw() -> None:
    sweep = audio.sweep(44100)
    assert transcode("pcm_44100", sweep) == audio.lin2ulaw(_resample_even_chunks(44100, sweep))


def tone_gain_db(y: F64, freq: float, skip: int = 800) -> float:
    """Amplitude (dB re full scale) of ``freq`` in ``y`` at 8 kHz, least squares, ends skipped."""
    seg = y[skip:-skip]
    t = (np.arange(len(seg)) + skip) / 8000.0
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, seg, rcond=None)
    return float(20 * np.log10(np.hypot(*coef)))


TONES = [300.0, 400.0, 600.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3200.0, 3400.0]


@pytest.mark.parametrize("path", ["resampler", "transcoder"])
@pytest.mark.parametrize("rate", [44100, 48000, 24000, 22050, 16000])
def test_telephone_band_is_flat(rate: int, path: str) -> None:
    dbfs = -10.0
    gains = {}
    for f in TONES:
        pcm = audio.tone(f, rate, seconds=0.5, dbfs=dbfs)
        if path == "resampler":
            y = audio.as_float(_resample_even_chunks(rate, pcm))
        else:
            y = audio.ulaw_to_float(transcode(f"pcm_{rate}", pcm))
        gains[f] = tone_gain_db(y, f) - dbfs
    assert abs(gains[1000.0]) <= FLATNESS_DB, gains
    worst = max(abs(g - gains[1000.0]) for g in gains.values())
    assert worst <= FLATNESS_DB, {f: round(g, 3) for f, g in gains.items()}
