"""Where Twilio's playback is, by our estimate. Sans-I/O: the time is passed in.

Twilio buffers what we send and plays it in order at 8 bytes (µ-law samples) per millisecond.
:class:`Playhead` models that buffer from three numbers: the bytes sent so far, and a *base*:
Twilio had played up to byte ``base_pos`` at time ``base_time``. Playback (re)starts when a
frame reaches an empty buffer (:meth:`restart`); an echoed mark says exactly where Twilio was
(:meth:`echo`); a ``clear`` empties it (:meth:`clear`). Between those, the estimate advances
with the clock and never passes what was sent::

    head = Playhead()
    head.restart(now)                 # the buffer was empty: this frame starts playing now
    head.sent(uid, len(frame))        # a frame of utterance ``uid`` went out
    head.ahead(now)                   # bytes queued at Twilio, not played yet
    head.echo(pos, now)               # a mark placed at byte ``pos`` echoed
    head.played_ms(uid, now)          # how much of utterance ``uid`` the caller has heard

The per-utterance spans answer "how much of this line was heard", also after a ``clear`` cut
it (the span is frozen at the cut), for the last :data:`SPANS_KEPT` utterances. A line that was
held and is sent again from where the caller stopped hearing it (``pause`` barge-in) gets a
second span; what was heard of it is the sum.
"""

from __future__ import annotations

from collections import OrderedDict

from hotline.core.ulaw import BYTES_PER_MS

__all__ = ["SPANS_KEPT", "Playhead"]

_BYTES_PER_S = 8000
#: Utterances whose played span is remembered.
SPANS_KEPT = 32


class Playhead:
    """The playback estimate of one Twilio stream (see the module docstring)."""

    __slots__ = ("_spans", "base_pos", "base_time", "sent_pos")

    def __init__(self) -> None:
        self.sent_pos = 0
        self.base_pos = 0
        self.base_time = 0.0
        # uid -> [first byte, end byte, first, end, ...]: its audio's stretches in the stream.
        self._spans: OrderedDict[int, list[int]] = OrderedDict()

    def played(self, now: float) -> int:
        """Bytes played by ``now`` (never more than were sent)."""
        elapsed = now - self.base_time
        pos = self.base_pos + (int(elapsed * _BYTES_PER_S) if elapsed > 0 else 0)
        return pos if pos < self.sent_pos else self.sent_pos

    def ahead(self, now: float) -> int:
        """Bytes queued at Twilio and not yet played at ``now``."""
        return self.sent_pos - self.played(now)

    def drained_at(self) -> float:
        """When Twilio's buffer runs (ran) empty if nothing more is sent."""
        return self.base_time + (self.sent_pos - self.base_pos) / _BYTES_PER_S

    def restart(self, now: float) -> None:
        """Playback (re)starts at ``now`` from what is sent next (the buffer is empty)."""
        self.base_pos = self.sent_pos
        self.base_time = now

    def sent(self, utterance_id: int, n: int) -> None:
        """``n`` bytes of utterance ``utterance_id`` went out after everything sent before."""
        span = self._spans.get(utterance_id)
        if span is None:
            self._spans[utterance_id] = [self.sent_pos, self.sent_pos + n]
            if len(self._spans) > SPANS_KEPT:
                self._spans.popitem(last=False)
        elif span[-1] == self.sent_pos:
            span[-1] += n
        else:  # sent again after a clear (a held line resumed): a new stretch
            span += (self.sent_pos, self.sent_pos + n)
        self.sent_pos += n

    def echo(self, pos: int, now: float) -> None:
        """A mark placed after byte ``pos`` echoed at ``now``: Twilio had played exactly that."""
        self.base_pos = pos
        self.base_time = now

    def clear(self, now: float) -> None:
        """Twilio's buffer was cleared at ``now``: what was not played by then never will be."""
        cut = self.played(now)
        for span in self._spans.values():
            for i in range(0, len(span), 2):
                if span[i + 1] > cut:
                    span[i + 1] = max(span[i], cut)
        self.restart(now)

    def played_ms(self, utterance_id: int, now: float) -> float | None:
        """Milliseconds of utterance ``utterance_id`` played by ``now`` (None: not remembered,
        or nothing of it sent yet)."""
        span = self._spans.get(utterance_id)
        if span is None:
            return None
        played = self.played(now)
        total = 0
        for i in range(0, len(span), 2):
            first, end = span[i], span[i + 1]
            total += min(max(played, first), end) - first
        return total / BYTES_PER_MS
