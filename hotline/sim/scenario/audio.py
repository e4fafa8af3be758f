"""What a scenario's caller sends: its steps' audio as 20 ms µ-law frames.

eSpeak NG speech for ``say`` (the caller's voice and rate, parts joined by silent gaps), a
recorded caller for ``wav`` (16-bit PCM WAV at any rate, any channel count, downmixed and
resampled to 8 kHz), generated coughs and line noise (:mod:`hotline.sim.noise`).
"""

from __future__ import annotations

import array
import base64
import functools
import wave
from pathlib import Path

from hotline.core.ulaw import FRAME_BYTES, SILENCE
from hotline.sim.scenario.model import ScenarioError, Step

__all__ = ["StepAudio", "step_audio", "wav_ulaw"]


class StepAudio:
    """A step's frames (base64 media payloads) and the index of its last speech frame."""

    def __init__(self, ulaw: bytes, *, trim: bool = True) -> None:
        from hotline.sim.speech import frame_is_speech

        ulaw += SILENCE * (-len(ulaw) % FRAME_BYTES)
        frames = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
        speech = [frame_is_speech(f) for f in frames]
        start = speech.index(True) if trim and True in speech else 0
        frames, speech = frames[start:], speech[start:]
        self.frames = tuple(frames)
        self.payloads = tuple(base64.b64encode(f).decode("ascii") for f in frames)
        #: the caller's end of speech (-1: nothing loud enough to be speech)
        self.speech_end = max((i for i, s in enumerate(speech) if s), default=-1)

    @property
    def ms(self) -> int:
        return len(self.frames) * 20


@functools.lru_cache(maxsize=64)
def _spoken(text: str, voice: str, rate: int) -> bytes:
    from hotline.codec import Resampler, ulaw_encode
    from hotline.tts_standin.espeak import synthesize

    pcm = synthesize(text, voice=voice, rate_wpm=rate)
    rs = Resampler(pcm.sample_rate, 8000)
    return ulaw_encode(rs.process(pcm.samples) + rs.flush())


def _trim_silence(ulaw: bytes) -> bytes:
    """Drop the leading and trailing non-speech frames of one part (eSpeak pads both ends)."""
    from hotline.sim.speech import frame_is_speech

    frames = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    loud = [i for i, f in enumerate(frames) if len(f) == FRAME_BYTES and frame_is_speech(f)]
    if not loud:
        return ulaw
    return b"".join(frames[loud[0] : loud[-1] + 1])


def wav_ulaw(path: Path) -> bytes:
    """A recorded caller: a 16-bit PCM WAV at any rate (channels averaged) as 8 kHz µ-law.

    Raises:
        ScenarioError: unreadable, not 16-bit PCM, or empty.
    """
    from hotline.codec import Resampler, ulaw_encode

    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            data = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise ScenarioError(f"{path}: not a readable WAV file: {exc}") from None
    if width != 2:
        raise ScenarioError(f"{path}: {8 * width}-bit samples; expected 16-bit PCM")
    samples = array.array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if channels > 1:
        samples = array.array(
            "h",
            (
                sum(samples[i : i + channels]) // channels
                for i in range(0, len(samples) - channels + 1, channels)
            ),
        )
    if not samples:
        raise ScenarioError(f"{path}: no audio")
    if rate == 8000:
        return ulaw_encode(samples.tobytes())
    rs = Resampler(rate, 8000)
    return ulaw_encode(rs.process(samples.tobytes()) + rs.flush())


def step_audio(step: Step, voice: str, rate: int) -> StepAudio | None:
    """The audio ``step`` sends (None: a step that sends none).

    Raises:
        ScenarioError: a WAV that cannot be read.
        hotline.tts_standin.espeak.SynthesisError: eSpeak NG cannot speak (no such voice).
    """
    if step.action == "say":
        gap = SILENCE * (step.gap_ms * 8)
        parts = [_trim_silence(_spoken(p, voice, rate)) for p in step.value]
        return StepAudio(gap.join(parts) + SILENCE * 1600)  # eSpeak's trailing 200 ms kept
    if step.action == "wav":
        return StepAudio(wav_ulaw(step.value))
    if step.action == "cough":
        from hotline.sim.noise import cough

        return StepAudio(cough(int(step.value), seed=1, smooth=0.9, buzz_hz=120), trim=False)
    if step.action == "noise":
        from hotline.sim.noise import line_noise

        return StepAudio(line_noise(int(step.value), seed=1, dbfs=step.noise_dbfs), trim=False)
    return None
