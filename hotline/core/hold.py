"""A held line: what the caller had not heard yet when it stopped, to be sent again. Sans-I/O.

``pause`` barge-in (:mod:`hotline.core.turns`) holds the line while the caller's sound may be an
interruption: the :class:`~hotline.core.pacer.Pacer` stops sending and ``clear`` empties Twilio's
buffer. If it was no interruption (a cough, "mm-hm") the line goes on *from where the caller
stopped hearing it*: the audio already sent but not played by then is in hand, because the pacer
notes every message it sends in a :class:`SentLog` (only the last few seconds: Twilio never
holds more than ``max_ahead_ms`` of ours)::

    log = SentLog(keep_bytes=16000)
    log.sent(utt, pos, payload)                  # every media message, at its stream position
    for utt, pos, data in log.unheard(played):   # what was sent past byte ``played``
        ...

:func:`replay_items` turns that audio and the end marks still pending into the pacer's outbound
items again: frames first, each end mark right after its utterance's last byte, under a new name
(``u<id>r<n>-end``: Twilio echoes every pending mark at a ``clear``, and an echo of the old name
must not count as the replayed line having played).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hotline.core.utterances import Utterance

__all__ = ["SentLog", "replay_items"]


class SentLog:
    """The media messages sent recently, with their stream positions."""

    __slots__ = ("_bytes", "_items", "keep_bytes")

    def __init__(self, keep_bytes: int) -> None:
        self.keep_bytes = keep_bytes
        self._items: deque[tuple[Utterance, int, bytes]] = deque()
        self._bytes = 0

    def sent(self, utt: Utterance, pos: int, data: bytes) -> None:
        """``data`` of ``utt`` went out as stream bytes ``pos .. pos + len(data)``."""
        items = self._items
        items.append((utt, pos, data))
        self._bytes += len(data)
        while self._bytes - len(items[0][2]) >= self.keep_bytes:
            self._bytes -= len(items.popleft()[2])

    def unheard(self, played: int) -> list[tuple[Utterance, int, bytes]]:
        """What was sent past stream byte ``played``, in order (a message cut at ``played``)."""
        out: list[tuple[Utterance, int, bytes]] = []
        for utt, pos, data in self._items:
            end = pos + len(data)
            if end <= played:
                continue
            if pos < played:
                data = data[played - pos :]
                pos = played
            out.append((utt, pos, data))
        return out

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


def replay_items(
    unheard: list[tuple[Utterance, int, bytes]],
    end_marks: Iterable[tuple[Utterance, int]],
    frame_bytes: int,
    round_no: int,
) -> list[tuple[Utterance, bytes | str]]:
    """The pacer's outbound items that send ``unheard`` again: frames of at most
    ``frame_bytes``, and each pending end mark (utterance, stream position) after the audio
    before its position, renamed for replay round ``round_no``."""
    marks = sorted(end_marks, key=lambda m: m[1])
    items: list[tuple[Utterance, bytes | str]] = []
    mi = 0
    for utt, pos, data in unheard:
        while mi < len(marks) and marks[mi][1] <= pos:
            mutt = marks[mi][0]
            items.append((mutt, f"u{mutt.id}r{round_no}-end"))
            mi += 1
        for i in range(0, len(data), frame_bytes):
            items.append((utt, data[i : i + frame_bytes]))
    for mutt, _pos in marks[mi:]:
        items.append((mutt, f"u{mutt.id}r{round_no}-end"))
    return items
