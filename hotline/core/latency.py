"""Voice-to-voice timing of a call's turns. Sans-I/O: every time is a ``now`` passed in.

A caller turn's timestamps (:class:`TurnTimes`) wait in :class:`Latencies` until a reply claims
them; the reply's first frame then reports :class:`~hotline.core.actions.FirstFrame` and, for
a claimed turn, :class:`~hotline.core.actions.TurnLatency` (:func:`first_frame`)::

    lat = Latencies()
    lat.speech_ended(now - behind)               # the VAD: the caller stopped (media clock)
    ended_at = lat.turn_ended(turn_ended_event)  # the turn detector ended the turn
    lat.handed(now)                              # the shell handed it to the brain
    utt.latency = lat.claim(first_token_at)      # the reply to it was queued
    actions += first_frame(..., utt.latency, message_index, now)
"""

from __future__ import annotations

from hotline.core.actions import Action, FirstFrame, TurnLatency, UtteranceSource
from hotline.core.turns import TurnEnded

__all__ = ["Latencies", "TurnTimes", "first_frame"]


class TurnTimes:
    """The timestamps of one caller turn, until its reply's first frame goes out."""

    __slots__ = ("ended_at", "final_at", "first_token_at", "handed_at", "silence_at")

    def __init__(self, ended_at: float, silence_at: float, final_at: float) -> None:
        self.ended_at = ended_at
        self.silence_at = silence_at
        self.final_at = final_at
        self.handed_at = final_at
        self.first_token_at: float | None = None


class Latencies:
    """The call's last caller turn: waiting for its reply, and handed to the brain."""

    __slots__ = ("_last", "_speech_ended_at", "_waiting")

    def __init__(self) -> None:
        self._speech_ended_at: float | None = None  # shell-clock end of the caller's speech
        self._waiting: TurnTimes | None = None  # the last turn, until a reply claims it
        self._last: TurnTimes | None = None

    def speech_ended(self, at: float) -> None:
        """The VAD heard the caller stop at ``at`` (the media clock mapped onto ``now``)."""
        self._speech_ended_at = at

    def turn_ended(self, event: TurnEnded) -> float:
        """The turn is over: keep its times for the reply. Returns when the caller stopped."""
        ended_at = self._speech_ended_at
        if ended_at is None or ended_at > event.silence_at:
            ended_at = event.silence_at
        self._speech_ended_at = None
        self._waiting = self._last = TurnTimes(ended_at, event.silence_at, event.final_at)
        return ended_at

    @property
    def waiting(self) -> bool:
        """The last turn waits for a reply (none was queued since)."""
        return self._waiting is not None

    def handed(self, now: float) -> None:
        """The last turn was handed to the brain at ``now`` (before its first token)."""
        last = self._last
        if last is not None and last.first_token_at is None:
            last.handed_at = now

    def forget(self) -> None:
        """What follows answers something else (a key): no reply claims the last turn."""
        self._waiting = None

    def claim(self, first_token_at: float | None) -> TurnTimes | None:
        """A reply was queued: the waiting turn's times are its (``None``: none waits)."""
        times = self._waiting
        if times is not None:
            self._waiting = None
            if first_token_at is not None:
                times.first_token_at = first_token_at
        return times


def first_frame(
    utterance_id: int,
    source: UtteranceSource,
    queued_at: float,
    tts_started_at: float | None,
    first_audio_at: float | None,
    times: TurnTimes | None,
    message_index: int,
    now: float,
) -> list[Action]:
    """The actions for an utterance's first frame, pumped at ``now`` as message
    ``message_index``: its :class:`FirstFrame`, and the :class:`TurnLatency` of the caller turn
    it answers (``times``, if any). A stage the utterance skipped (no TTS) took no time."""
    tts_at = tts_started_at if tts_started_at is not None else now
    audio_at = first_audio_at if first_audio_at is not None else now
    out: list[Action] = [
        FirstFrame(utterance_id, source, message_index, queued_at, tts_at, audio_at, now)
    ]
    if times is not None:
        first_token = times.first_token_at if times.first_token_at is not None else tts_at
        out.append(
            TurnLatency(
                utterance_id=utterance_id,
                message_index=message_index,
                ended_at=times.ended_at,
                silence_at=times.silence_at,
                final_at=times.final_at,
                handed_at=times.handed_at,
                first_token_at=first_token,
                tts_started_at=tts_at,
                first_audio_at=audio_at,
                sent_at=now,
            )
        )
    return out
