"""A call's transcript, bounded. Sans-I/O: times are passed in.

What the caller said (each final turn), what hotline said (each utterance's text), and, for a
line the caller cut, what they heard of it::

    t = Transcript(started_at=wall_clock)
    t.caller("What are the tour dates?", at)        # a CallerTurn
    t.hotline(uid, "Wren is on the road ...", at)    # an utterance that started
    t.heard(uid, "Wren is on", 1180.0, at)           # LineInterrupted
    t.as_dict()                                      # JSON for GET /calls/{sid}/transcript

Bounded twice: at most ``max_entries`` entries (the oldest go first, counted in ``dropped``) and
at most ``max_chars`` characters per entry (longer text is cut, marked ``truncated``). A
transcript holds what callers said, so it is never logged: the shell logs lengths only.
:class:`Transcripts` keeps the transcripts of recently ended calls, also bounded.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

__all__ = ["Entry", "Speaker", "Transcript", "Transcripts"]


class Speaker(enum.Enum):
    """Who an entry is about."""

    CALLER = "caller"  # a caller's turn (the final transcript)
    HOTLINE = "hotline"  # a line hotline said (or began to say)
    HEARD = "heard"  # what the caller heard of a line they cut


@dataclass(frozen=True, slots=True)
class Entry:
    """One transcript line.

    Attributes:
        speaker: who.
        text: what (cut to the transcript's ``max_chars``).
        at: seconds since the call started.
        utterance_id: the utterance (hotline and heard entries), else None.
        heard_ms: audio of the line played before the cut (heard entries), else None.
        truncated: ``text`` was longer and was cut.
    """

    speaker: Speaker
    text: str
    at: float
    utterance_id: int | None = None
    heard_ms: float | None = None
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "speaker": self.speaker.value,
            "text": self.text,
            "at": round(self.at, 3),
        }
        if self.utterance_id is not None:
            out["utterance_id"] = self.utterance_id
        if self.heard_ms is not None:
            out["heard_ms"] = round(self.heard_ms, 1)
        if self.truncated:
            out["truncated"] = True
        return out


class Transcript:
    """One call's transcript (see the module docstring).

    Args:
        started_at: the shell's clock reading when the call started (entry times are relative
            to it).
        max_entries: entries kept (1..100000).
        max_chars: characters kept per entry (1..100000).

    Raises:
        ValueError: a bound out of range.
    """

    def __init__(self, started_at: float, *, max_entries: int = 200, max_chars: int = 2000) -> None:
        if not 1 <= max_entries <= 100_000 or not 1 <= max_chars <= 100_000:
            raise ValueError("transcript bounds must be within 1..100000")
        self.started_at = started_at
        self.max_chars = max_chars
        self.entries: deque[Entry] = deque(maxlen=max_entries)
        #: Entries pushed out by the bound.
        self.dropped = 0
        self.ended = False

    def __len__(self) -> int:
        return len(self.entries)

    def caller(self, text: str, at: float) -> None:
        """The caller's turn ``text`` (its final transcript) ended at ``at``."""
        self._add(Speaker.CALLER, text, at, None, None)

    def hotline(self, utterance_id: int, text: str, at: float) -> None:
        """Hotline spoke (or began to speak) utterance ``utterance_id``."""
        self._add(Speaker.HOTLINE, text, at, utterance_id, None)

    def heard(self, utterance_id: int, text: str, heard_ms: float, at: float) -> None:
        """The caller cut utterance ``utterance_id`` after hearing ``text`` (``heard_ms``)."""
        self._add(Speaker.HEARD, text, at, utterance_id, max(heard_ms, 0.0))

    def _add(
        self,
        speaker: Speaker,
        text: str,
        at: float,
        utterance_id: int | None,
        heard_ms: float | None,
    ) -> None:
        truncated = len(text) > self.max_chars
        if truncated:
            text = text[: self.max_chars]
        entries = self.entries
        if len(entries) == entries.maxlen:
            self.dropped += 1
        entries.append(
            Entry(speaker, text, max(at - self.started_at, 0.0), utterance_id, heard_ms, truncated)
        )

    def chars(self) -> int:
        """Characters held (for logs: lengths only)."""
        return sum(len(e.text) for e in self.entries)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entries": [e.as_dict() for e in self.entries],
            "dropped": self.dropped,
            "ended": self.ended,
        }


class Transcripts:
    """The transcripts of the last ``keep`` ended calls, by CallSid (oldest forgotten first).

    Raises:
        ValueError: ``keep`` below 0.
    """

    def __init__(self, keep: int = 100) -> None:
        if keep < 0:
            raise ValueError("keep must be >= 0")
        self.keep = keep
        self._ended: OrderedDict[str, Transcript] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ended)

    def ended(self, call_sid: str, transcript: Transcript) -> None:
        """Call ``call_sid`` ended: keep its transcript (a later call with the same SID wins)."""
        transcript.ended = True
        self._ended.pop(call_sid, None)
        if self.keep == 0:
            return
        self._ended[call_sid] = transcript
        while len(self._ended) > self.keep:
            self._ended.popitem(last=False)

    def get(self, call_sid: str) -> Transcript | None:
        return self._ended.get(call_sid)
