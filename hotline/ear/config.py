"""The local ear's configuration, its counters, its fault modes and its two endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.ear.whisper import WhisperSettings

__all__ = [
    "DEEPGRAM_PATH",
    "ENGINES",
    "FAULT_MODES",
    "SCRIBE_DEFAULT_SILENCE_S",
    "SCRIBE_PATH",
    "EarConfig",
    "EarStats",
]

FAULT_MODES: tuple[str, ...] = ("refuse", "drop", "garbage", "slow")
#: The recognisers a local ear can run: pocketsphinx on a grammar of the key terms, or Whisper.
ENGINES: tuple[str, ...] = ("grammar", "whisper")
SCRIBE_PATH = "/v1/speech-to-text/realtime"
DEEPGRAM_PATH = "/v1/listen"
SCRIBE_DEFAULT_SILENCE_S = 1.5


@dataclass(frozen=True)
class EarConfig:
    """How the local ear behaves.

    Attributes:
        api_key: if set, required (Scribe ``xi-api-key``/``token``; Deepgram ``Token``).
        fault: a :data:`FAULT_MODES` entry for every connection, or None.
        max_chunk_bytes: decoded audio per ``input_audio_chunk`` above which Scribe answers
            ``chunk_size_exceeded`` (the real limit is undocumented; 2 s of µ-law here).
        drop_after_chunks: audio chunks received before ``drop`` resets the connection.
        slow_s: delay added before every result under ``slow``.
        idle_close_s: Deepgram closes with NET-0001 after this long without any message.
        default_keyterms: grammar when the client sends no key terms (empty: the open LM).
        engine: an :data:`ENGINES` entry.
        whisper: the Whisper ear's settings (``engine="whisper"``; None: the defaults).
    """

    api_key: str | None = None
    fault: str | None = None
    max_chunk_bytes: int = 16_000
    drop_after_chunks: int = 25
    slow_s: float = 1.0
    idle_close_s: float = 10.0
    default_keyterms: tuple[str, ...] = ()
    engine: str = "grammar"
    whisper: WhisperSettings | None = None
    #: The grammar ear rates only finals holding one of these phrases (None: every final):
    #: :attr:`hotline.ear.recognizer.RecognizerConfig.rate_phrases`.
    rate_phrases: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown ear engine {self.engine!r}; one of {', '.join(ENGINES)}")
        if self.fault is not None and self.fault not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.fault!r}; one of {', '.join(FAULT_MODES)}")


@dataclass
class EarStats:
    connections: int = 0
    open_connections: int = 0
    rejected_handshakes: int = 0
    audio_bytes: int = 0
    commits: int = 0
    input_errors: int = 0
    faults_injected: int = 0
    cpu_seconds: float = 0.0
    decode_seconds: float = 0.0  # the Whisper pool's decodes, wall (cpu_seconds: the sessions')
    closes: dict[str, int] = field(default_factory=dict)
