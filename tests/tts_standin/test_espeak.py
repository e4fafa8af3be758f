"""eSpeak NG through ctypes: real synthesis, errors, thread safety, silence on stdout/stderr."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hotline.errors import HotlineError, SynthesisError
from hotline.tts_standin.espeak import Pcm, sample_rate, synthesize


def _rms_dbfs(pcm: Pcm) -> float:
    x = np.frombuffer(pcm.samples, "<i2").astype(np.float64) / 32768.0
    return float(10 * np.log10(np.mean(x * x) + 1e-20))


def test_speech_is_real_audio() -> None:
    pcm = synthesize("Hello, this is a test of the local voice.")
    assert pcm.sample_rate == 22050 == sample_rate()
    assert len(pcm.samples) % 2 == 0
    assert 1.0 < pcm.duration < 5.0
    assert -40.0 < _rms_dbfs(pcm) < -3.0  # speech level, not silence, not clipping garbage
    x = np.frombuffer(pcm.samples, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / pcm.sample_rate)
    voice_band = spectrum[(freqs > 100) & (freqs < 4000)].sum()
    assert voice_band / spectrum.sum() > 0.5  # energy where speech lives


@pytest.mark.parametrize("text", ["", " ", "\n\t  \r\n"])
def test_empty_text_gives_empty_pcm(text: str) -> None:
    pcm = synthesize(text)
    assert pcm == Pcm(b"", 22050)
    assert pcm.duration == 0.0


def test_rate_changes_duration() -> None:
    text = "The quick brown fox jumps over the lazy dog, twice in a row."
    slow = synthesize(text, rate_wpm=120)
    fast = synthesize(text, rate_wpm=300)
    assert fast.duration < 0.7 * slow.duration


def test_pitch_changes_fundamental() -> None:
    def f0(pcm: Pcm) -> float:
        # autocorrelation peak over voiced frames, 60..400 Hz
        x = np.frombuffer(pcm.samples, "<i2").astype(np.float64)
        sr = pcm.sample_rate
        lags = np.arange(sr // 400, sr // 60)
        best = []
        for i in range(0, len(x) - 2048, 1024):
            w = x[i : i + 2048]
            if np.sqrt(np.mean(w * w)) < 1000:
                continue
            ac = np.array(
                [
                    np.dot(w[:-lag], w[lag:])
                    / np.sqrt(np.dot(w[:-lag], w[:-lag]) * np.dot(w[lag:], w[lag:]))
                    for lag in lags
                ]
            )
            # the shortest period close to the best one (avoids picking a sub-harmonic)
            best.append(sr / lags[int(np.argmax(ac >= 0.9 * ac.max()))])
        return float(np.median(best))

    text = "Aaah, oh, ooh, eee."
    assert f0(synthesize(text, pitch=99)) > 1.3 * f0(synthesize(text))  # default pitch 50


def test_other_voice_and_unicode() -> None:
    assert synthesize("Guten Tag, wie geht es Ihnen?", voice="de").duration > 0.5
    assert synthesize("Café — naïve façade ✓ 😀 <b>&amp;</b>").duration > 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"voice": "no-such-voice"}, "no voice"),
        ({"voice": ""}, "invalid voice"),
        ({"voice": "en\0us"}, "invalid voice"),
        ({"rate_wpm": 10}, "rate_wpm"),
        ({"rate_wpm": 1000}, "rate_wpm"),
        ({"rate_wpm": 175.0}, "rate_wpm"),
        ({"pitch": -1}, "pitch"),
        ({"pitch": 100}, "pitch"),
        ({"pitch": True}, "pitch"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SynthesisError, match=match) as info:
        synthesize("Hello.", **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, HotlineError)
    assert isinstance(info.value, ValueError)
    # the engine is still usable afterwards
    assert synthesize("Still here.").duration > 0.2


def test_bad_text() -> None:
    with pytest.raises(SynthesisError, match="NUL"):
        synthesize("a\0b")
    with pytest.raises(SynthesisError, match="Unicode"):
        synthesize("lone \ud800 surrogate")
    with pytest.raises(SynthesisError, match="str"):
        synthesize(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(SynthesisError, match="longer"):
        synthesize("a" * 10_001)


def test_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    synthesize("Hello there. <speak>not ssml</speak> [[ phonemes ]] 1234.")
    with pytest.raises(SynthesisError):
        synthesize("Hello.", voice="xx-nope")
    synthesize("   ")
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_threads_are_serialised() -> None:
    texts = [f"Caller number {i} is being served by thread {i}." for i in range(8)]
    results: dict[int, Pcm] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                results[i] = synthesize(texts[i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    solo = {i: synthesize(texts[i]) for i in range(8)}
    for i in range(8):
        # Same sentence, same length within 5 % (flutter state may differ slightly).
        assert abs(results[i].duration - solo[i].duration) < 0.05 * solo[i].duration, i
        assert -40.0 < _rms_dbfs(results[i]) < -3.0


def test_pcm_validates() -> None:
    with pytest.raises(ValueError, match="even"):
        Pcm(b"\0", 22050)
    with pytest.raises(ValueError, match="positive"):
        Pcm(b"", 0)
