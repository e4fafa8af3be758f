"""Per-app shared state: settings, script, metrics, tokens, live calls, the TTS target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hotline.core.script import CallScript
from hotline.core.vad import VadConfig
from hotline.server.elevenlabs_client import TTSConfig
from hotline.server.logs import RingHandler
from hotline.server.metrics import Metrics
from hotline.server.security import AdminAuth, CallTokens, FailureLimiter, SignatureChecker
from hotline.server.settings import Settings

if TYPE_CHECKING:
    from hotline.server.redis_backend import Cluster
    from hotline.server.session import CallSession
    from hotline.server.speaker import SpeechService

__all__ = ["Hub"]


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
    #: Where utterances are synthesised; set by the lifespan (the local voice's URL when no
    #: ElevenLabs key is configured). Read once per utterance, so it may be replaced live.
    tts: TTSConfig | None = None
    voice: str = "local"
    calls: dict[str, CallSession] = field(default_factory=dict)
    #: Phrase cache, per-call TTS sockets (set by create_app).
    speech: SpeechService | None = None
    #: The link to other replicas (HOTLINE_REDIS_URL), or None when serving alone.
    cluster: Cluster | None = None
    sessions: set[CallSession] = field(default_factory=set)
