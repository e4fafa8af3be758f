"""The application context: what every request and call of one app shares.

Settings, script, metrics, the security pieces, the log ring, the TTS target, the speech
service, the Redis link and the :class:`~hotline.server.registry.CallRegistry`. It imports
nothing from the session module: calls are reached through the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hotline.core.actions import LabelEnum
from hotline.core.script import CallScript
from hotline.core.transcript import Transcripts
from hotline.core.vad import VadConfig
from hotline.records.service import Records
from hotline.server.console.turns import TurnLog
from hotline.server.elevenlabs_client import TTSConfig
from hotline.server.handoff import HandoffDesk
from hotline.server.logs import RingHandler
from hotline.server.metrics import Metrics
from hotline.server.redis_backend import Cluster
from hotline.server.registry import CallRegistry, LiveCall
from hotline.server.security import AdminAuth, CallTokens, FailureLimiter, SignatureChecker
from hotline.server.settings import Settings, TTSSource
from hotline.server.speech_service import SpeechService

if TYPE_CHECKING:
    import openai

__all__ = ["CallMode", "Hub"]


class CallMode(LabelEnum):
    """What a media stream does, chosen by the webhook that answered (and kept in its token)."""

    SCRIPT = "script"  # POST /voice: the call script
    DEBUG = "debug"  # POST /debug-websocket-voice: one sentence, then hang up


@dataclass
class Hub:
    settings: Settings
    script: CallScript
    metrics: Metrics
    signatures: SignatureChecker
    admin: AdminAuth
    tokens: CallTokens
    limiter: FailureLimiter
    ring: RingHandler
    vad_config: VadConfig
    registry: CallRegistry
    #: Phrase cache, per-call TTS sockets.
    speech: SpeechService
    tts_source: TTSSource = TTSSource.LOCAL
    #: Where utterances are synthesised; set by the lifespan (the local voice's URL when no
    #: ElevenLabs key is configured), None before it and after shutdown. Each media stream's
    #: TTS is built for it at the upgrade.
    tts: TTSConfig | None = None
    #: The link to other replicas (HOTLINE_REDIS_URL), or None when serving alone.
    cluster: Cluster | None = None
    #: The embedded local ear's URL (HOTLINE_STT=local), set by the lifespan.
    stt_url: str | None = None
    #: The turn taker's default ``min_confidence`` for the embedded ear's ratings
    #: (:meth:`hotline.ear.process.EarProcess.min_confidence`); 0.0: off.
    ear_min_confidence: float = 0.0
    #: Transcripts of recently ended calls (live calls hold their own).
    transcripts: Transcripts = field(default_factory=Transcripts)
    #: Where a call the brain ended for a person goes (``HOTLINE_HANDOFF_URL``/``_NUMBER``).
    handoff: HandoffDesk | None = None
    #: Call records (HOTLINE_DATABASE_URL), None when off.
    records: Records | None = None
    #: Each call's turn latencies by stage, for the console's call page.
    console_turns: TurnLog = field(default_factory=TurnLog)
    #: The end-of-turn judge (``ulaw -> P(complete)``, blocking, thread-safe), one per process;
    #: None: endpointing from the words and the VAD alone.
    turn_judge: Callable[[bytes], float] | None = None
    #: The LLM brain's ``AsyncOpenAI`` (``HOTLINE_BRAIN=llm``), one per process and opened by the
    #: lifespan: its connections to the model's host are kept between calls, so a call's first
    #: turn does not pay a TCP and TLS handshake. None for the other brains.
    llm_client: openai.AsyncOpenAI | None = None

    @property
    def calls(self) -> Mapping[str, LiveCall]:
        """Admitted calls by CallSid (the registry's view)."""
        return self.registry.calls

    @property
    def sessions(self) -> frozenset[LiveCall]:
        """Every open media stream (the registry's view)."""
        return self.registry.attached
