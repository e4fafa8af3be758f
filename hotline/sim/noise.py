"""Non-speech a caller's line carries, as 8 kHz µ-law: coughs and line noise.

Generated from a seed (never recorded), for the tests, the benchmarks and the simulated caller.
A cough here is a burst of low-passed noise with a fast attack and a decaying tail, optionally
with a weak glottal buzz: loud and smooth enough that an energy/zero-crossing detector calls it
speech (the bursts a grammar recogniser once heard as "hang up"), aperiodic like a real cough.
"""

from __future__ import annotations

import array
import random

from hotline.codec import ulaw_encode

__all__ = ["COUGHS", "cough", "line_noise"]


def cough(
    ms: int = 200, *, seed: int = 0, smooth: float = 0.9, buzz_hz: int = 0, level: int = 12000
) -> bytes:
    """A cough-like burst of ``ms`` milliseconds.

    ``smooth`` is the one-pole low-pass coefficient of the noise (0.5 hissy .. 0.95 dull);
    ``buzz_hz`` adds a weak pulse train at that rate (0: none); ``level`` scales the noise."""
    rng = random.Random(seed)
    n = ms * 8
    pcm = array.array("h")
    y = 0.0
    gain = level * 0.6 / (1 - smooth) ** 0.5
    period = 8000 // buzz_hz if buzz_hz else 0
    for i in range(n):
        envelope = min(1.0, i / 40) * (1 - i / n) ** 1.5
        y = smooth * y + (1 - smooth) * rng.uniform(-1.0, 1.0)
        pulse = 5000 if period and i % period < 8 else 0
        pcm.append(max(-32768, min(32767, int(envelope * (gain * y + pulse)))))
    return ulaw_encode(pcm.tobytes())


#: A spread of coughs (hissy to dull, with and without a buzz, 200 and 300 ms) for tests.
COUGHS: tuple[tuple[int, int, float, int], ...] = tuple(
    (ms, seed, smooth, buzz)
    for seed in range(4)
    for smooth in (0.5, 0.8, 0.9, 0.95)
    for buzz in (0, 120)
    for ms in (200, 300)
)


def line_noise(ms: int = 1000, *, seed: int = 0, dbfs: float = -40.0) -> bytes:
    """Steady white noise at about ``dbfs`` RMS (a hissy line)."""
    rng = random.Random(seed)
    sigma = 32768 * 10 ** (dbfs / 20)
    pcm = array.array(
        "h", (max(-32768, min(32767, int(rng.gauss(0.0, sigma)))) for _ in range(ms * 8))
    )
    return ulaw_encode(pcm.tobytes())
