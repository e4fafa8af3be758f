"""The caller's turns and when they interrupt hotline. Sans-I/O.

A caller's *turn* is speech start -> end of speech (silence of at least ``silence_ms``) -> the
final transcript for that span. Two sources feed it: the VAD on the caller's audio (fast, in media
time, knows nothing of words) and the speech-to-text stream (slow, knows the words). The
:class:`TurnTaker` joins them::

    turns = TurnTaker(TurnConfig(silence_ms=700, barge_in=BargeInMode.WORDS))
    turns.speech_started(ts_ms, now, bot_speaking)    # VAD SpeechStarted
    turns.speech_ended(ts_ms, now)                    # VAD SpeechEnded (silence began at ts_ms)
    turns.media(ts_ms, now)                           # every inbound frame: the silence clock
    turns.partial(text, now, bot_speaking)            # STT interim transcript
    turns.final(text, now, bot_speaking)              # STT committed / final transcript
    turns.poll(now)                                   # when next_deadline() passes
    for event in turns.events(): ...                  # Interrupt, CommitTranscript, TurnEnded

Silence is measured on the media clock (the ``timestamp`` Twilio stamps on each frame), so a
burst of late frames does not end a turn early. The wait for the recogniser's final transcript is
measured on the shell's clock (``now``), bounded by ``final_timeout_ms``.

End of a turn. Once the silence is long enough, a turn whose words are all committed already ends
at once; otherwise :class:`CommitTranscript` asks the shell to make the recogniser finalise what
it holds (Scribe's ``commit``, Deepgram's ``Finalize``) and the turn ends at the next final
transcript, or at the timeout with what was committed. A turn with no words (a cough, a click,
line noise) is dropped: it never reaches the brain. A final that arrives after its turn timed out
(and before the caller speaks again) belongs to that turn: it is dropped and counted
(:attr:`TurnTaker.late_finals`), never made a turn of its own.

Barge-in (``HOTLINE_BARGE_IN``):

* ``speech``: the onset of speech while hotline is speaking interrupts (today's behaviour).
* ``words``: only the first transcribed word interrupts, so a cough or a short noise does not cut
  the line. While the recogniser is down, ``words`` falls back to ``speech`` so the caller can
  still interrupt.
* ``off``: the caller's voice never interrupts (DTMF still does).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hotline.errors import ConfigError

__all__ = [
    "BargeInMode",
    "CommitTranscript",
    "Interrupt",
    "TurnConfig",
    "TurnEnded",
    "TurnEvent",
    "TurnTaker",
    "has_words",
]


class BargeInMode(str, enum.Enum):
    """What of the caller's voice interrupts hotline."""

    SPEECH = "speech"
    WORDS = "words"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """Turn-taking settings.

    Attributes:
        silence_ms: silence after speech that ends the caller's turn (``HOTLINE_TURN_SILENCE_MS``).
        final_timeout_ms: how long to wait for the recogniser's final transcript after asking.
        barge_in: what interrupts hotline (``HOTLINE_BARGE_IN``).

    Raises:
        ConfigError: a value out of range.
    """

    silence_ms: int = 700
    final_timeout_ms: int = 2000
    barge_in: BargeInMode = BargeInMode.SPEECH

    def __post_init__(self) -> None:
        if isinstance(self.silence_ms, bool) or not 0 <= self.silence_ms <= 10_000:
            raise ConfigError("turn silence_ms must be within 0..10000")
        if isinstance(self.final_timeout_ms, bool) or not 0 < self.final_timeout_ms <= 30_000:
            raise ConfigError("turn final_timeout_ms must be within 1..30000")
        if not isinstance(self.barge_in, BargeInMode):
            raise ConfigError("turn barge_in must be a BargeInMode")


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Interrupt hotline now: ``cause`` is ``"speech"`` (an onset) or ``"words"`` (a first word)."""

    cause: str
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class CommitTranscript:
    """Ask the recogniser to finalise the speech it holds (the caller's silence is long enough)."""


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The caller's turn is over; ``text`` is its final transcript (never empty).

    Attributes:
        speech_started_ms / speech_ended_ms: media timestamps of the turn's first speech and of
            the silence that ended it.
        silence_at: ``now`` when the silence became long enough (end of the silence wait).
        commit_at: ``now`` when :class:`CommitTranscript` was asked for (``None``: not needed).
        final_at: ``now`` when the final transcript arrived (or the wait timed out).
        timed_out: the recogniser's final never came; ``text`` is what had been committed.
    """

    text: str
    speech_started_ms: int
    speech_ended_ms: int
    silence_at: float
    commit_at: float | None
    final_at: float
    timed_out: bool = False


TurnEvent = Interrupt | CommitTranscript | TurnEnded


def has_words(text: str) -> bool:
    """True if a transcript holds at least one word (a letter or a digit)."""
    return any(c.isalnum() for c in text)


class _State(enum.Enum):
    QUIET = "quiet"  # no turn in progress
    SPEAKING = "speaking"  # the caller is talking
    PAUSED = "paused"  # silence began; not long enough yet
    FINALISING = "finalising"  # silence long enough; waiting for the final transcript


class TurnTaker:
    """Joins VAD and transcripts into caller turns and barge-in decisions.

    Args:
        config: turn settings.
    """

    def __init__(self, config: TurnConfig | None = None) -> None:
        self.config = config if config is not None else TurnConfig()
        self.stt_available = True
        self._state = _State.QUIET
        self._events: list[TurnEvent] = []
        self._committed: list[str] = []  # final transcripts of this turn, in order
        self._pending = ""  # the latest interim transcript not yet committed
        self._uncommitted = False  # speech heard since the last final transcript
        self._started_ms = 0
        self._ended_ms = 0
        self._silence_at = 0.0
        self._commit_at: float | None = None
        self._deadline: float | None = None
        self.turns = 0
        self.dropped = 0
        #: a turn ended without its final (timed out): a final that comes before the caller
        #: speaks again is that turn's, late
        self._owed_final = False
        self.late_finals = 0  # late finals dropped (their turn had ended without them)
        self.late_text = ""  # the last one's text

    # ------------------------------------------------------------------ queries

    @property
    def in_turn(self) -> bool:
        """True from the caller's first speech until the turn ends or is dropped."""
        return self._state is not _State.QUIET

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must run if nothing else happens (the final-transcript wait)."""
        return self._deadline

    @property
    def has_events(self) -> bool:
        """True if :meth:`events` would return something (checked per frame, so no list is made)."""
        return bool(self._events)

    def events(self) -> list[TurnEvent]:
        """Return and forget the events, in order."""
        out, self._events = self._events, []
        return out

    # ------------------------------------------------------------------ VAD side

    def speech_started(self, timestamp_ms: int, now: float, bot_speaking: bool) -> None:
        """The VAD heard the caller start (or resume) talking at media time ``timestamp_ms``."""
        if self._state is _State.QUIET:
            self._begin(timestamp_ms)
        self._owed_final = False
        self._state = _State.SPEAKING
        self._uncommitted = True
        self._deadline = None
        mode = self.config.barge_in
        if mode is BargeInMode.WORDS and not self.stt_available:
            mode = BargeInMode.SPEECH
        if bot_speaking and mode is BargeInMode.SPEECH:
            self._interrupt("speech", timestamp_ms)

    def speech_ended(self, timestamp_ms: int, now: float) -> None:
        """The VAD says the caller fell silent at media time ``timestamp_ms``."""
        if self._state is not _State.SPEAKING:
            return
        self._state = _State.PAUSED
        self._ended_ms = timestamp_ms

    def media(self, timestamp_ms: int, now: float) -> None:
        """An inbound frame at media time ``timestamp_ms``: ends a pause that is long enough."""
        if self._state is not _State.PAUSED:
            return
        if timestamp_ms - self._ended_ms < self.config.silence_ms:
            return
        self._silence_at = now
        if not self.stt_available:
            # Nobody will transcribe this turn: drop it (DTMF and say still work).
            self._drop()
            return
        if self._committed and not self._uncommitted and not has_words(self._pending):
            self._end(now, timed_out=False)
            return
        self._state = _State.FINALISING
        self._commit_at = now
        self._deadline = now + self.config.final_timeout_ms / 1000.0
        self._events.append(CommitTranscript())

    # ------------------------------------------------------------------ transcript side

    def partial(self, text: str, now: float, bot_speaking: bool) -> None:
        """An interim transcript (it replaces the previous interim one)."""
        self._pending = text
        self._maybe_words(text, bot_speaking)

    def final(self, text: str, now: float, bot_speaking: bool) -> None:
        """A final (committed) transcript of a stretch of the caller's speech."""
        self._pending = ""
        if self._state is not _State.SPEAKING:
            # Committed after the silence began: nothing said since is left uncommitted.
            self._uncommitted = False
        if has_words(text):
            if self._state is _State.QUIET and self._owed_final:
                # The final of the turn that timed out waiting for it: that turn has been
                # answered; as a turn of its own it gave the brain a second prompt and the
                # caller a second reply.
                self.late_finals += 1
                self.late_text = text.strip()
                return
            if self._state is _State.QUIET:
                # The recogniser heard words the VAD missed (quiet speech): a turn of its own.
                self._begin(0)
                self._state = _State.PAUSED
                self._silence_at = now
            self._committed.append(text.strip())
            self._maybe_words(text, bot_speaking)
        if self._state is _State.FINALISING:
            if self._committed:
                self._end(now, timed_out=False)
            # An empty final while waiting: keep waiting for the rest, until the deadline.
        elif self._state is _State.PAUSED and self._silence_at and self._committed:
            # Words found after the silence was already long enough (the VAD-less path above).
            self._end(now, timed_out=False)

    def stt_down(self) -> None:
        """The recogniser failed or dropped: end what can be ended; barge-in falls back."""
        self.stt_available = False
        if self._state is _State.FINALISING:
            if self._committed:
                self._end(self._silence_at, timed_out=True)
            else:
                self._drop()

    def stt_up(self) -> None:
        """The recogniser is (back) up."""
        self.stt_available = True

    def poll(self, now: float) -> None:
        """The final-transcript wait may have run out."""
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self._state is _State.FINALISING:
            if self._committed or has_words(self._pending):
                if has_words(self._pending):
                    self._committed.append(self._pending.strip())
                    self._pending = ""
                self._end(now, timed_out=True)
            else:
                self._drop()

    def reset(self) -> None:
        """Forget the turn in progress (the call ended)."""
        self._state = _State.QUIET
        self._committed.clear()
        self._pending = ""
        self._deadline = None

    # ------------------------------------------------------------------ internals

    def _begin(self, timestamp_ms: int) -> None:
        self._started_ms = timestamp_ms
        self._uncommitted = False
        self._committed.clear()
        self._pending = ""
        self._commit_at = None
        self._silence_at = 0.0

    def _maybe_words(self, text: str, bot_speaking: bool) -> None:
        if (
            bot_speaking
            and self.config.barge_in is BargeInMode.WORDS
            and self.stt_available
            and has_words(text)
        ):
            self._interrupt("words", self._started_ms)

    def _interrupt(self, cause: str, timestamp_ms: int) -> None:
        # No latch: once the Call has cut its line it is no longer speaking, so the next
        # onset or word interrupts only a line that started since.
        self._events.append(Interrupt(cause, timestamp_ms))

    def _end(self, now: float, *, timed_out: bool) -> None:
        text = " ".join(t for t in self._committed if t)
        self._events.append(
            TurnEnded(
                text=text,
                speech_started_ms=self._started_ms,
                speech_ended_ms=self._ended_ms,
                silence_at=self._silence_at or now,
                commit_at=self._commit_at,
                final_at=now,
                timed_out=timed_out,
            )
        )
        self._owed_final = timed_out
        self.turns += 1
        self._state = _State.QUIET
        self._committed.clear()
        self._pending = ""
        self._deadline = None

    def _drop(self) -> None:
        self.dropped += 1
        self._state = _State.QUIET
        self._committed.clear()
        self._pending = ""
        self._deadline = None
