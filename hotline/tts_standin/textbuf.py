"""Pure helpers of the local voice: ElevenLabs-like text buffering, audio chunking and alignment.

No I/O, no clocks: the server (``hotline.tts_standin.session``) feeds text in and schedules what
comes out.

ElevenLabs buffers ``stream-input`` text and starts a generation once the buffer holds
``chunk_length_schedule[i]`` characters (default 120, 160, 250, 290; the last value repeats),
on ``flush`` and at end of stream. :class:`TextBuffer` reproduces that, cutting at the last
sentence end (or at least at a word boundary) so a generation never splits a word.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_SCHEDULE: tuple[int, ...] = (120, 160, 250, 290)
TRY_TRIGGER_MIN_CHARS = 50

_SENTENCE_END = re.compile(r"[.!?;:](?:[\"')\]]*)\s+")
_WORD_END = re.compile(r"\s+")


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


class TextBuffer:
    """Accumulates text and decides when a generation starts and what it covers.

    Args:
        schedule: characters that must accumulate before each successive generation.
        auto_mode: ElevenLabs ``auto_mode``: no schedule, every complete word run is generated
            as soon as it arrives.
    """

    def __init__(
        self, schedule: Sequence[int] = DEFAULT_SCHEDULE, *, auto_mode: bool = False
    ) -> None:
        if not schedule:
            schedule = DEFAULT_SCHEDULE
        self._schedule = tuple(int(x) for x in schedule)
        self._auto = auto_mode
        self._buf = ""
        self.generations = 0

    @property
    def pending(self) -> str:
        return self._buf

    def _threshold(self) -> int:
        return self._schedule[min(self.generations, len(self._schedule) - 1)]

    def add(self, text: str, *, try_trigger: bool = False) -> list[str]:
        """Append ``text``; return the segments whose generation starts now (maybe none)."""
        self._buf += text
        out: list[str] = []
        if self._auto:
            cut = self._word_cut(len(self._buf))
            if cut > 0:
                out.append(self._take(cut))
            return [s for s in out if _has_words(s)]
        while len(self._buf) >= self._threshold():
            cut = self._choose_cut(self._threshold())
            if cut <= 0:
                break
            out.append(self._take(cut))
        if try_trigger and not out and len(self._buf) >= TRY_TRIGGER_MIN_CHARS:
            cut = self._word_cut(len(self._buf))
            if cut > 0:
                out.append(self._take(cut))
        return [s for s in out if _has_words(s)]

    def flush(self) -> str:
        """Everything buffered (for ``flush`` and end of stream); empty if nothing speakable."""
        rest, self._buf = self._buf, ""
        if _has_words(rest):
            self.generations += 1
            return rest
        return ""

    def clear(self) -> None:
        self._buf = ""

    def _take(self, cut: int) -> str:
        seg, self._buf = self._buf[:cut], self._buf[cut:]
        self.generations += 1
        return seg

    def _word_cut(self, limit: int) -> int:
        """Index just after the last whitespace run at or before ``limit`` (0 if none)."""
        last = 0
        for m in _WORD_END.finditer(self._buf, 0, limit):
            if m.start() > 0:
                last = m.end()
        return last

    def _choose_cut(self, threshold: int) -> int:
        buf = self._buf
        # Prefer the last sentence end in the buffer, if it keeps the segment at least half the
        # threshold long (ElevenLabs sounds best on whole sentences).
        best = 0
        for m in _SENTENCE_END.finditer(buf):
            if m.end() >= threshold // 2:
                best = m.end()
        if best:
            return best
        cut = self._word_cut(len(buf))
        if cut >= threshold // 2:
            return cut
        if len(buf) >= 2 * threshold:  # one enormous word: give up waiting for a boundary
            return len(buf)
        return cut


def bytes_per_second(output_format: str) -> float:
    """Nominal byte rate of an ElevenLabs ``output_format`` (``mp3_44100_128`` -> 16000)."""
    parts = output_format.split("_")
    codec = parts[0]
    try:
        rate = int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"bad output_format {output_format!r}") from None
    if codec in ("mp3", "opus"):
        if len(parts) < 3:
            raise ValueError(f"bad output_format {output_format!r}")
        return int(parts[2]) * 1000 / 8
    if codec == "pcm":
        return rate * 2.0
    if codec in ("ulaw", "alaw"):
        return float(rate)
    raise ValueError(f"bad output_format {output_format!r}")


def cut_chunks(data: bytes, rng: random.Random, lo: int, hi: int) -> list[bytes]:
    """Cut ``data`` into pieces of random size in [lo, hi] (the last one may be shorter).

    Sizes are random, so pieces do not align to MP3 frames or (for PCM) even to samples, like
    ElevenLabs' own chunks.
    """
    lo = max(1, lo)
    hi = max(lo, hi)
    out: list[bytes] = []
    pos = 0
    n = len(data)
    while pos < n:
        size = rng.randint(lo, hi)
        out.append(data[pos : pos + size])
        pos += size
    return out


@dataclass(frozen=True)
class Alignment:
    chars: list[str]
    char_start_times_ms: list[int]
    chars_durations_ms: list[int]

    def to_json(self) -> dict[str, list[str] | list[int]]:
        return {
            "chars": self.chars,
            "charStartTimesMs": self.char_start_times_ms,
            "charDurationsMs": self.chars_durations_ms,  # ElevenLabs' spelling on the wire
        }


def chunk_alignments(
    text: str, duration_ms: float, chunk_durations_ms: Sequence[float]
) -> list[Alignment | None]:
    """Spread ``text`` over the audio and give each chunk the characters that start in it.

    Times are relative to the chunk (as ElevenLabs does); a chunk with no character gets None.
    """
    n = len(text)
    per_char = duration_ms / n if n else 0.0
    out: list[Alignment | None] = []
    t0 = 0.0
    i = 0
    for d in chunk_durations_ms:
        t1 = t0 + d
        chars: list[str] = []
        starts: list[int] = []
        durs: list[int] = []
        while i < n and i * per_char < t1:
            chars.append(text[i])
            starts.append(round(i * per_char - t0))
            durs.append(round(per_char))
            i += 1
        out.append(Alignment(chars, starts, durs) if chars else None)
        t0 = t1
    if i < n and out:  # rounding left a few characters: put them in the last chunk
        last = out[-1] or Alignment([], [], [])
        while i < n:
            last.chars.append(text[i])
            last.char_start_times_ms.append(round(i * per_char - (t0 - chunk_durations_ms[-1])))
            last.chars_durations_ms.append(round(per_char))
            i += 1
        out[-1] = last
    return out


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{_words(thousands)} thousand" + (f" {_words(rest)}" if rest else "")


def normalise_text(text: str) -> str:
    """What ElevenLabs' text normalisation speaks, as far as ``normalizedAlignment`` shows
    it: numbers become words ("12" -> "twelve"), so its characters differ from the text's."""
    return re.sub(r"\d{1,6}", lambda m: _words(int(m.group())), text)
