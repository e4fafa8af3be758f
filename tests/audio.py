"""Deterministic test audio, generated (never downloaded) and cached on disk.

Plain functions, imported by the tests, the benchmarks and ``scripts/make_test_audio.py``:

- ``speech(rate)``: ~10 s of eSpeak NG speech (int16 mono), resampled with soxr VHQ when
  ``rate`` is not eSpeak's own 22050 Hz.
- ``encoded(output_format, tag=False)``: that speech as ElevenLabs would send it. MP3 is LAME CBR
  mono at the format's own rate (the PCM is made at that rate first, so no hotline code sits
  between the source and the file except the lameenc wrapper); ``tag=True`` adds the
  Info/LAME tag (encoder delay and padding) a LAME file carries.
- ``sweep()``, ``sweep_frequency()``, ``tone()``: synthetic signals (numpy).
- ``chunks(data)``: cut like an ElevenLabs stream: random ~3 KB pieces, never frame aligned.

Everything is cached under ``tests/data/generated/`` (gitignored), keyed by a hash of the
parameters that define the content; a changed parameter makes a new file.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

GENERATED: Final = Path(__file__).parent / "data" / "generated"
GENERATOR_VERSION: Final = 1

ESPEAK_RATE: Final = 22050
SPEECH_VOICE: Final = "en-us"
SPEECH_WPM: Final = 165
SPEECH_TEXT: Final = (
    "Thank you for calling. Your appointment is confirmed for Tuesday at three thirty. "
    "To change it, say reschedule, or press two at any time. "
    "Is there anything else I can help you with?"
)


def _cached(name: str, params: object, ext: str, make: Callable[[], bytes]) -> bytes:
    key = hashlib.sha256(repr((GENERATOR_VERSION, name, params)).encode()).hexdigest()[:16]
    path = GENERATED / f"{name}-{key}.{ext}"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data = make()
    GENERATED.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=GENERATED, prefix=f".{name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: concurrent generators agree on one file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return data


def to_int16(x: npt.NDArray[np.floating]) -> bytes:
    """Float samples (full scale 1.0) -> int16 little-endian bytes, rounded and clipped."""
    return (
        np.clip(np.rint(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype("<i2").tobytes()
    )


def as_float(pcm16: bytes) -> npt.NDArray[np.float64]:
    """int16 little-endian bytes -> float64 samples (full scale 1.0)."""
    return np.frombuffer(pcm16, "<i2").astype(np.float64) / 32768.0


def speech(rate: int = ESPEAK_RATE) -> bytes:
    """~10 s of eSpeak NG speech, int16 mono little-endian at ``rate``."""

    def make_native() -> bytes:
        from hotline.tts_standin.espeak import synthesize

        pcm = synthesize(SPEECH_TEXT, voice=SPEECH_VOICE, rate_wpm=SPEECH_WPM)
        assert pcm.sample_rate == ESPEAK_RATE, pcm.sample_rate
        return pcm.samples

    native = _cached("speech", (SPEECH_TEXT, SPEECH_VOICE, SPEECH_WPM), "s16", make_native)
    if rate == ESPEAK_RATE:
        return native

    def make_resampled() -> bytes:
        import soxr

        return to_int16(soxr.resample(as_float(native), ESPEAK_RATE, rate, quality="VHQ"))

    params = (hashlib.sha256(native).hexdigest(), rate)
    return _cached(f"speech{rate}", params, "s16", make_resampled)


def format_rate(output_format: str) -> int:
    """The sample rate named by an ElevenLabs ``output_format``."""
    return int(output_format.split("_")[1])


def encoded(output_format: str, *, tag: bool = False) -> bytes:
    """The test speech in ``output_format``, as ElevenLabs would stream it."""
    codec = output_format.split("_")[0]
    rate = format_rate(output_format)
    pcm16 = speech(rate)
    if codec == "pcm":
        return pcm16

    from hotline.tts_standin.encode import MP3_QUALITY, encode
    from hotline.tts_standin.espeak import Pcm

    def make() -> bytes:
        return encode(Pcm(pcm16, rate), output_format, lame_tag=tag)

    params = (hashlib.sha256(pcm16).hexdigest(), output_format, tag, MP3_QUALITY)
    ext = "mp3" if codec == "mp3" else codec
    return _cached(f"speech-{output_format}{'-tag' if tag else ''}", params, ext, make)


MP3_VARIANTS: Final = {
    # name: (sample rate, channels, kb/s or None for VBR)
    "vbr_44100": (44100, 1, None),
    "stereo_44100_128": (44100, 2, 128),
    "mpeg2_16000_32": (16000, 1, 32),
    "mpeg25_11025_24": (11025, 1, 24),
    "mpeg25_8000_16": (8000, 1, 16),
}


def mp3_variant(name: str) -> bytes:
    """MP3 streams ElevenLabs does not send but a decoder must follow from the headers alone:
    VBR (no Xing tag), joint stereo (right = half the left + a -30 dBFS 1 kHz tone, so the
    mono mix-down is checkable), MPEG-2 and MPEG-2.5 sample rates. Raw LAME output, no tag."""
    rate, channels, kbps = MP3_VARIANTS[name]
    pcm16 = speech(rate)

    def make() -> bytes:
        import lameenc

        enc = lameenc.Encoder()
        enc.set_in_sample_rate(rate)
        enc.set_out_sample_rate(rate)
        enc.set_channels(channels)
        enc.set_quality(3)
        if kbps is None:
            enc.set_vbr(4)
            enc.set_vbr_quality(4)
        else:
            enc.set_bit_rate(kbps)
        data = pcm16
        if channels == 2:
            left = as_float(pcm16)
            t = np.arange(len(left)) / rate
            right = 0.5 * left + 10 ** (-30 / 20) * np.sin(2 * np.pi * 1000 * t)
            both = np.stack([left, right], axis=1).reshape(-1)
            data = to_int16(both)
        return bytes(enc.encode(data)) + bytes(enc.flush())

    return _cached(f"mp3-{name}", (hashlib.sha256(pcm16).hexdigest(), name), "mp3", make)


def sweep_frequency(
    t: npt.NDArray[np.float64] | float,
    *,
    f0: float = 100.0,
    f1: float = 20000.0,
    seconds: float = 4.0,
    kind: str = "linear",
) -> npt.NDArray[np.float64]:
    """Instantaneous frequency (Hz) of ``sweep()`` at time ``t`` seconds."""
    tt = np.asarray(t, np.float64)
    if kind == "linear":
        return f0 + (f1 - f0) * tt / seconds
    if kind == "log":
        return f0 * (f1 / f0) ** (tt / seconds)
    raise ValueError(kind)


def sweep(
    rate: int = 44100,
    *,
    f0: float = 100.0,
    f1: float = 20000.0,
    seconds: float = 4.0,
    dbfs: float = -6.0,
    kind: str = "linear",
) -> bytes:
    """A sine sweep from ``f0`` to ``f1`` Hz, int16 mono at ``rate``, peak ``dbfs``."""

    def make() -> bytes:
        t = np.arange(round(seconds * rate)) / rate
        if kind == "linear":
            phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
        elif kind == "log":
            k = np.log(f1 / f0)
            phase = 2 * np.pi * f0 * seconds / k * (np.exp(t * k / seconds) - 1)
        else:
            raise ValueError(kind)
        return to_int16(10 ** (dbfs / 20) * np.sin(phase))

    return _cached("sweep", (rate, f0, f1, seconds, dbfs, kind), "s16", make)


def tone(freq: float, rate: int = 44100, *, seconds: float = 1.0, dbfs: float = -10.0) -> bytes:
    """A sine tone, int16 mono at ``rate`` (not cached: it is cheap)."""
    t = np.arange(round(seconds * rate)) / rate
    return to_int16(10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t))


def chunks(data: bytes, *, seed: int = 0, mean: int = 3000, spread: int = 1000) -> list[bytes]:
    """Cut ``data`` into random pieces of ``mean`` ± ``spread`` bytes (ElevenLabs-like)."""
    rng = random.Random(seed)
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        n = rng.randint(mean - spread, mean + spread)
        out.append(data[pos : pos + n])
        pos += n
    return out


def iter_all_formats() -> Iterator[str]:
    """Every format the test audio covers: all of hotline.codec.SUPPORTED_FORMATS."""
    from hotline.codec import SUPPORTED_FORMATS

    yield from SUPPORTED_FORMATS


def wav_bytes(data: bytes, rate: int, fmt: str = "pcm") -> bytes:
    """A WAV file around raw audio: ``fmt`` is ``pcm`` (int16), ``ulaw`` or ``alaw``."""
    tag, width = {"pcm": (1, 2), "alaw": (6, 1), "ulaw": (7, 1)}[fmt]
    fmt_chunk = (
        tag.to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + (rate * width).to_bytes(4, "little")
        + width.to_bytes(2, "little")
        + (8 * width).to_bytes(2, "little")
    )
    if tag != 1:
        fmt_chunk += (0).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt_chunk).to_bytes(4, "little") + fmt_chunk
    pad = b"\0" if len(data) % 2 else b""
    body += b"data" + len(data).to_bytes(4, "little") + data + pad
    return b"RIFF" + len(body).to_bytes(4, "little") + body


# --- references and metrics (shared by tests/codec/test_quality.py and benchmarks/) -------------

F64 = npt.NDArray[np.float64]


def _audioop() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # Python >= 3.13: the audioop-lts package

    return audioop


def lin2ulaw(pcm16: bytes) -> bytes:
    """G.711 µ-law by the stdlib (an oracle independent of hotline)."""
    return _audioop().lin2ulaw(pcm16, 2)


def ulaw2lin(ulaw: bytes) -> bytes:
    """G.711 µ-law decode by the stdlib."""
    return _audioop().ulaw2lin(ulaw, 2)


def alaw2lin(alaw: bytes) -> bytes:
    """G.711 A-law decode by the stdlib."""
    return _audioop().alaw2lin(alaw, 2)


def decode_mp3_whole(data: bytes) -> tuple[F64, int]:
    """Whole-file MP3 decode by PyAV (ffmpeg's demuxer + decoder; honours a LAME tag)."""
    import io

    import av

    parts: list[F64] = []
    with av.open(io.BytesIO(data), format="mp3") as container:
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate)
        for frame in container.decode(stream):
            a = frame.to_ndarray().astype(np.float64)
            parts.append(a.mean(axis=0) if a.ndim == 2 and a.shape[0] > 1 else a.reshape(-1))
    return np.concatenate(parts), rate


def source_signal(output_format: str, data: bytes) -> tuple[F64, int]:
    """The full-quality linear signal (float, full scale 1.0) that ``data`` carries, at its rate."""
    codec = output_format.split("_")[0]
    if codec == "mp3":
        return decode_mp3_whole(data)
    if codec == "pcm":
        return as_float(data[: len(data) & ~1]), format_rate(output_format)
    if codec == "ulaw":
        return as_float(ulaw2lin(data)), 8000
    if codec == "alaw":
        return as_float(alaw2lin(data)), 8000
    raise ValueError(output_format)


def reference_8k(output_format: str, data: bytes) -> F64:
    """The reference rendering at 8 kHz: full decode, then soxr VHQ (float, linear phase)."""
    x, rate = source_signal(output_format, data)
    if rate == 8000:
        return x
    import soxr

    return np.asarray(soxr.resample(x, rate, 8000, quality="VHQ"), np.float64)


def reference_ulaw(output_format: str, data: bytes) -> bytes:
    """``reference_8k`` as µ-law (stdlib encoder), i.e. the ideal of what callers hear."""
    codec = output_format.split("_")[0]
    if codec == "ulaw":
        return data
    return lin2ulaw(to_int16(reference_8k(output_format, data)))


def ulaw_to_float(ulaw: bytes) -> F64:
    """µ-law bytes -> float samples via the stdlib decoder."""
    return as_float(ulaw2lin(ulaw))


def snr_db(ref: F64, out: F64) -> float:
    """SNR of ``out`` against ``ref`` sample by sample (no shifting), over the common length."""
    n = min(len(ref), len(out))
    if n == 0:
        return float("-inf")
    err = ref[:n] - out[:n]
    return float(10 * np.log10(np.sum(ref[:n] ** 2) / max(float(np.sum(err**2)), 1e-30)))


def segmental_snr(
    ref: F64, out: F64, *, window: int = 160, speech_dbfs: float = -40.0
) -> npt.NDArray[np.float64]:
    """Per-window SNR (dB) over the windows whose reference level is above ``speech_dbfs``.

    A window of ``out`` missing entirely (output too short) counts as 0 dB.
    """
    snrs = []
    for i in range(0, len(ref) - window + 1, window):
        r = ref[i : i + window]
        p = float(np.mean(r * r))
        if 10 * np.log10(p + 1e-30) <= speech_dbfs:
            continue
        o = out[i : i + window]
        if len(o) < window:
            o = np.concatenate([o, np.zeros(window - len(o))])
        e = float(np.mean((r - o) ** 2))
        snrs.append(10 * np.log10(p / max(e, 1e-30)))
    return np.array(snrs)


def xcorr_lag(ref: F64, out: F64, max_lag: int = 2000) -> int:
    """Integer lag (samples) that best aligns ``out`` to ``ref``: positive = ``out`` is late."""
    n = 1 << int(np.ceil(np.log2(len(ref) + len(out) + 1)))
    c = np.fft.irfft(np.fft.rfft(out, n) * np.conj(np.fft.rfft(ref, n)), n)
    window = np.concatenate([c[-max_lag:], c[: max_lag + 1]])
    return int(np.argmax(window)) - max_lag
