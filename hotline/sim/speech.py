"""The simulated caller's voice: eSpeak NG speech as 20 ms µ-law frames, made once per process."""

from __future__ import annotations

import functools

from hotline.core.ulaw import FRAME_BYTES, SILENCE

SPEECH_DBFS = -45.0  # a frame louder than this counts as speech (line silence is far below)

DEFAULT_CALLER_TEXT = "Hello? Sorry, can I ask you something about the tickets, please?"


def frame_is_speech(frame: bytes) -> bool:
    """Crude energy test used to measure how much of what was heard is speech."""
    from hotline.codec import ulaw_frame_stats

    rms_dbfs, _zcr = ulaw_frame_stats(frame)
    return rms_dbfs > SPEECH_DBFS


@functools.lru_cache(maxsize=16)
def caller_speech_frames(
    text: str = DEFAULT_CALLER_TEXT, voice: str = "en-us", rate_wpm: int = 170
) -> tuple[bytes, ...]:
    """``text`` spoken by eSpeak NG, resampled to 8 kHz, µ-law, cut into 160-byte frames.

    Leading silence is trimmed so the first frame is the speech onset (barge-in latency is
    measured from it); the last frame is padded with µ-law silence (0xFF).
    """
    from hotline.codec import Resampler, ulaw_encode
    from hotline.tts_standin.espeak import synthesize

    pcm = synthesize(text, voice=voice, rate_wpm=rate_wpm)
    rs = Resampler(pcm.sample_rate, 8000)
    ulaw = ulaw_encode(rs.process(pcm.samples) + rs.flush())
    frames = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1] + SILENCE * (FRAME_BYTES - len(frames[-1]))
    start = 0
    while start < len(frames) and not frame_is_speech(frames[start]):
        start += 1
    return tuple(frames[start:])


@functools.lru_cache(maxsize=16)
def caller_speech_payloads(text: str = DEFAULT_CALLER_TEXT) -> tuple[str, ...]:
    """The frames of :func:`caller_speech_frames`, base64-encoded once per process (media payloads)."""
    import base64

    return tuple(base64.b64encode(f).decode("ascii") for f in caller_speech_frames(text))


@functools.lru_cache(maxsize=16)
def caller_speech_end(text: str = DEFAULT_CALLER_TEXT) -> int:
    """Index of the last speech frame of :func:`caller_speech_frames` (the caller's end of
    speech: eSpeak's trailing silence is not speech). -1 if nothing in it is speech."""
    frames = caller_speech_frames(text)
    for i in range(len(frames) - 1, -1, -1):
        if frame_is_speech(frames[i]):
            return i
    return -1
