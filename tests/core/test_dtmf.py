"""DTMF tones: each key holds exactly its two frequencies (Goertzel), with the right timing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hotline.codec import ulaw_decode
from hotline.core.dtmf import DTMF_FREQS, RATE, dtmf_pcm, dtmf_tones

CANDIDATES = (697, 770, 852, 941, 1209, 1336, 1477, 1633)


def goertzel(x: np.ndarray, freq: float) -> float:
    k = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + k * s1 - s2, s1
    return s2 * s2 + s1 * s1 - k * s1 * s2


def detect(segment: np.ndarray) -> str | None:
    power = {f: goertzel(segment, f) for f in CANDIDATES}
    low = max(CANDIDATES[:4], key=lambda f: power[f])
    high = max(CANDIDATES[4:], key=lambda f: power[f])
    total = float(np.sum(segment**2)) * len(segment) / 2
    # Both winners dominate their group (twist and the other six bins far below).
    others = [power[f] for f in CANDIDATES if f not in (low, high)]
    if power[low] < 10 * max(others) or power[high] < 10 * max(others) or total == 0:
        return None
    return next(k for k, v in DTMF_FREQS.items() if v == (low, high))


def segments(ulaw: bytes, tone_ms: int, gap_ms: int) -> list[np.ndarray]:
    x = np.frombuffer(ulaw_decode(ulaw), dtype="<i2").astype(np.float64)
    step, n = RATE * (tone_ms + gap_ms) // 1000, RATE * tone_ms // 1000
    return [x[i : i + n] for i in range(0, len(x), step)]


def test_every_key_is_its_pair() -> None:
    digits = "123A456B789C*0#D"
    ulaw = dtmf_tones(digits)
    assert len(ulaw) == len(digits) * RATE * 200 // 1000
    heard = "".join(detect(seg) or "?" for seg in segments(ulaw, 100, 100))
    assert heard == digits


def test_gaps_are_silent_and_w_pauses_half_a_second() -> None:
    pcm = np.frombuffer(dtmf_pcm("1w2", tone_ms=60, gap_ms=40), dtype="<i2")
    tone, gap, pause = RATE * 60 // 1000, RATE * 40 // 1000, RATE // 2
    assert len(pcm) == 2 * (tone + gap) + pause
    assert np.all(pcm[tone : tone + gap + pause] == 0)
    assert np.abs(pcm[:tone]).max() > 10000
    assert np.abs(pcm).max() <= 2 * 32767 * 10 ** (-9 / 20) + 1  # -9 dBFS per tone: no clipping
    assert abs(int(pcm[0])) < 200  # ramped start, no click


def test_lowercase_and_bad_keys() -> None:
    assert dtmf_tones("a") == dtmf_tones("A")
    for bad in ("x", "1 2", "e"):
        with pytest.raises(ValueError, match="not a DTMF key"):
            dtmf_tones(bad)
    with pytest.raises(ValueError):
        dtmf_tones("1", tone_ms=10)
    with pytest.raises(ValueError):
        dtmf_tones("1", level_dbfs=0)
    assert dtmf_tones("") == b""
