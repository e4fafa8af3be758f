"""What a :class:`hotline.core.call.Call` asks its shell to do or to know. Sans-I/O.

Every action is a small frozen dataclass; :data:`Action` is their union, so a shell's dispatch
can be exhaustive (``assert_never``). The enums are ``str`` enums: their values are the metric
labels and JSON strings the shell has always used.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hotline.core.events import Start

__all__ = [
    "Action",
    "AudioSkipped",
    "BargeIn",
    "CancelTTS",
    "FirstFrame",
    "Hangup",
    "LabelEnum",
    "StartTTS",
    "Started",
    "Stopped",
    "Underrun",
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
    stream and feed its events back (:meth:`Call.receive_tts`) tagged with ``utterance_id``."""

    utterance_id: int
    text: str


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
