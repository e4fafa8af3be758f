"""The stand-in's configuration, its counters, and the record it keeps of each connection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hotline.tts_standin.faults import FAULT_MODES
from hotline.tts_standin.protocol import DEFAULT_OUTPUT_FORMAT

__all__ = ["ConnectionRecord", "StandInConfig", "StandInStats"]


@dataclass(frozen=True)
class StandInConfig:
    """How the TTS stand-in behaves.

    Attributes:
        api_key: if set, a handshake without this ``xi-api-key`` header is refused with HTTP 401.
        first_chunk_delay: seconds from a generation trigger to its first audio message.
        connect_delay: extra seconds before the handshake is answered.
        chunk_bytes: audio message size range in bytes; None derives it from ``chunk_ms`` and
            the output format's byte rate.
        chunk_ms: audio message size range in milliseconds of audio (when chunk_bytes is None).
        realtime_factor: after the first chunk, audio is sent this many times faster than real time.
        fault: a :data:`FAULT_MODES` entry applied to every connection, or None.
        seed: seeds the chunk sizes and corrupt bytes (per connection: seed + connection number).
        voice / rate_wpm: eSpeak NG voice and speaking rate.
        slow_first_chunk_s: first-chunk delay under ``slow_first_chunk``.
        idle_close_s: inactivity timeout under ``idle_close``.
        fault_after_chunks: audio messages sent before ``error_1008`` / ``reset_mid_chunk`` strike.
        max_contexts: live contexts per ``multi-stream-input`` socket.
        cache: reuse synthesized audio across connections (byte-identical to re-synthesis).
    """

    api_key: str | None = None
    first_chunk_delay: float = 0.25
    connect_delay: float = 0.0
    chunk_bytes: tuple[int, int] | None = None
    chunk_ms: tuple[float, float] = (100.0, 450.0)
    realtime_factor: float = 4.0
    fault: str | None = None
    seed: int = 0
    voice: str = "en-us"
    rate_wpm: int = 175
    slow_first_chunk_s: float = 5.0
    idle_close_s: float = 2.0
    fault_after_chunks: int = 2
    max_contexts: int = 5
    #: Seconds between a multi context's last audio and its ``isFinal`` (ElevenLabs' final
    #: is not instant, and a closed context counts toward max_contexts until it arrives).
    final_delay: float = 0.1
    #: Share of audio messages whose alignment is null (ElevenLabs sometimes sends none).
    null_alignment: float = 0.15
    cache: bool = True

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.fault!r}; one of {', '.join(FAULT_MODES)}")
        if self.realtime_factor <= 0:
            raise ValueError("realtime_factor must be positive")
        if self.first_chunk_delay < 0 or self.connect_delay < 0:
            raise ValueError("delays must be >= 0")


@dataclass
class StandInStats:
    """Counters over the server's life (tests and /metrics read them)."""

    connections: int = 0
    open_connections: int = 0
    rejected_handshakes: int = 0
    utterances: int = 0  # streams (single) or contexts (multi) that received speakable text
    generations: int = 0
    audio_messages: int = 0
    audio_bytes: int = 0
    finals_sent: int = 0
    errors_sent: int = 0
    invalid_messages: int = 0
    timeouts: int = 0
    closes_by_client: int = 0  # the client closed or dropped the socket before the server was done
    contexts_closed: int = 0
    faults_injected: int = 0


@dataclass
class ConnectionRecord:
    """What happened on one connection (bounded history in ``TTSStandIn.records``)."""

    number: int
    kind: str  # "stream-input" | "multi-stream-input"
    voice_id: str
    query: dict[str, str]
    fault: str | None
    opened_at: float
    messages: list[dict[str, Any]] = field(
        default_factory=list
    )  # JSON objects received (first 200)
    audio_messages: int = 0
    audio_bytes: int = 0
    first_audio_at: float | None = None
    final_sent: bool = False
    error_sent: str | None = None
    closed_by: str | None = None  # "server" | "client"
    close_code: int | None = None
    closed_at: float | None = None
    model_id: str | None = None
    output_format: str = DEFAULT_OUTPUT_FORMAT
    #: The eSpeak NG voice that speaks on it (``language_code`` picks that language's).
    espeak_voice: str = ""
