"""What a :class:`hotline.core.call.Call` asks its shell to do or to know. Sans-I/O.

Every action is a small frozen dataclass; :data:`Action` is their union, so a shell's dispatch
can be exhaustive (``assert_never``). The enums are ``str`` enums: their values are the metric
labels and JSON strings the shell has always used.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hotline.core.events import Start
from hotline.core.turns import JudgeTurn, Speculate, Unspeculate

__all__ = [
    "LATENCY_STAGES",
    "Action",
    "AudioSkipped",
    "BargeIn",
    "CallerTurn",
    "CancelTTS",
    "CommitSpeech",
    "DigitPressed",
    "FirstFrame",
    "Hangup",
    "JudgeTurn",
    "LabelEnum",
    "LineHeld",
    "LineInterrupted",
    "LineResumed",
    "Speculate",
    "StartTTS",
    "Started",
    "Stopped",
    "TTSClose",
    "TTSText",
    "TurnLatency",
    "Underrun",
    "Unspeculate",
    "UtteranceEnded",
    "UtteranceOutcome",
    "UtteranceRecorded",
    "UtteranceSource",
]


class LabelEnum(str, enum.Enum):
    """A ``str`` enum whose ``str()`` is its value (``enum.StrEnum`` is Python 3.11+): members
    are equal to, format as, and serialise (JSON, metric labels) as their value."""

    def __str__(self) -> str:
        return str.__str__(self)


class UtteranceSource(LabelEnum):
    """Who asked for an utterance."""

    SCRIPT = "script"  # the greeting, a digit's line, the goodbye
    SAY = "say"  # an outside brain (POST /calls/{sid}/say)
    BRAIN = "brain"  # the call's brain (a streamed reply: Lines.reply_open)


class UtteranceOutcome(LabelEnum):
    """How an utterance ended (:class:`UtteranceEnded`)."""

    PLAYED = "played"  # its end mark echoed
    FAILED = "failed"  # the TTS or the converter failed; what arrived before still plays
    INTERRUPTED = "interrupted"  # barge-in, an interrupting say/digit, hang-up, stop
    DROPPED = "dropped"  # never started


@dataclass(frozen=True, slots=True)
class Started:
    """Twilio's ``start`` arrived: check ``start.custom_parameters``, then accept() or reject()."""

    start: Start


@dataclass(frozen=True, slots=True)
class StartTTS:
    """Find audio for ``text``: replay a recording (:meth:`Call.play_recorded`) or open a TTS
    stream and feed its events back (:meth:`Call.receive_tts`) tagged with ``utterance_id``.

    ``streaming``: a reply whose text arrives in pieces (:meth:`Lines.reply_open`): ``text`` is
    what has arrived so far, :class:`TTSText` brings the rest and :class:`TTSClose` ends it. A
    streamed reply is never answered from the phrase cache.

    ``language``: the BCP-47 tag the line is spoken in (a relay app's ``language`` message, or
    its token's ``lang``); None: the call's own voice (the ``[relay]`` ttsLanguage)."""

    utterance_id: int
    text: str
    streaming: bool = False
    language: str | None = None


@dataclass(frozen=True, slots=True)
class TTSText:
    """Send ``text`` (a piece of a streamed reply, untrimmed) to utterance ``utterance_id``'s
    open TTS stream."""

    utterance_id: int
    text: str


@dataclass(frozen=True, slots=True)
class TTSClose:
    """Utterance ``utterance_id``'s text is complete: flush its TTS stream and end it
    (``multi-stream-input``: flush, then ``close_context``; ``stream-input``: the ``""`` EOS)."""

    utterance_id: int


@dataclass(frozen=True, slots=True)
class CommitSpeech:
    """The caller's silence is long enough: make the recogniser finalise what it holds
    (Scribe ``commit``, Deepgram ``Finalize``) and feed the result to
    :meth:`Call.transcript_final`."""


@dataclass(frozen=True, slots=True)
class CallerTurn:
    """The caller's turn ended: hand ``text`` (the final transcript, never empty) to the brain.

    Attributes:
        speech_started_ms / speech_ended_ms: media timestamps of the turn's first speech and
            of the silence that ended it.
        ended_at: ``now`` (shell clock) when the caller stopped speaking (estimated from the
            media clock; equals ``silence_at`` when the VAD never saw speech).
        silence_at: ``now`` when the silence became long enough.
        final_at: ``now`` when the final transcript arrived (or its wait timed out).
        timed_out: the recogniser's final never came; ``text`` is what had been committed.
        confidence: the recogniser's in ``text``, 0..1, or None (unknown):
            :attr:`hotline.core.turns.TurnEnded.confidence`.
    """

    text: str
    speech_started_ms: int
    speech_ended_ms: int
    ended_at: float
    silence_at: float
    final_at: float
    timed_out: bool = False
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class DigitPressed:
    """A DTMF key, for the brain (a call built with ``brain_digits=True``; what played was
    cut first)."""

    digit: str


@dataclass(frozen=True, slots=True)
class LineInterrupted:
    """Utterance ``utterance_id`` was cut while the caller was hearing it.

    Attributes:
        heard_text: the part of its text the caller heard (a prefix ending at a word end).
        heard_ms: milliseconds of its audio played by the cut (by the playhead estimate).
        text: the utterance's whole text as far as it had arrived.
        source: who asked for it.
    """

    utterance_id: int
    heard_text: str
    heard_ms: float
    text: str
    source: UtteranceSource


@dataclass(frozen=True, slots=True)
class LineHeld:
    """``pause`` barge-in: the caller's sound over utterance ``utterance_id`` lasted; ``clear``
    has been queued and ``held_ms`` of audio the caller had not heard waits to be sent again
    (:class:`LineResumed`) or dropped (:class:`BargeIn`).

    Attributes:
        timestamp_ms: media timestamp of the speech onset.
    """

    utterance_id: int
    timestamp_ms: int
    held_ms: float


@dataclass(frozen=True, slots=True)
class LineResumed:
    """A held line plays on from where the caller stopped hearing it (it was no interruption:
    a cough, a backchannel); it was held for ``held_s`` seconds."""

    utterance_id: int
    held_s: float


@dataclass(frozen=True, slots=True)
class CancelTTS:
    """Close utterance ``utterance_id``'s TTS stream (if still open); its audio is unwanted."""

    utterance_id: int


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call: close the Twilio WebSocket (ends ``<Connect>``) and tear everything down."""

    reason: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """Twilio sent ``stop``: the call is over; tear everything down."""


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller talked over ``utterance_id``; ``clear`` has been queued.

    Attributes:
        timestamp_ms: media timestamp of the speech onset (from the VAD).
        dropped_ms: audio dropped (queued at Twilio by our estimate, plus unsent frames).
    """

    utterance_id: int
    timestamp_ms: int
    dropped_ms: float


@dataclass(frozen=True, slots=True)
class FirstFrame:
    """The first media frame of an utterance went into the Twilio stream.

    Attributes:
        message_index: index of that frame in the next :meth:`Call.data_to_send` batch, so the
            shell can time the moment it actually leaves.
        queued_at / tts_started_at / first_audio_at / sent_at: the ``now`` values at which the
            text was queued, handed to TTS, its first audio arrived, and this frame was pumped.
    """

    utterance_id: int
    source: UtteranceSource
    message_index: int
    queued_at: float
    tts_started_at: float
    first_audio_at: float
    sent_at: float


#: :class:`TurnLatency` stages, in order; ``total`` is their sum, ``hotline`` the shell's share.
LATENCY_STAGES = ("silence", "recogniser", "dispatch", "model", "to_tts", "voice", "playout")


@dataclass(frozen=True, slots=True)
class TurnLatency:
    """Voice to voice for one caller turn: from the caller's end of speech to the first frame
    of the reply. Emitted with the reply's :class:`FirstFrame` (same ``message_index``), so the
    shell can time the moment that frame actually leaves (``out_at``). All times are ``now``
    values (seconds, the shell's clock).

    Attributes:
        ended_at: the caller stopped speaking (media clock mapped onto the shell clock).
        silence_at: the silence became long enough (the turn detector's wait is over).
        final_at: the final transcript arrived.
        handed_at: the turn was handed to the brain (:meth:`Call.turn_handed`; else ``final_at``).
        first_token_at: the brain's first reply text reached the Call.
        tts_started_at: the first text was handed to TTS (``StartTTS``).
        first_audio_at: the first TTS audio arrived.
        sent_at: the first frame was pumped into the Twilio stream.
    """

    utterance_id: int
    message_index: int
    ended_at: float
    silence_at: float
    final_at: float
    handed_at: float
    first_token_at: float
    tts_started_at: float
    first_audio_at: float
    sent_at: float

    def stages(self, out_at: float | None = None) -> dict[str, float]:
        """Seconds per stage (:data:`LATENCY_STAGES`) plus ``total`` and ``hotline``.

        ``silence`` (the turn detector's wait), ``recogniser`` (silence -> final transcript),
        ``model`` (handed -> first token) and ``voice`` (text to TTS -> first audio) are other
        parties' delays; ``dispatch``, ``to_tts`` and ``playout`` (first audio -> frame out,
        at ``out_at`` when given) are hotline's own share."""
        out = self.sent_at if out_at is None else out_at
        marks = (
            self.ended_at,
            self.silence_at,
            self.final_at,
            self.handed_at,
            self.first_token_at,
            self.tts_started_at,
            self.first_audio_at,
            out,
        )
        result = {name: max(marks[i + 1] - marks[i], 0.0) for i, name in enumerate(LATENCY_STAGES)}
        result["total"] = max(out - self.ended_at, 0.0)
        result["hotline"] = result["dispatch"] + result["to_tts"] + result["playout"]
        return result


@dataclass(frozen=True, slots=True)
class Underrun:
    """Playback starved in the middle of an utterance for ``duration_ms`` (by our estimate)."""

    utterance_id: int
    duration_ms: float


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    """An utterance is finished with; reported exactly once per utterance."""

    utterance_id: int
    source: UtteranceSource
    outcome: UtteranceOutcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class UtteranceRecorded:
    """Utterance ``utterance_id`` was synthesised cleanly (``isFinal`` seen, no TTS or converter
    failure, no undecodable audio skipped, never cut): ``ulaw`` is exactly what the caller is
    sent, fit to be replayed with :meth:`Call.play_recorded`. Only emitted by a call built with
    ``record_max_bytes`` > 0, and never for a replayed utterance."""

    utterance_id: int
    text: str
    ulaw: bytes


@dataclass(frozen=True, slots=True)
class AudioSkipped:
    """The converter skipped ``skipped_bytes`` of undecodable TTS audio in ``utterance_id``
    (counted once, when its TTS stream ended)."""

    utterance_id: int
    skipped_bytes: int


Action = (
    Started
    | StartTTS
    | TTSText
    | TTSClose
    | CommitSpeech
    | JudgeTurn
    | Speculate
    | Unspeculate
    | CallerTurn
    | DigitPressed
    | LineInterrupted
    | LineHeld
    | LineResumed
    | TurnLatency
    | CancelTTS
    | Hangup
    | Stopped
    | BargeIn
    | FirstFrame
    | Underrun
    | UtteranceEnded
    | UtteranceRecorded
    | AudioSkipped
)
