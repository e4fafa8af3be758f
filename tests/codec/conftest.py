"""Fixtures for the codec tests: MP3 and PCM test signals made here (numpy + lameenc, and PyAV's
libmp3lame for a file with a real LAME tag), never downloaded."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

Signal = npt.NDArray[np.int16]
Mp3Maker = Callable[..., bytes]


def _signal(rate: int, seconds: float, kind: str, seed: int = 0) -> Signal:
    n = int(rate * seconds)
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    if kind == "tone":
        x = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    elif kind == "chirp":  # 200 Hz -> 0.45 rate, linear
        f1 = 0.45 * rate
        x = 0.3 * np.sin(2 * np.pi * (200.0 * t + (f1 - 200.0) * t * t / (2 * seconds)))
    elif kind == "noise":
        x = 0.15 * rng.standard_normal(n)
    elif kind == "bursts":  # noise bursts and silences, like syllables
        env = (np.sin(2 * np.pi * 3.0 * t) > 0).astype(np.float64)
        x = 0.2 * rng.standard_normal(n) * env + 0.1 * np.sin(2 * np.pi * 220.0 * t)
    else:
        raise ValueError(kind)
    return np.clip(np.rint(x * 32767), -32768, 32767).astype(np.int16)


def make_mp3(
    rate: int = 44100,
    seconds: float = 1.0,
    *,
    kind: str = "bursts",
    channels: int = 1,
    kbps: int = 64,
    vbr: bool = False,
    seed: int = 0,
) -> bytes:
    """A LAME stream (no Info tag, like ElevenLabs') of a generated signal."""
    import lameenc

    mono = _signal(rate, seconds, kind, seed)
    pcm = mono if channels == 1 else np.stack([mono, _signal(rate, seconds, "tone", seed)], 1)
    enc = lameenc.Encoder()
    enc.set_in_sample_rate(rate)
    enc.set_channels(channels)
    enc.set_quality(5)
    if vbr:
        enc.set_vbr(4)
        enc.set_vbr_quality(4)
    else:
        enc.set_bit_rate(kbps)
    return bytes(enc.encode(pcm.astype("<i2").tobytes()) + enc.flush())


@pytest.fixture(scope="session")
def mp3() -> Mp3Maker:
    return make_mp3


@pytest.fixture(scope="session")
def signal() -> Callable[..., Signal]:
    return _signal


@pytest.fixture(scope="session")
def lame_tagged() -> Callable[[Signal, int], bytes]:
    """MP3 written by ffmpeg's libmp3lame through PyAV: an Info frame with a real LAME tag
    (encoder delay and padding), as a file saved by LAME would have."""
    av = pytest.importorskip("av")

    def make(pcm: Signal, rate: int) -> bytes:
        buf = io.BytesIO()
        with av.open(buf, "w", format="mp3") as out:
            st = out.add_stream("libmp3lame", rate=rate)
            st.bit_rate = 64000
            st.layout = "mono"
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            for p in st.encode(frame):
                out.mux(p)
            for p in st.encode(None):
                out.mux(p)
        data = buf.getvalue()
        assert b"Info" in data[:4096] or b"Xing" in data[:4096]
        return data

    return make


@pytest.fixture(scope="session")
def audioop() -> ModuleType:
    """stdlib audioop (3.11/3.12, deprecated) or audioop-lts (>= 3.13); skip if neither."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            pytest.skip("neither audioop nor audioop-lts is installed")
    return audioop


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    """Cut data into pieces of the given sizes, cycling through them."""
    out = []
    i = k = 0
    while i < len(data):
        n = max(1, sizes[k % len(sizes)])
        out.append(data[i : i + n])
        i += n
        k += 1
    return out


@pytest.fixture(scope="session")
def cut() -> Callable[[bytes, list[int]], list[bytes]]:
    return chunked
