"""Twilio's playback buffer as a pure model: media in, marks due and underruns out.

Twilio plays a bidirectional stream's outbound audio at 8 kHz and echoes a ``mark`` only once
the audio queued before it has played (at once when nothing is queued); ``clear`` drops the
buffer and echoes every pending mark (shared/docs/protocols.md §1). This class is that buffer
and nothing else: no sockets, no clock. The owner calls :meth:`tick` once per 20 ms and sends
the mark echoes it returns. Both the caller simulator and the tests' Twilio side use it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from hotline.core.ulaw import FRAME_BYTES, SILENCE_FRAME

__all__ = ["Last", "Playback", "Tick"]


class Last(Enum):
    """The kind of the last message received (an underrun counts only after media)."""

    NOTHING = "nothing"
    MEDIA = "media"
    MARK = "mark"
    CLEAR = "clear"


@dataclass(frozen=True)
class Tick:
    """One 20 ms of playback.

    ``marks`` are due before this frame's audio (their audio finished in an earlier frame);
    ``frame`` is 160 bytes (silence-padded); ``got`` bytes of it were queued audio;
    ``underrun_bytes`` are the bytes that were missing while the stream was mid-utterance
    (the last message was media, no mark after it yet).
    """

    frame: bytes
    got: int
    marks: tuple[str, ...] = ()
    underrun_bytes: int = 0


@dataclass
class Playback:
    """The outbound buffer of one stream: audio (``bytes``) and mark names (``str``) in order."""

    buf: deque[bytes | str] = field(default_factory=deque)
    buffered_bytes: int = 0
    last: Last = Last.NOTHING
    _deferred: list[str] = field(default_factory=list)

    def media(self, audio: bytes) -> None:
        """Queue received audio."""
        if not audio:
            return
        self.buf.append(audio)
        self.buffered_bytes += len(audio)
        self.last = Last.MEDIA

    def mark(self, name: str) -> bool:
        """Queue a mark; True when it is due at once (nothing queued before it).

        A mark due at once is not queued: the owner echoes it now.
        """
        self.last = Last.MARK
        if self.buffered_bytes == 0 and not self._deferred:
            self.buf.clear()
            return True
        self.buf.append(name)
        return False

    def clear(self) -> list[str]:
        """Drop the buffer; returns every pending mark (Twilio echoes them all)."""
        pending = self._deferred + [x for x in self.buf if isinstance(x, str)]
        self._deferred = []
        self.buf.clear()
        self.buffered_bytes = 0
        self.last = Last.CLEAR
        return pending

    def tick(self) -> Tick:
        """Play 20 ms: the marks whose audio finished, then up to 160 bytes of audio."""
        due = self._deferred
        self._deferred = []
        while self.buf and isinstance(self.buf[0], str):  # reached with nothing before them
            head = self.buf.popleft()
            assert isinstance(head, str)
            due.append(head)
        need = FRAME_BYTES
        parts: list[bytes] = []
        while need and self.buf:
            head = self.buf[0]
            if isinstance(head, str):
                self.buf.popleft()
                self._deferred.append(head)  # its audio ends within this frame
                continue
            if len(head) <= need:
                self.buf.popleft()
                parts.append(head)
                need -= len(head)
            else:
                parts.append(head[:need])
                self.buf[0] = head[need:]
                need = 0
        got = FRAME_BYTES - need
        self.buffered_bytes -= got
        frame = b"".join(parts) + SILENCE_FRAME[:need] if got else SILENCE_FRAME
        starved = need and self.last is Last.MEDIA and not self._deferred
        return Tick(frame, got, tuple(due), need if starved else 0)
