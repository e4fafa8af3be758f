"""The artist-hotline caller phrases the ear is tested and benchmarked on, spoken by eSpeak NG.

Generated, never downloaded: eSpeak NG (hotline.tts_standin.espeak) at 22.05 kHz, resampled to
8 kHz by :class:`hotline.codec.Resampler` and µ-law encoded, as a caller's audio reaches
hotline from Twilio.
"""

from __future__ import annotations

import functools

from hotline.codec import Resampler, ulaw_encode

__all__ = ["KEYWORDS", "PHRASES", "phrase_ulaw"]

#: What callers of an artist hotline ask.
PHRASES: tuple[str, ...] = (
    "What are the tour dates?",
    "Where can I buy merch?",
    "Tell me about the new album",
    "I want to talk to a person",
    "Goodbye",
    "Can you repeat that?",
)

#: The key words of :data:`PHRASES` (what a keyword-biased recogniser is told to listen for).
KEYWORDS: tuple[str, ...] = ("tour", "dates", "merch", "album", "person", "goodbye", "repeat")


@functools.lru_cache(maxsize=64)
def phrase_ulaw(text: str, rate_wpm: int = 175) -> bytes:
    """``text`` spoken by eSpeak NG (en-us) as 8 kHz µ-law."""
    from hotline.tts_standin.espeak import synthesize

    pcm = synthesize(text, voice="en-us", rate_wpm=rate_wpm)
    resampler = Resampler(pcm.sample_rate, 8000)
    return ulaw_encode(resampler.process(pcm.samples) + resampler.flush())
