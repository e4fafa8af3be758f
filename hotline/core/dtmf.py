"""DTMF tone generation (ITU-T Q.23 pairs) as 8 kHz µ-law, for ``sendDigits``.

Each key is the sum of one low-group and one high-group sine::

            1209  1336  1477  1633 Hz
    697 Hz   1     2     3     A
    770 Hz   4     5     6     B
    852 Hz   7     8     9     C
    941 Hz   *     0     #     D

:func:`dtmf_tones` renders a digit string the way Twilio's ``<Play digits>`` does: each key
``tone_ms`` of tone (default 100 ms, well above Q.24's 40 ms minimum) followed by ``gap_ms``
of silence (default 100 ms); ``w`` is a 500 ms pause. Each tone is at ``level_dbfs`` (default
-9 dBFS per tone, so the pair peaks near -3 dBFS and never clips), with 5 ms raised-cosine
edges so the start and end do not click.
"""

from __future__ import annotations

import math
import sys
from array import array

from hotline.codec import ulaw_encode

__all__ = ["DTMF_FREQS", "RATE", "dtmf_pcm", "dtmf_tones"]

RATE = 8000
_LOW = (697, 770, 852, 941)
_HIGH = (1209, 1336, 1477, 1633)
_KEYS = ("123A", "456B", "789C", "*0#D")

#: key -> (low Hz, high Hz)
DTMF_FREQS: dict[str, tuple[int, int]] = {
    key: (_LOW[row], _HIGH[col]) for row, keys in enumerate(_KEYS) for col, key in enumerate(keys)
}
_PAUSE_MS = 500
_RAMP_MS = 5


def _tone(low: int, high: int, n: int, amplitude: float) -> array[int]:
    ramp = min(n // 2, RATE * _RAMP_MS // 1000)
    out = array("h", bytes(2 * n))
    w1, w2 = 2 * math.pi * low / RATE, 2 * math.pi * high / RATE
    for i in range(n):
        edge = 1.0
        if i < ramp:
            edge = 0.5 - 0.5 * math.cos(math.pi * i / ramp)
        elif i >= n - ramp:
            edge = 0.5 - 0.5 * math.cos(math.pi * (n - 1 - i) / ramp)
        value = amplitude * edge * (math.sin(w1 * i) + math.sin(w2 * i))
        out[i] = max(-32768, min(32767, round(value)))
    return out


def dtmf_pcm(
    digits: str, *, tone_ms: int = 100, gap_ms: int = 100, level_dbfs: float = -9.0
) -> bytes:
    """The tones for ``digits`` as int16 little-endian PCM at 8 kHz.

    Raises:
        ValueError: a character other than 0-9, *, #, A-D, w (case-insensitive for A-D, w),
            or durations / level out of range (tone 40..2000 ms, gap 0..2000 ms, level <= -6).
    """
    if not 40 <= tone_ms <= 2000 or not 0 <= gap_ms <= 2000:
        raise ValueError("tone_ms must be 40..2000 and gap_ms 0..2000")
    if level_dbfs > -6.0:
        raise ValueError("level_dbfs must be at most -6 (two tones add up)")
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    n_tone, n_gap = RATE * tone_ms // 1000, RATE * gap_ms // 1000
    pcm = array("h")
    cache: dict[str, array[int]] = {}
    for ch in digits:
        key = ch.upper()
        if key == "W":
            pcm.extend(array("h", bytes(2 * (RATE * _PAUSE_MS // 1000))))
            continue
        if key not in DTMF_FREQS:
            raise ValueError(f"not a DTMF key: {ch!r} (expected 0-9, *, #, A-D or w)")
        if key not in cache:
            cache[key] = _tone(*DTMF_FREQS[key], n_tone, amplitude)
        pcm.extend(cache[key])
        pcm.extend(array("h", bytes(2 * n_gap)))
    if pcm.itemsize != 2:  # pragma: no cover - every CPython platform has 16-bit "h"
        raise RuntimeError("array('h') is not 16-bit")
    if sys.byteorder == "big":  # pragma: no cover
        pcm.byteswap()
    return pcm.tobytes()


def dtmf_tones(
    digits: str, *, tone_ms: int = 100, gap_ms: int = 100, level_dbfs: float = -9.0
) -> bytes:
    """The tones for ``digits`` as 8 kHz µ-law, ready for Twilio ``media`` frames.

    Raises:
        ValueError: see :func:`dtmf_pcm`.
    """
    return ulaw_encode(dtmf_pcm(digits, tone_ms=tone_ms, gap_ms=gap_ms, level_dbfs=level_dbfs))
