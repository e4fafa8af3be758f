"""The artist-hotline caller phrases the ear is tested and benchmarked on, spoken by eSpeak NG.

Generated, never downloaded: eSpeak NG (hotline.tts_standin.espeak) at 22.05 kHz, resampled to
8 kHz by :class:`hotline.codec.Resampler` and µ-law encoded, as a caller's audio reaches
hotline from Twilio.
"""

from __future__ import annotations

import functools

from hotline.codec import Resampler, ulaw_encode

__all__ = ["FREE_SENTENCES", "KEYWORDS", "PHRASES", "VOICES", "phrase_ulaw"]

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

#: What callers say that no script lists: questions and remarks in everyday words (the open-
#: vocabulary ear is measured on these; the grammar ear cannot hear them).
FREE_SENTENCES: tuple[str, ...] = (
    "What are the tour dates this spring?",
    "I was wondering whether the band is playing in Chicago next month.",
    "The train from Boston was forty minutes late.",
    "Wait, stop, tell me about tickets instead.",
    "Is there parking near the stadium?",
    "My daughter loves the second song on the record.",
    "How much does a ticket cost for two people?",
    "Can I bring my camera to the show?",
    "We are driving down from Seattle on Friday.",
    "Please send me an email with the details.",
    "The weather was terrible last night.",
    "Do you sell gift cards at the door?",
    "I lost my wallet somewhere in the parking lot.",
    "What time do the doors open on Saturday?",
)

#: eSpeak NG voices the ear is measured with (American, British and Caribbean English; a
#: female variant).
VOICES: tuple[str, ...] = ("en-us", "en", "en-029", "en-us+f3")


@functools.lru_cache(maxsize=64)
def phrase_ulaw(text: str, rate_wpm: int = 175, voice: str = "en-us") -> bytes:
    """``text`` spoken by eSpeak NG (``voice``) as 8 kHz µ-law."""
    from hotline.tts_standin.espeak import synthesize

    pcm = synthesize(text, voice=voice, rate_wpm=rate_wpm)
    resampler = Resampler(pcm.sample_rate, 8000)
    return ulaw_encode(resampler.process(pcm.samples) + resampler.flush())
