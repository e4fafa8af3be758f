"""Pure-Python oracles for the compiled codec (tests and benchmarks only; never the service).

Written from the algorithms' descriptions, not translated from ``csrc/``, so an error in one is
unlikely to be repeated in the other:

- G.711 µ-law as in the CCITT recommendation / Sun g711.c (what ``audioop`` implements): the
  16-bit sample is reduced to 14 bits (arithmetic shift), biased by 33, and coded as sign,
  3-bit segment (position of the leading one) and 4 mantissa bits, all bits inverted.
- A-law decode (13-bit, even bits toggled with 0x55), then the µ-law coder.
- A direct (non-polyphase, double precision) windowed-sinc resampler with the same filter design
  as ``csrc/resample.c``: the same stages, band edges, Kaiser length and per-phase unity-gain
  normalisation. The compiled one accumulates in float32, so they agree to within 1 LSB.
"""

from __future__ import annotations

import itertools
import math
import struct
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "ATTEN_DB",
    "DBFS_FLOOR",
    "PASS_FRAC",
    "STOP_FRAC",
    "StagePlan",
    "alaw_decode_sample",
    "alaw_to_ulaw",
    "plan",
    "resample",
    "ulaw_decode",
    "ulaw_decode_sample",
    "ulaw_encode",
    "ulaw_encode_sample",
    "ulaw_frame_stats",
    "ulaw_periodicity",
]

# Filter design constants: keep in sync with csrc/resample.c.
PASS_FRAC = 0.913
STOP_FRAC = 1.0
ATTEN_DB = 75.0
ATTEN1_DB = 90.0  # the pre-decimation stage
STAGE_MARGIN = 1.35
LANES = 8
RATE_MIN = 1000
RATE_MAX = 384000
MAX_PHASES = 2048

DBFS_FLOOR = -120.0

# --------------------------------------------------------------------------------- G.711


def ulaw_encode_sample(sample: int) -> int:
    """One int16 sample -> one µ-law code."""
    v = sample >> 2  # 14 bits; Python's >> floors, like an arithmetic shift
    mag = min(-v if v < 0 else v, 8159) + 33  # clip, then add the bias (132 >> 2)
    if mag > 0x1FFF:  # only 8192: codes like the largest magnitude
        segment, mantissa = 7, 0x0F
    else:
        segment = 0
        while mag > (64 << segment) - 1:  # segment = position of the leading one
            segment += 1
        mantissa = (mag >> (segment + 1)) & 0x0F
    # all bits inverted; the sign bit (0x80 before inversion) marks negative values
    return ((segment << 4) | mantissa) ^ (0x7F if v < 0 else 0xFF)


def ulaw_decode_sample(code: int) -> int:
    """One µ-law code -> int16."""
    u = ~code & 0xFF
    segment = (u >> 4) & 0x07
    magnitude = ((((u & 0x0F) << 3) + 0x84) << segment) - 0x84
    return -magnitude if u & 0x80 else magnitude


def alaw_decode_sample(code: int) -> int:
    """One A-law code -> int16 (13-bit value scaled to 16 bits)."""
    a = code ^ 0x55
    segment = (a >> 4) & 0x07
    mantissa = a & 0x0F
    if segment == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (segment - 1)
    return magnitude if a & 0x80 else -magnitude


def ulaw_encode(pcm16: bytes) -> bytes:
    """int16 little-endian PCM -> µ-law."""
    if len(pcm16) % 2:
        raise ValueError("int16 PCM needs an even number of bytes")
    samples = struct.unpack(f"<{len(pcm16) // 2}h", pcm16)
    return bytes(ulaw_encode_sample(s) for s in samples)


def ulaw_decode(ulaw: bytes) -> bytes:
    """µ-law -> int16 little-endian PCM."""
    return struct.pack(f"<{len(ulaw)}h", *(ulaw_decode_sample(c) for c in ulaw))


def alaw_to_ulaw(alaw: bytes) -> bytes:
    """A-law -> µ-law via the linear value (audioop.lin2ulaw(audioop.alaw2lin(x)))."""
    return bytes(ulaw_encode_sample(alaw_decode_sample(c)) for c in alaw)


def ulaw_frame_stats(ulaw: bytes) -> tuple[float, float]:
    """(rms_dbfs, zero_crossing_rate), the contract of hotline.codec.ulaw_frame_stats."""
    samples = [ulaw_decode_sample(c) for c in ulaw]
    n = len(samples)
    sumsq = sum(s * s for s in samples)
    if n == 0 or sumsq == 0:
        db = DBFS_FLOOR
    else:
        db = max(DBFS_FLOOR, 20.0 * math.log10(math.sqrt(sumsq / n) / 32768.0))
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return db, (crossings / (n - 1) if n >= 2 else 0.0)


def ulaw_periodicity(ulaw: bytes, min_lag: int, max_lag: int) -> float:
    """The contract of hotline.codec.ulaw_periodicity, summed in the kernel's order."""
    if not 1 <= min_lag <= max_lag:
        raise ValueError(f"need 1 <= min_lag <= max_lag, got {min_lag}, {max_lag}")
    n = len(ulaw)
    if n <= max_lag:
        return 0.0
    mean = 0.0
    for c in ulaw:
        mean += float(ulaw_decode_sample(c))
    mean /= n
    x = [ulaw_decode_sample(c) - mean for c in ulaw]
    m = n - max_lag
    ea = 0.0
    for i in range(m):
        ea += x[i] * x[i]
    best = 0.0
    for lag in range(min_lag, max_lag + 1):
        ab = eb = 0.0
        for i in range(m):
            ab += x[i] * x[i + lag]
            eb += x[i + lag] * x[i + lag]
        if ea > 0.0 and eb > 0.0:
            best = max(best, ab / math.sqrt(ea * eb))
    return best


# ----------------------------------------------------------------------------- resampler


@dataclass(frozen=True)
class StagePlan:
    """One stage of the rational resampler (mirrors hl_stage_plan)."""

    in_rate: int
    out_rate: int
    phases: int  # L
    step: int  # M
    ntaps: int
    half: int
    pass_hz: float
    stop_hz: float
    cutoff_hz: float
    beta: float
    passthrough: bool


def _stage(
    in_rate: int, out_rate: int, pass_hz: float, stop_hz: float, a: float = ATTEN_DB
) -> StagePlan:
    g = math.gcd(in_rate, out_rate)
    if in_rate == out_rate:
        return StagePlan(in_rate, out_rate, 1, 1, 1, 0, 0.0, 0.0, 0.0, 0.0, True)
    if out_rate // g > MAX_PHASES:
        raise ValueError(f"rate pair {in_rate} -> {out_rate} needs too many phases")
    beta = 0.1102 * (a - 8.7) if a > 50 else 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    dw = 2.0 * math.pi * (stop_hz - pass_hz) / in_rate
    n = math.ceil((a - 7.95) / (2.285 * dw) + 1.0)
    n = -(-n // LANES) * LANES
    return StagePlan(
        in_rate, out_rate, out_rate // g, in_rate // g, n, n // 2,
        pass_hz, stop_hz, 0.5 * (pass_hz + stop_hz), beta, False,
    )  # fmt: skip


def plan(in_rate: int, out_rate: int) -> tuple[StagePlan, ...]:
    """The stages csrc/resample.c uses for this rate pair."""
    if not (RATE_MIN <= in_rate <= RATE_MAX and RATE_MIN <= out_rate <= RATE_MAX):
        raise ValueError(f"rates must be {RATE_MIN}..{RATE_MAX} Hz")
    nyq = 0.5 * min(in_rate, out_rate)
    pass_hz, stop_hz = PASS_FRAC * nyq, STOP_FRAC * nyq
    d = 0
    if in_rate > out_rate:
        k = 2
        while in_rate / k >= STAGE_MARGIN * out_rate:
            if in_rate % k == 0:
                d = k
            k += 1
    if d:
        mid = in_rate // d
        return (
            _stage(in_rate, mid, pass_hz, mid - stop_hz, ATTEN1_DB),
            _stage(mid, out_rate, pass_hz, stop_hz),
        )
    return (_stage(in_rate, out_rate, pass_hz, stop_hz),)


def _bessel_i0(x: float) -> float:
    total = term = 1.0
    q = 0.25 * x * x
    k = 1
    while True:
        term *= q / (k * k)
        total += term
        if term < total * 1e-17:
            return total
        k += 1


@lru_cache(maxsize=4096)
def _phase_taps(sp: StagePlan, phase: int) -> tuple[float, ...]:
    """Taps of one polyphase branch: tap k weighs input i + k - (half - 1) for an output at
    time i + phase/L; normalised to unity DC gain."""
    fc = sp.cutoff_hz / sp.in_rate
    i0b = _bessel_i0(sp.beta)
    raw = []
    for k in range(sp.ntaps):
        tau = k - (sp.half - 1) - phase / sp.phases
        r = tau / sp.half
        w = _bessel_i0(sp.beta * math.sqrt(1.0 - r * r)) / i0b if r * r < 1.0 else 0.0
        x = 2.0 * fc * tau
        s = 1.0 if x == 0.0 else math.sin(math.pi * x) / (math.pi * x)
        raw.append(2.0 * fc * s * w)
    total = sum(raw)
    return tuple(v / total for v in raw)


def _run_stage(sp: StagePlan, x: list[float]) -> list[float]:
    """A whole stream through one stage: outputs at t_n = n M / L for every t_n < len(x),
    zeros outside the input (zero-phase, time-aligned)."""
    if sp.passthrough:
        return list(x)
    n_in = len(x)
    out = []
    n = 0
    while n * sp.step < n_in * sp.phases:
        i, phase = divmod(n * sp.step, sp.phases)
        taps = _phase_taps(sp, phase)
        base = i - (sp.half - 1)
        acc = 0.0
        for k in range(max(0, -base), min(sp.ntaps, n_in - base)):
            acc += taps[k] * x[base + k]
        out.append(acc)
        n += 1
    return out


def resample(pcm16: bytes, in_rate: int, out_rate: int) -> bytes:
    """Resample a whole int16 little-endian stream (what process() + flush() return)."""
    if len(pcm16) % 2:
        raise ValueError("int16 PCM needs an even number of bytes")
    x: list[float] = [float(s) for s in struct.unpack(f"<{len(pcm16) // 2}h", pcm16)]
    for sp in plan(in_rate, out_rate):
        x = _run_stage(sp, x)
    out = [max(-32768, min(32767, round(v))) for v in x]  # round half to even, saturate
    return struct.pack(f"<{len(out)}h", *out)
