"""Events the sans-I/O protocol objects hand to the shell.

Every event is a small frozen dataclass. The Twilio events come out of
:meth:`hotline.core.twilio.TwilioStream.events_received`, the TTS events out of
:meth:`hotline.core.elevenlabs.ElevenLabsStream.events_received` (and the multi-context
variant), the speech events out of :meth:`hotline.core.vad.Vad.process`.

Numbers that Twilio sends as JSON strings (``sequenceNumber``, ``chunk``, ``timestamp``) are
already converted to ``int`` here; base64 payloads are already decoded to ``bytes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Alignment",
    "Connected",
    "Dtmf",
    "MarkEcho",
    "Media",
    "MediaFormat",
    "SpeechEnded",
    "SpeechStarted",
    "Start",
    "Stop",
    "TTSAudio",
    "TTSEvent",
    "TTSFailure",
    "TTSFinal",
    "TwilioEvent",
    "VadEvent",
]


# --------------------------------------------------------------------------- Twilio -> app


@dataclass(frozen=True, slots=True)
class Connected:
    """Twilio's first message on a Media Stream (no ``streamSid`` yet; never acknowledged)."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """``start.mediaFormat``: always µ-law, 8000 Hz, mono on Twilio."""

    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class Start:
    """The stream started: identifiers, tracks and the TwiML ``<Parameter>`` values.

    ``custom_parameters`` is a read-only mapping (``types.MappingProxyType``), so the event
    stays immutable; events holding it are not hashable.
    """

    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    custom_parameters: Mapping[str, str]
    media_format: MediaFormat
    sequence_number: int


@dataclass(frozen=True, slots=True)
class Media:
    """One inbound audio message.

    Attributes:
        track: ``"inbound"`` on a bidirectional stream.
        chunk: per-track counter from 1.
        timestamp: stream-relative media clock in milliseconds.
        payload: raw µ-law, 8 kHz mono (base64 already decoded); any length.
        frame_stats: ``(rms_dbfs, zcr)`` of *payload* as :func:`hotline.codec.ulaw_frame_stats`
            computes it, when the parser's fast path already did (else None). Not part of
            equality: it is a cache of a function of *payload*.
    """

    track: str
    chunk: int
    timestamp: int
    payload: bytes
    frame_stats: tuple[float, float] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A key press: ``digit`` is one of ``0-9``, ``*``, ``#``, ``A-D``."""

    digit: str
    track: str


@dataclass(frozen=True, slots=True)
class MarkEcho:
    """Twilio echoed a mark: audio before it played *or was dropped by a clear*."""

    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The stream (and normally the call) is over."""

    call_sid: str
    account_sid: str


TwilioEvent = Connected | Start | Media | Dtmf | MarkEcho | Stop


# ----------------------------------------------------------------------- ElevenLabs -> app


@dataclass(frozen=True, slots=True)
class Alignment:
    """Per-character timing of one audio chunk, relative to that chunk.

    Informational only: durations do not add up to the audio length, so playback is
    accounted by bytes, never by alignment.
    """

    chars: tuple[str, ...]
    char_start_times_ms: tuple[int, ...]
    char_durations_ms: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TTSAudio:
    """One audio message: ``data`` is the base64-decoded audio in the stream's ``output_format``."""

    data: bytes
    alignment: Alignment | None
    normalized_alignment: Alignment | None
    context_id: str | None = None


@dataclass(frozen=True, slots=True)
class TTSFinal:
    """``isFinal``: no more audio follows for the stream (or for ``context_id``)."""

    context_id: str | None = None


@dataclass(frozen=True, slots=True)
class TTSFailure:
    """ElevenLabs reported an error (normally followed by a 1008 close); the utterance failed."""

    error: str
    message: str
    code: int | None
    context_id: str | None = None


TTSEvent = TTSAudio | TTSFinal | TTSFailure


# ------------------------------------------------------------------------------------- VAD


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking; ``timestamp_ms`` is the media timestamp of the onset frame."""

    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The caller stopped; ``timestamp_ms`` is the media timestamp where the silence began."""

    timestamp_ms: int


VadEvent = SpeechStarted | SpeechEnded
