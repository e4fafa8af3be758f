"""Encoders for the local voice: bytes as ElevenLabs would send them, checked by independent tools
(PyAV/ffmpeg decode, soxr VHQ references, stdlib audioop)."""

from __future__ import annotations

import io
import random
import warnings

import av
import numpy as np
import numpy.typing as npt
import pytest
import soxr

from hotline.codec import SUPPORTED_FORMATS
from hotline.errors import CodecError
from hotline.tts_standin.encode import (
    Encoder,
    alaw_encode,
    encode,
    parse_format,
    supported_formats,
)
from hotline.tts_standin.espeak import Pcm, synthesize
from tests import audio

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # pragma: no cover - Python >= 3.13 without audioop-lts
        audioop = None  # type: ignore[assignment]

F64 = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def pcm() -> Pcm:
    return synthesize("Please hold while I connect you. The line is open.")


def _decode_mp3(data: bytes) -> tuple[F64, int, set[int]]:
    """Whole-file decode with PyAV (ffmpeg): samples, sample rate, set of frame bit rates."""
    frames: list[F64] = []
    with av.open(io.BytesIO(data), format="mp3") as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        assert stream.codec_context.channels == 1
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray().reshape(-1).astype(np.float64))
    return np.concatenate(frames), rate, _frame_bitrates(data)


def _frame_bitrates(data: bytes) -> set[int]:
    from hotline.tts_standin.encode import _count_frames, _frame_info

    _count_frames(data)  # walks every header; raises if the stream is not clean frames
    pos, rates = 0, set()
    while pos < len(data):
        version, rate, kbps, _ = _frame_info(data[pos : pos + 4])
        rates.add(kbps)
        pos += (144000 if version == 3 else 72000) * kbps // rate + ((data[pos + 2] >> 1) & 1)
    return rates


def _snr(ref: F64, out: F64) -> float:
    n = min(len(ref), len(out))
    err = ref[:n] - out[:n]
    return float(10 * np.log10(np.sum(ref[:n] ** 2) / max(np.sum(err**2), 1e-30)))


def _lag(ref: F64, out: F64, max_lag: int = 2000) -> int:
    n = 1 << int(np.ceil(np.log2(len(ref) + len(out))))
    c = np.fft.irfft(np.fft.rfft(out, n) * np.conj(np.fft.rfft(ref, n)), n)
    c = np.concatenate([c[-max_lag:], c[: max_lag + 1]])
    return int(np.argmax(c)) - max_lag


def test_formats_match_the_codec() -> None:
    assert supported_formats() == tuple(SUPPORTED_FORMATS)
    assert set(supported_formats()) == set(audio.iter_all_formats())
    assert parse_format("mp3_44100_128") == ("mp3", 44100, 128)
    assert parse_format("pcm_16000") == ("pcm", 16000, None)
    with pytest.raises(CodecError, match="mp3_44100_128"):
        parse_format("opus_48000_64")
    with pytest.raises(CodecError, match="unsupported"):
        Encoder("wav_44100", 22050)
    with pytest.raises(CodecError, match="in_rate"):
        Encoder("pcm_16000", 0)


@pytest.mark.skipif(audioop is None, reason="audioop not available")
def test_alaw_bit_exact_all_inputs() -> None:
    every = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert alaw_encode(every) == audioop.lin2alaw(every, 2)
    assert alaw_encode(b"") == b""
    with pytest.raises(CodecError, match="whole int16"):
        alaw_encode(b"\0\0\0")


@pytest.mark.parametrize("fmt", [f for f in audio.iter_all_formats() if f.startswith("pcm_")])
def test_pcm_formats(pcm: Pcm, fmt: str) -> None:
    rate = audio.format_rate(fmt)
    out = encode(pcm, fmt)
    expected = pcm.n_samples * rate / pcm.sample_rate
    assert abs(len(out) // 2 - expected) <= 2
    assert len(out) % 2 == 0
    ref = soxr.resample(audio.as_float(pcm.samples), pcm.sample_rate, rate, quality="VHQ")
    got = audio.as_float(out)
    assert _lag(ref, got) == 0
    assert _snr(ref, got) > 40.0  # measured 48 (to 8 kHz) .. 73 dB (upsampling)


def test_ulaw_and_alaw(pcm: Pcm) -> None:
    pcm8 = encode(pcm, "pcm_8000")
    ulaw = encode(pcm, "ulaw_8000")
    alaw = encode(pcm, "alaw_8000")
    assert len(ulaw) == len(alaw) == len(pcm8) // 2
    assert alaw == alaw_encode(pcm8)
    if audioop is not None:
        assert ulaw == audioop.lin2ulaw(pcm8, 2)


@pytest.mark.parametrize("fmt", [f for f in audio.iter_all_formats() if f.startswith("mp3_")])
def test_mp3_formats_are_cbr_mono_at_their_rate(pcm: Pcm, fmt: str) -> None:
    _, rate, kbps = parse_format(fmt)
    data = encode(pcm, fmt)
    assert b"Xing" not in data[:200] and b"Info" not in data[:200]  # a stream, no tag
    decoded, got_rate, bitrates = _decode_mp3(data)
    assert got_rate == rate
    assert bitrates == {kbps}
    n_out = round(pcm.n_samples * rate / pcm.sample_rate)
    spf = 1152 if rate > 24000 else 576
    # LAME: 576 samples of encoder delay + the decoder's 529, padded to whole frames
    assert n_out + 1105 <= len(decoded) < n_out + 1105 + 2 * spf


@pytest.mark.parametrize("fmt", ["mp3_22050_32", "mp3_24000_48", "mp3_44100_32", "mp3_44100_128"])
def test_lame_tag_gives_gapless_decode(pcm: Pcm, fmt: str) -> None:
    rate = audio.format_rate(fmt)
    src = Pcm(
        audio.to_int16(soxr.resample(audio.as_float(pcm.samples), pcm.sample_rate, rate, "VHQ")),
        rate,
    )
    plain = encode(src, fmt)
    tagged = encode(src, fmt, lame_tag=True)
    assert tagged.endswith(plain)
    assert tagged[: len(tagged) - len(plain)].find(b"Info") in (13, 21)  # MPEG-2 / MPEG-1 mono
    decoded, _, _ = _decode_mp3(tagged)
    assert len(decoded) == src.n_samples  # ffmpeg read our delay and padding
    ref = audio.as_float(src.samples)
    assert _lag(ref, decoded) == 0
    assert _snr(ref, decoded) > 10.0  # it is the same speech (MP3 at low rates is lossy)


@pytest.mark.parametrize(
    "fmt", ["mp3_22050_32", "mp3_44100_128", "pcm_24000", "ulaw_8000", "alaw_8000", "pcm_22050"]
)
def test_streaming_is_chunk_invariant(pcm: Pcm, fmt: str) -> None:
    one_shot = encode(pcm, fmt)
    rng = random.Random(fmt)
    enc = Encoder(fmt, pcm.sample_rate)
    out = bytearray()
    pos = 0
    data = pcm.samples
    while pos < len(data):
        n = rng.choice([1, 3, 7, 64, 511, 4097])
        out += enc.feed(memoryview(data)[pos : pos + n])
        pos += n
    out += enc.flush()
    assert bytes(out) == one_shot
    assert enc.flush() == b""
    with pytest.raises(CodecError, match="after flush"):
        enc.feed(b"\0\0")


def test_empty_and_odd_input() -> None:
    empty = Pcm(b"", 22050)
    assert encode(empty, "pcm_16000") == b""
    assert encode(empty, "ulaw_8000") == b""
    assert encode(empty, "mp3_44100_128", lame_tag=True) == encode(empty, "mp3_44100_128")
    enc = Encoder("pcm_22050", 22050)
    assert enc.feed(b"\x01") == b""
    assert enc.feed(b"\x02\x03") == b"\x01\x02"
    assert enc.flush() == b""  # the trailing half sample is dropped


def test_lame_tag_only_for_mp3(pcm: Pcm) -> None:
    with pytest.raises(CodecError, match="mp3"):
        encode(pcm, "pcm_16000", lame_tag=True)
