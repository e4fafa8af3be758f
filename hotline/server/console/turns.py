"""Each call's turn latencies, split by stage, for the console's call page.

The session hands over every :class:`~hotline.core.actions.TurnLatency` as its first frame
leaves (the same ``now`` the metrics observe); the log keeps them per CallSid, bounded, for live
calls and for the last ``keep`` calls. No words: stage times and the utterance they answered.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from hotline.core.actions import TurnLatency

__all__ = ["STAGES", "TurnLog", "stage_groups", "stages_from_marks"]

#: The bar's parts, in order: the console's five stages from the core's seven.
STAGES = ("silence", "recogniser", "brain", "voice", "hotline")


def stage_groups(stages: dict[str, float]) -> dict[str, float]:
    """Seconds per console stage from :meth:`TurnLatency.stages` (``model`` is the brain;
    dispatch, text to TTS and playout are hotline's own), plus ``total``."""
    return {
        "silence": stages["silence"],
        "recogniser": stages["recogniser"],
        "brain": stages["model"],
        "voice": stages["voice"],
        "hotline": stages["hotline"],
        "total": stages["total"],
    }


#: A record's marks (``latency_ms`` of a call record's line: ms from the caller's end of
#: speech), in order.
_MARKS = ("silence", "final", "handed", "first_token", "tts_started", "first_audio", "sent")


def stages_from_marks(marks: dict[str, float]) -> dict[str, float] | None:
    """Milliseconds per console stage (and ``total``) from a call record's ``latency_ms``
    marks; None if a mark is missing or not a number."""
    try:
        at = [0.0] + [float(marks[name]) for name in _MARKS]
    except (KeyError, TypeError, ValueError):
        return None
    step = {name: max(at[i + 1] - at[i], 0.0) for i, name in enumerate(_MARKS)}
    ms = {
        "silence": step["silence"],
        "recogniser": step["final"],
        "brain": step["first_token"],
        "voice": step["first_audio"],
        # dispatch (final -> handed), text to TTS, playout (first audio -> frame sent)
        "hotline": step["handed"] + step["tts_started"] + step["sent"],
        "total": max(at[-1], 0.0),
    }
    return {name: round(value, 1) for name, value in ms.items()}


class TurnLog:
    """Turn latencies by CallSid: at most ``turns`` per call, ``keep`` calls (oldest first out).

    Raises:
        ValueError: a bound below 1.
    """

    def __init__(self, keep: int = 200, turns: int = 200) -> None:
        if keep < 1 or turns < 1:
            raise ValueError("keep and turns must be >= 1")
        self.keep = keep
        self.turns = turns
        self._calls: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._hearing: OrderedDict[str, str] = OrderedDict()

    def hearing(self, call_sid: str, text: str) -> None:
        """The recogniser's interim words of ``call_sid``'s current turn (``""``: none, the
        turn was committed). Held for the live view only, like the transcript: never logged."""
        if not text:
            self._hearing.pop(call_sid, None)
            return
        self._hearing[call_sid] = text[:500]
        self._hearing.move_to_end(call_sid)
        while len(self._hearing) > self.keep:
            self._hearing.popitem(last=False)

    def heard_so_far(self, call_sid: str) -> str:
        """The current turn's interim words (``""``: none)."""
        return self._hearing.get(call_sid, "")

    def add(self, call_sid: str, action: TurnLatency, now: float, started_at: float) -> None:
        """The reply to a turn of ``call_sid`` left at ``now`` (the call started at
        ``started_at``, same clock)."""
        turns = self._calls.get(call_sid)
        if turns is None:
            turns = self._calls[call_sid] = []
            while len(self._calls) > self.keep:
                self._calls.popitem(last=False)
        if len(turns) >= self.turns:
            del turns[0]
        stages = stage_groups(action.stages(now))
        turns.append(
            {
                "utterance_id": action.utterance_id,
                "at": round(max(action.ended_at - started_at, 0.0), 3),
                "ms": {name: round(seconds * 1000.0, 1) for name, seconds in stages.items()},
            }
        )

    def get(self, call_sid: str) -> list[dict[str, Any]]:
        """The call's turns, oldest first (``[]``: none known)."""
        return list(self._calls.get(call_sid, ()))
