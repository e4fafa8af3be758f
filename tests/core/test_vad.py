"""VAD over real µ-law (hotline.codec): speech triggers fast, silence and line noise never do.

Speech is eSpeak NG (tests.audio.speech, 8 kHz) when the local voice is available, and always
also a synthetic voiced signal (harmonics of a 140 Hz fundamental under a syllable envelope).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from hotline.codec import ulaw_encode, ulaw_frame_stats
from hotline.core.events import Media, SpeechEnded, SpeechStarted
from hotline.core.vad import Vad, VadConfig
from hotline.errors import ConfigError

F64 = npt.NDArray[np.float64]
RATE = 8000
CFG = VadConfig()
FULL = 32768.0
LEAD_MS = 600  # silence before the speech: a multiple of every frame size below


def dbfs_to_amp(dbfs: float) -> float:
    return FULL * 10 ** (dbfs / 20)


def to_ulaw(x: F64) -> bytes:
    return ulaw_encode(np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes())


def silence_ms(ms: int) -> F64:
    return np.zeros(ms * RATE // 1000)


def synthetic_voice(syllables: int = 5, level_dbfs: float = -20.0, seed: int = 1) -> F64:
    """Voiced speech stand-in: 140 Hz harmonics (1/k), 200 ms syllables, 60 ms dips between."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(syllables):
        n = int(0.2 * RATE)
        t = np.arange(n) / RATE
        f0 = 140 * (1 + 0.05 * rng.standard_normal())
        tone = sum(
            np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 20)
        )
        env = np.sin(np.pi * np.arange(n) / n) ** 0.3  # quick attack, syllable-shaped
        parts.append(tone * env)
        if i < syllables - 1:
            parts.append(np.zeros(int(0.06 * RATE)))
    x = np.concatenate(parts)
    voiced = x[np.abs(x) > 0]
    return x * (dbfs_to_amp(level_dbfs) / np.sqrt(np.mean(voiced**2)))


def espeak_voice() -> F64:
    try:
        from tests.audio import speech

        pcm = speech(RATE)
    except Exception as exc:  # eSpeak NG missing on this platform
        pytest.skip(f"eSpeak speech unavailable: {exc}")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def frame_rms_dbfs(x: F64, size: int = 160) -> F64:
    n = len(x) // size
    frames = x[: n * size].reshape(n, size)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return np.asarray(20 * np.log10(np.maximum(rms, 1e-9) / FULL))


def trim_to_onset(x: F64, threshold: float = CFG.threshold_dbfs) -> F64:
    """Start the signal at the first 20 ms frame whose RMS reaches the threshold."""
    loud = np.nonzero(frame_rms_dbfs(x) >= threshold)[0]
    return x[loud[0] * 160 :]


def cut(ulaw: bytes, sizes: Iterator[int]) -> Iterator[tuple[bytes, int]]:
    """Frames and their media timestamps (ms since the stream started)."""
    pos = 0
    while pos < len(ulaw):
        size = next(sizes)
        yield ulaw[pos : pos + size], pos // 8
        pos += size


def run(
    ulaw: bytes, size: int | Iterator[int] = 160, config: VadConfig = CFG
) -> list[tuple[SpeechStarted | SpeechEnded, int]]:
    """Events with the time they became known (the end of the frame that produced them)."""
    vad = Vad(config)
    sizes = iter(lambda: size, None) if isinstance(size, int) else size
    out = []
    for frame, ts in cut(ulaw, sizes):
        ev = vad.process(Media(track="inbound", chunk=1, timestamp=ts, payload=frame))
        if ev is not None:
            out.append((ev, ts + len(frame) // 8))
    return out


def telephone_band(x: F64) -> F64:
    """What a phone line passes: 300-3400 Hz (a brick-wall FFT filter is enough here)."""
    spectrum = np.fft.rfft(x)
    freq = np.fft.rfftfreq(len(x), 1 / RATE)
    spectrum[(freq < 300) | (freq > 3400)] = 0
    return np.fft.irfft(spectrum, len(x))


@pytest.fixture(params=["espeak", "espeak-phone-band", "synthetic"])
def voice(request: pytest.FixtureRequest) -> F64:
    if request.param == "synthetic":
        return trim_to_onset(synthetic_voice())
    x = espeak_voice()
    if request.param == "espeak-phone-band":
        x = telephone_band(x)
    return trim_to_onset(x)


# ---------------------------------------------------------------------------------- speech


def test_speech_starts_within_min_speech_plus_one_frame(voice: F64) -> None:
    ulaw = to_ulaw(np.concatenate([silence_ms(LEAD_MS), voice[: 2 * RATE], silence_ms(1000)]))
    events = run(ulaw)
    first, known_at = events[0]
    assert isinstance(first, SpeechStarted)
    assert LEAD_MS <= known_at <= LEAD_MS + CFG.min_speech_ms + 20
    assert LEAD_MS - 20 <= first.timestamp_ms <= LEAD_MS + 20  # the onset, not the detection


def test_speech_ends_after_hang_time(voice: F64) -> None:
    """With a hang longer than the speech's own pauses: one start, one end, right after."""
    quiet = frame_rms_dbfs(voice) < CFG.threshold_dbfs
    longest_pause, run_len = 0, 0
    for q in quiet:
        run_len = run_len + 1 if q else 0
        longest_pause = max(longest_pause, run_len)
    cfg = replace(CFG, hang_ms=longest_pause * 20 + 100)
    ulaw = to_ulaw(np.concatenate([silence_ms(LEAD_MS), voice, silence_ms(cfg.hang_ms + 500)]))
    events = run(ulaw, config=cfg)
    assert [type(e) for e, _ in events] == [SpeechStarted, SpeechEnded]
    (_, _), (end, known_at) = events
    loud = np.nonzero(~quiet)[0]
    speech_end = LEAD_MS + (loud[-1] + 1) * 20  # end of the last loud frame
    assert speech_end - 20 <= end.timestamp_ms <= speech_end + 20
    assert speech_end + cfg.hang_ms - 20 <= known_at <= speech_end + cfg.hang_ms + 20


def test_speech_ended_only_after_a_real_pause(voice: F64) -> None:
    """Default hang: every SpeechEnded is followed by at least hang_ms without loud frames."""
    signal = np.concatenate([silence_ms(LEAD_MS), voice, silence_ms(1000)])
    rms = frame_rms_dbfs(signal)
    events = run(to_ulaw(signal))
    kinds = [type(e) for e, _ in events]
    assert kinds[0] is SpeechStarted and kinds[-1] is SpeechEnded
    assert kinds == [SpeechStarted, SpeechEnded] * (len(kinds) // 2)  # strictly alternating
    for ev, known_at in events:
        if isinstance(ev, SpeechEnded):
            window = rms[ev.timestamp_ms // 20 : known_at // 20]
            assert len(window) * 20 >= CFG.hang_ms
            assert (window < CFG.threshold_dbfs).all() or ev is events[-1][0]


@pytest.mark.parametrize("size", [40, 80, 160, 240, 320, 400, 800])
def test_frame_length_agnostic(voice: F64, size: int) -> None:
    ulaw = to_ulaw(np.concatenate([silence_ms(LEAD_MS), voice[: 2 * RATE], silence_ms(1000)]))
    first, known_at = run(ulaw, size)[0]
    frame_ms = size // 8
    assert isinstance(first, SpeechStarted)
    assert LEAD_MS <= known_at <= LEAD_MS + CFG.min_speech_ms + 2 * frame_ms + 20
    assert abs(first.timestamp_ms - LEAD_MS) <= frame_ms + 20


def test_irregular_frame_sizes(voice: F64) -> None:
    ulaw = to_ulaw(np.concatenate([silence_ms(LEAD_MS), voice[: 2 * RATE], silence_ms(1000)]))
    rng = random.Random(7)
    sizes = iter(lambda: rng.randint(1, 400), None)
    first, known_at = run(ulaw, sizes)[0]
    assert isinstance(first, SpeechStarted)
    assert LEAD_MS <= known_at <= LEAD_MS + CFG.min_speech_ms + 2 * 50 + 20


def test_short_click_does_not_trigger() -> None:
    burst = synthetic_voice(1)[:800]  # 100 ms < min_speech_ms
    ulaw = to_ulaw(np.concatenate([silence_ms(500), burst, silence_ms(1000)]))
    assert run(ulaw) == []


def test_min_speech_is_configurable() -> None:
    x = trim_to_onset(synthetic_voice())
    ulaw = to_ulaw(np.concatenate([silence_ms(LEAD_MS), x, silence_ms(500)]))
    for min_ms in (0, 40, 160):
        _, known_at = run(ulaw, config=replace(CFG, min_speech_ms=min_ms))[0]
        assert LEAD_MS + min_ms <= known_at + 20 and known_at <= LEAD_MS + min_ms + 20


def test_threshold_is_configurable() -> None:
    quiet_speech = trim_to_onset(synthetic_voice(level_dbfs=-42), threshold=-50)
    ulaw = to_ulaw(np.concatenate([silence_ms(LEAD_MS), quiet_speech, silence_ms(500)]))
    assert run(ulaw) == []  # below the default -35 dBFS
    events = run(ulaw, config=replace(CFG, threshold_dbfs=-50))
    assert isinstance(events[0][0], SpeechStarted)


# -------------------------------------------------------------------- no false triggers


@pytest.mark.parametrize("code", [0xFF, 0x7F])
def test_digital_silence_never_triggers(code: int) -> None:
    assert run(bytes([code]) * 8000 * 5) == []


def test_line_noise_never_triggers() -> None:
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(RATE * 10) * dbfs_to_amp(-50)
    ulaw = to_ulaw(noise)
    rms, _ = ulaw_frame_stats(ulaw[:160])
    assert -53 < rms < -47  # really -50 dBFS line noise
    assert run(ulaw) == []


@pytest.mark.parametrize("level", [-30.0, -20.0, -10.0])
def test_loud_white_noise_never_triggers(level: float) -> None:
    rng = np.random.default_rng(4)
    ulaw = to_ulaw(rng.standard_normal(RATE * 10) * dbfs_to_amp(level))
    stats = [ulaw_frame_stats(ulaw[i : i + 160]) for i in range(0, len(ulaw), 160)]
    assert min(r for r, _ in stats) > CFG.threshold_dbfs  # loud enough: only the zcr rejects it
    # Single frames can dip below max_zcr (0.5 +- 0.04 per 20 ms frame); never for long.
    assert np.mean([z for _, z in stats]) > 0.45
    assert np.mean([z <= CFG.max_zcr for _, z in stats]) < 0.05
    assert run(ulaw) == []


def test_speech_over_line_noise_still_triggers(voice: F64) -> None:
    rng = np.random.default_rng(5)
    signal = np.concatenate([silence_ms(LEAD_MS), voice[: 2 * RATE], silence_ms(500)])
    signal = signal + rng.standard_normal(len(signal)) * dbfs_to_amp(-50)
    first, known_at = run(to_ulaw(signal))[0]
    assert isinstance(first, SpeechStarted)
    assert known_at <= LEAD_MS + CFG.min_speech_ms + 20


# -------------------------------------------------------------------------------- the API


def test_process_equals_process_frame_and_reset() -> None:
    x = trim_to_onset(synthetic_voice())
    ulaw = to_ulaw(np.concatenate([silence_ms(200), x]))
    a, b = Vad(), Vad()
    out_a, out_b = [], []
    for frame, ts in cut(ulaw, iter(lambda: 160, None)):
        out_a.append(a.process(Media("inbound", 1, ts, frame)))
        out_b.append(b.process_frame(frame, ts))
    assert out_a == out_b and any(out_a)
    assert a.in_speech
    a.reset()
    assert not a.in_speech
    assert a.process_frame(b"\xff" * 160, 0) is None


def test_empty_frame_is_ignored() -> None:
    vad = Vad(replace(CFG, min_speech_ms=0))
    assert vad.process_frame(b"", 0) is None and not vad.in_speech


def test_onset_gap_tolerance() -> None:
    """A dip no longer than onset_gap_ms inside the onset does not restart it."""
    loud = to_ulaw(trim_to_onset(synthetic_voice(1))[:480])  # 60 ms of voice
    gap = b"\xff" * 320  # 40 ms
    vad = Vad()
    events = []
    ts = 0
    for chunk in (loud, gap, loud):
        for i in range(0, len(chunk), 160):
            ev = vad.process_frame(chunk[i : i + 160], ts)
            ts += 20
            if ev is not None:
                events.append(ev)
    assert events == [SpeechStarted(0)]
    vad = Vad(replace(CFG, onset_gap_ms=20))  # the same dip now restarts the onset
    ts = 0
    for chunk in (loud, gap, loud):
        for i in range(0, len(chunk), 160):
            assert vad.process_frame(chunk[i : i + 160], ts) is None
            ts += 20


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold_dbfs": 1.0},
        {"threshold_dbfs": -121.0},
        {"max_zcr": 0.0},
        {"max_zcr": 1.5},
        {"min_speech_ms": -1},
        {"hang_ms": 1.5},
        {"onset_gap_ms": True},
    ],
)
def test_bad_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        VadConfig(**kwargs)  # type: ignore[arg-type]
