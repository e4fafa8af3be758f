"""What the caller actually heard of an interrupted line. Sans-I/O.

When a line is cut (barge-in, an interrupting digit or ``say``), the brain should be told what the
caller heard, not what hotline meant to say: ConversationRelay's ``interrupt`` carries
``utteranceUntilInterrupt`` and ``durationUntilInterruptMs``, and an LLM's history should keep only
the heard part of its reply. Two facts make that possible:

* the playhead: how many milliseconds of the utterance Twilio has played, which
  :class:`hotline.core.call.Call` knows from its byte accounting corrected by mark echoes;
* ElevenLabs' per-character alignment, sent with each audio chunk and *relative to that chunk*
  (``protocols.md`` §2.1): placing every chunk at the utterance time where its audio begins puts
  every character of the text on the utterance's own timeline.

:class:`HeardText` collects both for one utterance::

    heard = HeardText("Wren is on the road this spring.")
    heard.add_chunk(event.alignment, audio_ms_before_chunk)   # per TTS audio chunk
    heard.heard(played_ms)                                    # -> "Wren is on the"

A word counts as heard once its first character has started playing. Alignment may be missing on
some chunks (the real service sends ``null`` now and then): then the characters of those chunks
cannot be placed, and the estimate falls back to the share of the utterance's audio that played,
applied to the text and rounded to a word end. Both paths are deterministic.
"""

from __future__ import annotations

from hotline.core.events import Alignment

__all__ = ["HeardText"]


class HeardText:
    """The text of one utterance on its audio timeline.

    Args:
        text: the utterance's text so far (a streamed reply grows with :meth:`add_text`).
    """

    __slots__ = ("_aligned", "_audio_ms", "_complete", "_starts", "_text")

    def __init__(self, text: str = "") -> None:
        self._text = text
        self._starts: list[float] = []  # start time (ms, utterance timeline) of aligned chars
        self._aligned = ""  # the aligned characters, in order
        self._complete = True  # every chunk so far carried an alignment
        self._audio_ms = 0.0

    @property
    def text(self) -> str:
        return self._text

    @property
    def audio_ms(self) -> float:
        """Audio of the utterance produced so far (the end of the last chunk placed)."""
        return self._audio_ms

    def add_text(self, text: str) -> None:
        """Append a streamed piece of the utterance's text (kept verbatim, spaces included)."""
        self._text += text

    def add_chunk(
        self, alignment: Alignment | None, offset_ms: float, audio_ms: float = 0.0
    ) -> None:
        """Place one TTS audio chunk.

        Args:
            alignment: the chunk's alignment (``None``: the service sent none for this chunk).
            offset_ms: where the chunk's audio begins on the utterance timeline (the audio the
                utterance had produced before it).
            audio_ms: the chunk's own audio length, when known (for the fallback estimate).
        """
        end = offset_ms + max(audio_ms, 0.0)
        if alignment is None or not alignment.chars:
            # An audio chunk with no alignment: its characters cannot be placed. A chunk with an
            # empty alignment and no audio (a keep-alive) changes nothing.
            if alignment is None and audio_ms > 0:
                self._complete = False
        else:
            starts = alignment.char_start_times_ms
            for i, char in enumerate(alignment.chars):
                start = offset_ms + (
                    starts[i] if i < len(starts) else (starts[-1] if starts else 0)
                )
                self._starts.append(start)
                self._aligned += char
            if alignment.char_durations_ms and alignment.char_start_times_ms:
                end = max(
                    end,
                    offset_ms + alignment.char_start_times_ms[-1] + alignment.char_durations_ms[-1],
                )
        if end > self._audio_ms:
            self._audio_ms = end

    def heard(self, played_ms: float, *, total_ms: float | None = None) -> str:
        """The text the caller heard after ``played_ms`` of the utterance played.

        Args:
            played_ms: audio of this utterance played by the cut (from the playhead).
            total_ms: the utterance's whole audio length, if known (used by the fallback);
                defaults to the audio produced so far.

        Returns:
            A prefix of the utterance's text ending at a word end, without trailing spaces;
            the whole text if everything played, ``""`` if nothing did.
        """
        text = self._text
        if played_ms <= 0 or not text:
            return ""
        if self._complete and self._aligned:
            count = 0
            for start in self._starts:
                if start < played_ms:
                    count += 1
                else:
                    break
            prefix = self._aligned[:count]
            # The alignment spells the text we sent; map its prefix back onto the text itself
            # (a streamed text may hold more than has been aligned yet).
            cut = _match_prefix(text, prefix)
        else:
            total = total_ms if total_ms is not None and total_ms > 0 else self._audio_ms
            if total <= 0:
                return ""
            share = min(played_ms / total, 1.0)
            cut = round(len(text) * share)
        return _to_word_end(text, cut)


def _match_prefix(text: str, aligned: str) -> int:
    """Length of ``text``'s prefix that the aligned characters cover (ignoring white space
    differences: the service may collapse or add spaces)."""
    i = 0
    n = len(text)
    for char in aligned:
        if char.isspace():
            while i < n and text[i].isspace():
                i += 1
            continue
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] == char:
            i += 1
        elif i < n:
            # A character the service changed (normalisation): count it as covering one.
            i += 1
    return i


def _to_word_end(text: str, cut: int) -> str:
    """Extend a cut inside a word to that word's end (a started word was heard), then trim."""
    n = len(text)
    cut = max(0, min(cut, n))
    if 0 < cut < n and not text[cut - 1].isspace():
        while cut < n and not text[cut].isspace():
            cut += 1
    return text[:cut].rstrip()
