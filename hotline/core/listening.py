"""The caller's side of a call: what is heard of them. Sans-I/O: the time is passed in.

:class:`Listening` keeps the caller's µ-law for the recogniser (the shell drains it with
:meth:`~hotline.core.call.Call.audio_to_recognise`), runs the VAD and the
:class:`~hotline.core.turns.TurnTaker` on every inbound frame of an active call and turns what the
turn taker decides into the Call's business: a barge-in (the Call's ``barge_in``, when its
``can_barge_in`` allows), :class:`~hotline.core.actions.CommitSpeech` and
:class:`~hotline.core.actions.CallerTurn` (written to the call's transcript too). The timing of the
caller's turns waits in :attr:`Listening.latency` for the reply's
:class:`~hotline.core.actions.TurnLatency`. Without ``turns`` (or while the recogniser is down) a
VAD onset is the barge-in.

Endpointing in two steps hands out :class:`~hotline.core.turns.JudgeTurn` (the shell runs the
end-of-turn judge off the event loop and answers with :meth:`Listening.verdict`) and
:class:`~hotline.core.turns.Speculate` / :class:`~hotline.core.turns.Unspeculate` (the shell may
prepare a reply it holds until the :class:`CallerTurn`). ``pause`` barge-in holds the line
(``hold``) and lets it play on (``resume``).

The filler: ``filler_ms`` after a turn was handed out, if no reply to it has been queued yet,
``filler`` is called once (the Call says the script's short line).

What the recogniser hears (:class:`QuietGate`): with a gate, the line's long silences are held
back. The caller's audio goes to the recogniser from any frame louder than ``open_dbfs`` (well
below the VAD's and the local ears' thresholds, so anything they could call speech opens it)
until ``hold_ms`` of quiet with no turn in progress (a turn waiting for its final keeps it open);
then only the last ``preroll_ms`` is kept, and sent ahead of the next loud frame. On a call
where hotline does most of the talking most of the caller's audio is silence: not streaming it
saves the server's sends, the recogniser's work and, with a cloud recogniser that bills the
audio it is sent, its seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hotline.core.actions import Action, CallerTurn, CommitSpeech
from hotline.core.events import Media, SpeechEnded, SpeechStarted
from hotline.core.latency import Latencies
from hotline.core.transcript import Transcript
from hotline.core.turns import (
    CommitTranscript,
    HoldLine,
    Interrupt,
    JudgeTurn,
    ResumeLine,
    Speculate,
    TurnConfig,
    TurnEnded,
    TurnTaker,
    Unspeculate,
)
from hotline.core.ulaw import BYTES_PER_MS
from hotline.errors import assert_never

__all__ = ["Listening", "QuietGate", "SpeechDetector"]


@dataclass(frozen=True, slots=True)
class QuietGate:
    """Which of the caller's audio the recogniser hears (see the module docstring).

    Attributes:
        open_dbfs: a frame at least this loud (RMS, dBFS) is sent, and opens the gate.
        hold_ms: quiet, with no turn in progress, after which audio is held back.
        preroll_ms: held-back audio sent ahead of the frame that opens the gate again.
    """

    open_dbfs: float = -50.0
    hold_ms: int = 2000
    preroll_ms: int = 500


class SpeechDetector(Protocol):
    """What :class:`Listening` needs from :class:`hotline.core.vad.Vad`.

    A detector may also have a ``voiced`` attribute (bool): whether the last frame it processed
    sounded like speech. ``pause`` barge-in then holds the line only while the sound goes on
    (a 200 ms cough is over before the guard, though the detector's end of speech comes a
    hang time later); without it the detector's speech state is taken. And a ``close()``
    method, called when the call is over, if it holds something to give back.
    """

    def process(self, media: Media) -> SpeechStarted | SpeechEnded | None: ...

    def reset(self) -> None: ...


class Listening:
    """The caller's side of one call (see the module docstring).

    Args:
        actions: the Call's action queue (``CommitSpeech`` and ``CallerTurn`` go there).
        vad: the speech detector (``None``: no barge-in, no turns from the VAD).
        turns: turn-taking settings (``None``: barge-in on the VAD's onset only).
        recognise: keep the caller's audio for :meth:`audio_to_recognise`.
        quiet_gate: hold the line's long silences back from the recogniser (None: keep
            every frame).
        can_barge_in: whether the caller's voice may cut what plays at ``now``.
        barge_in: cut what plays (the onset's media timestamp, ``now``).
        hold / resume: hold the line (onset timestamp, ``now``) / let it play on (``now``).
        filler: say the filler line (``now``); ``filler_ms`` after a turn with no reply yet
            (0: never).
    """

    __slots__ = (
        "_actions",
        "_barge_in",
        "_can_barge_in",
        "_filler",
        "_filler_at",
        "_filler_ms",
        "_gate",
        "_held",
        "_held_bytes",
        "_hold",
        "_quiet_bytes",
        "_recognise",
        "_resume",
        "_vad",
        "caller_turns",
        "latency",
        "transcript",
        "turns",
        "unsent_bytes",
    )

    def __init__(
        self,
        actions: list[Action],
        vad: SpeechDetector | None,
        turns: TurnConfig | None,
        *,
        recognise: bool,
        quiet_gate: QuietGate | None = None,
        can_barge_in: Callable[[float], bool],
        barge_in: Callable[[int, float], None],
        hold: Callable[[int, float], None] | None = None,
        resume: Callable[[float], None] | None = None,
        filler: Callable[[float], None] | None = None,
        filler_ms: int = 0,
    ) -> None:
        self._actions = actions
        self._vad = vad
        self.turns: TurnTaker | None = TurnTaker(turns) if turns is not None else None
        self._recognise: list[bytes] | None = [] if recognise else None
        self._gate = quiet_gate
        self._quiet_bytes = 0  # quiet audio since the last loud frame (or turn)
        self._held: deque[bytes] = deque()  # the preroll, while the gate is shut
        self._held_bytes = 0
        #: The caller's audio held back from the recogniser (bytes of µ-law: 8 per ms).
        self.unsent_bytes = 0
        self._can_barge_in = can_barge_in
        self._barge_in = barge_in
        self._hold = hold
        self._resume = resume
        self._filler = filler
        self._filler_ms = filler_ms
        self._filler_at: float | None = None  # when the filler is due (a turn awaits its reply)
        self.latency = Latencies()
        #: Where caller turns are written (the Call's, once accepted).
        self.transcript: Transcript | None = None
        #: Caller turns handed out (:class:`CallerTurn`).
        self.caller_turns = 0

    # ------------------------------------------------------------------ the caller's audio

    def keep(self, media: Media) -> None:
        """An inbound frame of a started call, for the recogniser (through the gate, if any)."""
        keep = self._recognise
        if keep is None:
            return
        ulaw = media.payload
        gate = self._gate
        if gate is None:
            keep.append(ulaw)
            return
        stats = media.frame_stats
        if stats is None:
            from hotline.codec import ulaw_frame_stats

            stats = ulaw_frame_stats(ulaw)
        if stats[0] >= gate.open_dbfs or (self.turns is not None and self.turns.in_turn):
            self._quiet_bytes = 0
        else:
            self._quiet_bytes += len(ulaw)
            if self._quiet_bytes > gate.hold_ms * BYTES_PER_MS:
                held = self._held
                held.append(ulaw)
                self._held_bytes += len(ulaw)
                limit = gate.preroll_ms * BYTES_PER_MS
                while self._held_bytes - len(held[0]) >= limit:
                    old = held.popleft()
                    self._held_bytes -= len(old)
                    self.unsent_bytes += len(old)
                return
        if self._held:
            keep.extend(self._held)
            self._held.clear()
            self._held_bytes = 0
        keep.append(ulaw)

    def audio_to_recognise(self) -> list[bytes]:
        """Return and forget the payloads kept since the last call."""
        buf = self._recognise
        if not buf:
            return []
        out = buf[:]
        buf.clear()
        return out

    def stop_recognising(self) -> None:
        """Keep no more audio (the shell's feed broke)."""
        self._recognise = None

    def close(self) -> None:
        """The call is over: a detector holding a pooled resource (Silero's) gives it back."""
        close = getattr(self._vad, "close", None)
        if close is not None:
            close()

    def media(self, media: Media, now: float) -> None:
        """One inbound frame of an active call: the VAD, then the turn taker."""
        if self._vad is None:
            return
        event = self._vad.process(media)
        turns = self.turns
        if turns is None:
            if isinstance(event, SpeechStarted) and self._can_barge_in(now):
                self._barge_in(event.timestamp_ms, now)
            return
        if event is not None:
            if isinstance(event, SpeechStarted):
                turns.speech_started(event.timestamp_ms, now, self._can_barge_in(now))
            elif isinstance(event, SpeechEnded):
                behind = max(media.timestamp - event.timestamp_ms, 0) / 1000.0
                self.latency.speech_ended(now - behind)
                turns.speech_ended(event.timestamp_ms, now)
            else:
                assert_never(event)
        vad = self._vad
        turns.media(
            media.timestamp,
            now,
            media.payload,
            getattr(vad, "voiced", True),
            getattr(vad, "loud", None),
        )
        self._events(now)

    # ------------------------------------------------------------------ the recogniser

    def partial(self, text: str, now: float) -> None:
        """An interim transcript (an active call)."""
        if self.turns is not None:
            self.turns.partial(text, now, self._can_barge_in(now))
            self._events(now)

    def final(self, text: str, now: float, confidence: float | None = None) -> None:
        """A final transcript and the recogniser's confidence in it (an active call)."""
        if self.turns is not None:
            self.turns.final(text, now, self._can_barge_in(now), confidence)
            self._events(now)

    def stt_down(self, now: float, *, active: bool) -> None:
        """The recogniser failed: a waiting turn ends with what it has (an active call)."""
        if self.turns is None:
            return
        self.turns.stt_down()
        if active:
            self._events(now)
        else:
            self.turns.events()

    def stt_up(self) -> None:
        if self.turns is not None:
            self.turns.stt_up()

    def verdict(self, seq: int, probability: float | None, now: float) -> None:
        """The end-of-turn judge's answer to :class:`JudgeTurn` ``seq`` (``None``: it failed)."""
        turns = self.turns
        if turns is None:
            return
        if probability is None:
            turns.judge_failed(seq, now)
        else:
            turns.verdict(seq, probability, now)
        self._events(now)

    def poll(self, now: float, *, active: bool) -> None:
        """The turn taker's deadline (or the filler's) may have passed."""
        turns = self.turns
        if turns is not None and turns.next_deadline() is not None:
            turns.poll(now)
            if active:
                self._events(now)
        at = self._filler_at
        if at is not None and now >= at:
            self._filler_at = None
            talking = self.turns is not None and self.turns.in_turn
            if active and self._filler is not None and self.latency.waiting and not talking:
                self._filler(now)

    def next_deadline(self) -> float | None:
        turn = self.turns.next_deadline() if self.turns is not None else None
        at = self._filler_at
        if at is None:
            return turn
        return at if turn is None else min(turn, at)

    def _events(self, now: float) -> None:
        turns = self.turns
        if turns is None or not turns.has_events:
            return  # the common case, once per inbound frame: nothing to hand out
        for event in turns.events():
            if isinstance(event, Interrupt):
                if self._can_barge_in(now):
                    self._barge_in(event.timestamp_ms, now)
            elif isinstance(event, HoldLine):
                if self._hold is not None and self._can_barge_in(now):
                    self._hold(event.timestamp_ms, now)
            elif isinstance(event, ResumeLine):
                if self._resume is not None:
                    self._resume(now)
            elif isinstance(event, CommitTranscript):
                self._actions.append(CommitSpeech())
            elif isinstance(event, (JudgeTurn, Speculate, Unspeculate)):
                self._actions.append(event)
            elif isinstance(event, TurnEnded):
                ended_at = self.latency.turn_ended(event)
                self.caller_turns += 1
                if self.transcript is not None:
                    self.transcript.caller(event.text, event.final_at)
                self._actions.append(
                    CallerTurn(
                        text=event.text,
                        speech_started_ms=event.speech_started_ms,
                        speech_ended_ms=event.speech_ended_ms,
                        ended_at=ended_at,
                        silence_at=event.silence_at,
                        final_at=event.final_at,
                        timed_out=event.timed_out,
                        confidence=event.confidence,
                    )
                )
                if self._filler_ms > 0:
                    self._filler_at = event.final_at + self._filler_ms / 1000.0
            else:
                assert_never(event)
