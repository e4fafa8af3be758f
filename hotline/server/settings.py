"""Settings: the one place hotline reads its environment.

``Settings.from_env(os.environ)`` validates everything up front and raises
:class:`hotline.errors.ConfigError` with a message naming the variable. Secrets are kept out of
``repr()`` so a settings object can be logged.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlsplit

from hotline.errors import ConfigError

__all__ = ["DEFAULT_VOICE_ID", "ListenSettings", "Settings"]

#: ElevenLabs' premade voice "Rachel" (available on every account).
DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"
DEFAULT_MODEL_ID = "eleven_flash_v2_5"
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
DEFAULT_BASE_URL = "wss://api.elevenlabs.io"

#: Environment variables read, with their meaning (the README's configuration table).
ENV_VARS: dict[str, str] = {
    "TWILIO_AUTH_TOKEN": "Twilio auth token; signs webhooks and the media-stream upgrade",
    "HOTLINE_PUBLIC_URL": "public base URL Twilio calls, e.g. https://x.up.railway.app",
    "RAILWAY_PUBLIC_DOMAIN": "set by Railway; gives the default HOTLINE_PUBLIC_URL",
    "HOTLINE_ADMIN_TOKEN": "bearer token for /logs, /calls (admin endpoints off when unset)",
    "ELEVENLABS_API_KEY": "ElevenLabs key; unset = the embedded local voice (eSpeak NG)",
    "ELEVENLABS_VOICE_ID": f"voice (default {DEFAULT_VOICE_ID})",
    "ELEVENLABS_MODEL_ID": f"model (default {DEFAULT_MODEL_ID})",
    "ELEVENLABS_OUTPUT_FORMAT": f"audio format requested (default {DEFAULT_OUTPUT_FORMAT})",
    "ELEVENLABS_BASE_URL": f"TTS WebSocket base (default {DEFAULT_BASE_URL})",
    "HOTLINE_SCRIPT": "path to a TOML call script (default: the built-in artist hotline)",
    "PORT": "HTTP port (default 8000)",
    "HOTLINE_VAD_THRESHOLD_DBFS": "barge-in: speech level threshold (default -35)",
    "HOTLINE_VAD_MIN_SPEECH_MS": "barge-in: speech needed before interrupting (default 120)",
    "HOTLINE_VAD_HANG_MS": "barge-in: silence that ends speech (default 300)",
    "HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY": "local voice: seconds to first audio (default 0.25)",
    "HOTLINE_TTS_TIMEOUT": "seconds without TTS audio before an utterance is ended (default 8)",
    "ELEVENLABS_TRANSPORT": "multi (one pre-connected multi-stream-input socket per call, the "
    "default) or single (a stream-input socket per utterance)",
    "HOTLINE_CACHE_BYTES": "phrase cache size in bytes of µ-law (default 33554432 = 32 MiB; 0 = off)",
    "HOTLINE_CACHE_WARMUP": "1 = synthesise the script's fixed lines into the cache at start-up",
    "HOTLINE_PRECONNECT_TIMEOUT": "seconds a TTS socket opened at POST /voice waits for its "
    "stream (default 10)",
    "HOTLINE_REDIS_URL": "redis://host:port/db: share the cache and the live calls between "
    "replicas (default: off, in-process)",
    "HOTLINE_REDIS_HEARTBEAT": "seconds between refreshes of this replica's calls (default 5)",
    "HOTLINE_REDIS_CALL_EXPIRY": "seconds a crashed replica's calls stay listed (default 15)",
    "HOTLINE_LOCAL_VOICE_CONNECT_DELAY": "local voice: simulated handshake cost in seconds "
    "(default 0)",
    "TWILIO_SIGNING_KEY": "secret of a Twilio SharedKey: checks requests a Webhook Rule signs "
    "(they carry X-Twilio-Webhooks-Signature-Settings); default: unset, such requests refused",
    "HOTLINE_TOKEN_SECRET": "key of the signed per-call stream tokens; the same on every "
    "replica (default: derived from TWILIO_AUTH_TOKEN)",
    "HOTLINE_TRUSTED_PROXIES": "comma-separated IPs/CIDRs of reverse proxies whose "
    "X-Forwarded-For names the client, or * (Railway: *); default: none, the TCP peer is the client",
    "ELEVENLABS_TEXT_NORMALIZATION": "apply_text_normalization: auto, on or off (default: "
    "ElevenLabs' own, auto); on is refused for the flash/turbo v2.5 models",
}

#: Models ElevenLabs does not serve over its WebSockets. The multi-context socket is documented
#: ("Multi-context WebSockets are not available for the eleven_v3 model", elevenlabs.io
#: multi-context WebSocket guide); for stream-input only third-party integrators say so
#: (getpatter's ElevenLabs WebSocket provider docs, vercel/ai's text-to-dialogue release notes).
#: hotline speaks only these WebSockets, so every utterance would fail.
NO_WEBSOCKET_MODELS = frozenset({"eleven_v3"})
#: Models for which apply_text_normalization=on is refused (multi-stream-input API reference).
NO_NORMALIZATION_ON_MODELS = frozenset({"eleven_turbo_v2_5", "eleven_flash_v2_5"})


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_model_options(model_id: str, transport: str, query: Mapping[str, str] | None) -> None:
    """Refuse model / option combinations ElevenLabs rejects on every utterance.

    Raises:
        ConfigError: ``eleven_v3`` (no multi-context socket, and reportedly no stream-input
            either), or ``apply_text_normalization=on`` with a flash/turbo v2.5 model.
    """
    if model_id in NO_WEBSOCKET_MODELS:
        which = (
            "the multi-context socket (ELEVENLABS_TRANSPORT=multi, the default)"
            if transport == "multi"
            else "ElevenLabs' WebSockets (no multi-context socket; stream-input refuses it too)"
        )
        raise ConfigError(
            f"ELEVENLABS_MODEL_ID={model_id} cannot be streamed over {which}: "
            "use eleven_flash_v2_5, eleven_turbo_v2_5 or eleven_multilingual_v2"
        )
    normalization = (query or {}).get("apply_text_normalization")
    if normalization == "on" and model_id in NO_NORMALIZATION_ON_MODELS:
        raise ConfigError(
            f"apply_text_normalization=on is refused by ElevenLabs for {model_id}: "
            "use auto or off, or another model"
        )


DEFAULT_CACHE_BYTES = 32 * 2**20


def _secret_field() -> str | None:
    return field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, validated.

    ``insecure_dev`` is not read from the environment: only ``hotline serve --insecure-dev``
    sets it (loopback only; without a Twilio token signature checks are skipped).
    """

    twilio_auth_token: str | None = _secret_field()
    public_url: str | None = None
    admin_token: str | None = _secret_field()
    elevenlabs_api_key: str | None = _secret_field()
    elevenlabs_voice_id: str = DEFAULT_VOICE_ID
    elevenlabs_model_id: str = DEFAULT_MODEL_ID
    elevenlabs_output_format: str = DEFAULT_OUTPUT_FORMAT
    elevenlabs_base_url: str = DEFAULT_BASE_URL
    script_path: str | None = None
    port: int = 8000
    vad_threshold_dbfs: float = -35.0
    vad_min_speech_ms: int = 120
    vad_hang_ms: int = 300
    local_voice_first_chunk_delay: float = 0.25
    tts_timeout: float = 8.0
    elevenlabs_transport: str = "multi"
    cache_bytes: int = DEFAULT_CACHE_BYTES
    cache_warmup: bool = False
    preconnect_timeout: float = 10.0
    redis_url: str | None = _secret_field()
    redis_heartbeat: float = 5.0
    redis_call_expiry: float = 15.0
    local_voice_connect_delay: float = 0.0
    twilio_signing_key: str | None = _secret_field()
    token_secret: str | None = _secret_field()
    trusted_proxies: tuple[str, ...] = ()
    elevenlabs_text_normalization: str | None = None
    #: Seconds a SIGTERM waits for live calls to end before the rest are handed over.
    drain_timeout: float = 300.0
    insecure_dev: bool = False
    #: Speech-to-text, turns, brains (issue 10): see :class:`ListenSettings`.
    listen: ListenSettings = field(default_factory=lambda: ListenSettings())

    def __post_init__(self) -> None:
        from hotline.codec import SUPPORTED_FORMATS

        if self.elevenlabs_output_format not in SUPPORTED_FORMATS:
            raise ConfigError(
                f"ELEVENLABS_OUTPUT_FORMAT={self.elevenlabs_output_format!r} is not supported; "
                f"use one of: {', '.join(SUPPORTED_FORMATS)}"
            )
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"HOTLINE_PUBLIC_URL must look like https://host, got {self.public_url!r}"
                )
            if parts.query or parts.fragment or parts.path not in ("", "/"):
                raise ConfigError("HOTLINE_PUBLIC_URL must be a bare origin (no path or query)")
            object.__setattr__(self, "public_url", f"{parts.scheme}://{parts.netloc}")
        parts = urlsplit(self.elevenlabs_base_url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ConfigError(
                f"ELEVENLABS_BASE_URL must look like wss://host, got {self.elevenlabs_base_url!r}"
            )
        for name in ("elevenlabs_voice_id", "elevenlabs_model_id"):
            if not getattr(self, name):
                raise ConfigError(f"{name.upper()} must not be empty")
        if not 0 < self.port < 65536:
            raise ConfigError(f"PORT must be 1..65535, got {self.port}")
        if not -120.0 <= self.vad_threshold_dbfs <= 0.0:
            raise ConfigError("HOTLINE_VAD_THRESHOLD_DBFS must be within -120..0")
        if self.vad_min_speech_ms < 0 or self.vad_hang_ms < 0:
            raise ConfigError("HOTLINE_VAD_MIN_SPEECH_MS / HOTLINE_VAD_HANG_MS must be >= 0")
        if not 0.0 <= self.local_voice_first_chunk_delay <= 30.0:
            raise ConfigError("HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY must be within 0..30 s")
        if not 0.1 <= self.tts_timeout <= 180.0:
            raise ConfigError("HOTLINE_TTS_TIMEOUT must be within 0.1..180 s")
        if self.elevenlabs_transport not in ("multi", "single"):
            raise ConfigError(
                f"ELEVENLABS_TRANSPORT must be multi or single, got {self.elevenlabs_transport!r}"
            )
        if not 0 <= self.cache_bytes <= 2**40:
            raise ConfigError("HOTLINE_CACHE_BYTES must be within 0..2**40")
        if not 0.1 <= self.preconnect_timeout <= 300.0:
            raise ConfigError("HOTLINE_PRECONNECT_TIMEOUT must be within 0.1..300 s")
        if not 0.0 <= self.drain_timeout <= 3600.0:
            raise ConfigError("HOTLINE_DRAIN_TIMEOUT must be within 0..3600 s")
        if not 0.0 <= self.local_voice_connect_delay <= 30.0:
            raise ConfigError("HOTLINE_LOCAL_VOICE_CONNECT_DELAY must be within 0..30 s")
        if self.redis_url is not None and self.redis_url.strip():
            scheme = urlsplit(self.redis_url).scheme
            if scheme not in ("redis", "rediss", "unix"):
                raise ConfigError("HOTLINE_REDIS_URL must look like redis://host:port/db")
        if not 0.05 <= self.redis_heartbeat < self.redis_call_expiry <= 3600.0:
            raise ConfigError(
                "HOTLINE_REDIS_HEARTBEAT must be >= 0.05 s and shorter than "
                "HOTLINE_REDIS_CALL_EXPIRY (at most 3600 s)"
            )
        proxies: list[str] = []
        for item in self.trusted_proxies:
            if item.strip() == "*":
                proxies.append("*")
                continue
            try:
                proxies.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ConfigError(
                    f"HOTLINE_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR network "
                    "(comma-separated, e.g. 10.0.0.0/8,127.0.0.1, or *)"
                ) from None
        object.__setattr__(self, "trusted_proxies", tuple(proxies))
        normalization = self.elevenlabs_text_normalization
        if normalization is not None and normalization not in ("auto", "on", "off"):
            raise ConfigError(
                f"ELEVENLABS_TEXT_NORMALIZATION must be auto, on or off, got {normalization!r}"
            )
        check_model_options(
            self.elevenlabs_model_id, self.elevenlabs_transport, self.elevenlabs_extra_query
        )
        for name in (
            "twilio_auth_token",
            "admin_token",
            "elevenlabs_api_key",
            "redis_url",
            "twilio_signing_key",
            "token_secret",
        ):
            value = getattr(self, name)
            if value is not None and not value.strip():
                object.__setattr__(self, name, None)

    # -------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from an environment mapping (default ``os.environ``).

        Raises:
            ConfigError: a value is malformed or out of range (the message names it).
        """
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        public_url = get("HOTLINE_PUBLIC_URL")
        if public_url is None and (domain := get("RAILWAY_PUBLIC_DOMAIN")):
            public_url = f"https://{domain}"
        kwargs: dict[str, object] = {
            "twilio_auth_token": get("TWILIO_AUTH_TOKEN"),
            "public_url": public_url,
            "admin_token": get("HOTLINE_ADMIN_TOKEN"),
            "elevenlabs_api_key": get("ELEVENLABS_API_KEY"),
            "script_path": get("HOTLINE_SCRIPT"),
            "redis_url": get("HOTLINE_REDIS_URL"),
            "twilio_signing_key": get("TWILIO_SIGNING_KEY"),
            "token_secret": get("HOTLINE_TOKEN_SECRET"),
        }
        if (proxies := get("HOTLINE_TRUSTED_PROXIES")) is not None:
            kwargs["trusted_proxies"] = tuple(p for p in proxies.split(",") if p.strip())
        if (normalization := get("ELEVENLABS_TEXT_NORMALIZATION")) is not None:
            kwargs["elevenlabs_text_normalization"] = normalization.lower()
        if (transport := get("ELEVENLABS_TRANSPORT")) is not None:
            kwargs["elevenlabs_transport"] = transport.lower()
        warmup = get("HOTLINE_CACHE_WARMUP")
        if warmup is not None:
            if warmup.lower() not in ("0", "1", "true", "false", "yes", "no"):
                raise ConfigError(f"HOTLINE_CACHE_WARMUP must be 0 or 1, got {warmup!r}")
            kwargs["cache_warmup"] = warmup.lower() in ("1", "true", "yes")
        for name, attr in (
            ("ELEVENLABS_VOICE_ID", "elevenlabs_voice_id"),
            ("ELEVENLABS_MODEL_ID", "elevenlabs_model_id"),
            ("ELEVENLABS_OUTPUT_FORMAT", "elevenlabs_output_format"),
            ("ELEVENLABS_BASE_URL", "elevenlabs_base_url"),
        ):
            if (value := get(name)) is not None:
                kwargs[attr] = value
        numbers: tuple[tuple[str, str, type], ...] = (
            ("PORT", "port", int),
            ("HOTLINE_VAD_THRESHOLD_DBFS", "vad_threshold_dbfs", float),
            ("HOTLINE_VAD_MIN_SPEECH_MS", "vad_min_speech_ms", int),
            ("HOTLINE_VAD_HANG_MS", "vad_hang_ms", int),
            ("HOTLINE_LOCAL_VOICE_FIRST_CHUNK_DELAY", "local_voice_first_chunk_delay", float),
            ("HOTLINE_TTS_TIMEOUT", "tts_timeout", float),
            ("HOTLINE_CACHE_BYTES", "cache_bytes", int),
            ("HOTLINE_PRECONNECT_TIMEOUT", "preconnect_timeout", float),
            ("HOTLINE_REDIS_HEARTBEAT", "redis_heartbeat", float),
            ("HOTLINE_REDIS_CALL_EXPIRY", "redis_call_expiry", float),
            ("HOTLINE_LOCAL_VOICE_CONNECT_DELAY", "local_voice_connect_delay", float),
            ("HOTLINE_DRAIN_TIMEOUT", "drain_timeout", float),
        )
        for name, attr, kind in numbers:
            raw = get(name)
            if raw is None:
                continue
            try:
                number = kind(raw)
            except ValueError:
                what = "an integer" if kind is int else "a number"
                raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"{name} must be a finite number, got {raw!r}")
            kwargs[attr] = number
        kwargs["listen"] = ListenSettings.from_env(get, kwargs.get("elevenlabs_api_key"))
        return cls(**kwargs)  # type: ignore[arg-type]

    def with_insecure_dev(self, insecure_dev: bool = True) -> Settings:
        return replace(self, insecure_dev=insecure_dev)

    # -------------------------------------------------------------------------------

    @property
    def voice(self) -> str:
        """``"elevenlabs"`` with an API key, else ``"local"`` (the embedded eSpeak NG voice)."""
        return "elevenlabs" if self.elevenlabs_api_key else "local"

    @property
    def elevenlabs_extra_query(self) -> dict[str, str] | None:
        """Extra ElevenLabs query parameters the settings ask for (None: none)."""
        if self.elevenlabs_text_normalization is None:
            return None
        return {"apply_text_normalization": self.elevenlabs_text_normalization}

    @property
    def call_token_secret(self) -> str | None:
        """Key of the signed per-call tokens: ``HOTLINE_TOKEN_SECRET``, else the Twilio token
        (None: a random per-process key, insecure-dev only)."""
        return self.token_secret or self.twilio_auth_token

    @property
    def signatures_enforced(self) -> bool:
        return self.twilio_auth_token is not None

    def check_servable(self) -> None:
        """What ``hotline serve`` requires before it starts.

        Raises:
            ConfigError: no Twilio token (outside insecure-dev), or no public URL to validate
                signatures against.
        """
        if self.insecure_dev:
            return
        if (
            self.public_url is not None
            and self.public_url.startswith("http://")
            and not (
                _loopback(urlsplit(self.public_url).hostname)  # unreachable by Twilio: a local test
            )
        ):
            raise ConfigError(
                f"HOTLINE_PUBLIC_URL={self.public_url} is http://: its media stream would be "
                "ws://, which Twilio refuses (wss only). Use https://, or --insecure-dev."
            )
        if self.twilio_auth_token is None:
            raise ConfigError(
                "TWILIO_AUTH_TOKEN is not set: hotline refuses to serve unsigned Twilio traffic. "
                "Set it, or run `hotline serve --insecure-dev` (binds 127.0.0.1 only)."
            )
        if self.public_url is None:
            raise ConfigError(
                "HOTLINE_PUBLIC_URL is not set (nor RAILWAY_PUBLIC_DOMAIN): Twilio signatures "
                "are computed over the public URL, e.g. HOTLINE_PUBLIC_URL=https://x.up.railway.app"
            )

    def secrets(self) -> tuple[str, ...]:
        """Every secret value set (for log redaction)."""
        out = [
            v
            for v in (
                self.twilio_auth_token,
                self.admin_token,
                self.elevenlabs_api_key,
                self.twilio_signing_key,
                self.token_secret,
            )
            if v
        ]
        out += self.listen.secrets()
        if self.redis_url:
            password = urlsplit(self.redis_url).password
            if password:
                out.append(password)
        return tuple(out)

    def describe(self) -> dict[str, object]:
        """Non-secret settings for logs."""
        secret = {
            "twilio_auth_token",
            "admin_token",
            "elevenlabs_api_key",
            "redis_url",
            "twilio_signing_key",
            "token_secret",
        }
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ListenSettings):
                value = value.describe()
            out[f.name] = ("set" if value else "unset") if f.name in secret else value
        return out


# ---------------------------------------------------------------- listening (issue 10)

#: The listening floor's variables (merged into :data:`ENV_VARS`).
LISTEN_ENV_VARS: dict[str, str] = {
    "HOTLINE_STT": "speech-to-text: elevenlabs (Scribe realtime), deepgram, local (the embedded "
    "ear) or off; default elevenlabs when ELEVENLABS_API_KEY is set, else local",
    "DEEPGRAM_API_KEY": "Deepgram key, for HOTLINE_STT=deepgram",
    "HOTLINE_STT_URL": "speech-to-text WebSocket base, e.g. wss://api.elevenlabs.io (default: "
    "the provider's, or the embedded local ear)",
    "HOTLINE_TURN_SILENCE_MS": "silence that ends the caller's turn (default 700)",
    "HOTLINE_BARGE_IN": "what interrupts hotline: speech (onset, the default), words (the first "
    "transcribed word; a cough does not) or off",
    "HOTLINE_BRAIN": "who answers the caller: script (intents + menu, the default), llm or relay",
    "HOTLINE_LLM_URL": "OpenAI-compatible base URL for HOTLINE_BRAIN=llm, e.g. "
    "https://api.openai.com/v1 or http://localhost:11434/v1",
    "HOTLINE_LLM_API_KEY": "key for HOTLINE_LLM_URL (default: OPENAI_API_KEY)",
    "OPENAI_API_KEY": "used when HOTLINE_LLM_API_KEY is unset",
    "HOTLINE_LLM_MODEL": "model name for HOTLINE_BRAIN=llm (default gpt-4o-mini)",
    "HOTLINE_RELAY_URL": "ws:// or wss:// URL of a ConversationRelay app for HOTLINE_BRAIN=relay",
    "HOTLINE_TRANSCRIPTS_KEPT": "ended calls whose transcript stays at /calls/{sid}/transcript "
    "(default 100)",
}
ENV_VARS.update(LISTEN_ENV_VARS)

STT_PROVIDERS = ("elevenlabs", "deepgram", "local", "off")
BRAINS = ("script", "llm", "relay")
BARGE_IN_MODES = ("speech", "words", "off")


@dataclass(frozen=True)
class ListenSettings:
    """Speech-to-text, turn-taking and brain settings (validated).

    Raises:
        ConfigError: a value is malformed or out of range (the message names the variable).
    """

    stt: str = "local"
    deepgram_api_key: str | None = _secret_field()
    stt_url: str | None = None
    turn_silence_ms: int = 700
    barge_in: str = "speech"
    brain: str = "script"
    llm_url: str | None = None
    llm_api_key: str | None = _secret_field()
    llm_model: str = "gpt-4o-mini"
    relay_url: str | None = _secret_field()  # its query may hold a token
    transcripts_kept: int = 100

    def __post_init__(self) -> None:
        if self.stt not in STT_PROVIDERS:
            raise ConfigError(f"HOTLINE_STT must be one of {', '.join(STT_PROVIDERS)}")
        if self.stt == "deepgram" and not self.deepgram_api_key:
            raise ConfigError("HOTLINE_STT=deepgram needs DEEPGRAM_API_KEY")
        if self.stt_url is not None:
            parts = urlsplit(self.stt_url)
            if parts.scheme not in ("ws", "wss") or not parts.netloc:
                raise ConfigError("HOTLINE_STT_URL must look like wss://host")
        if not 0 <= self.turn_silence_ms <= 10_000:
            raise ConfigError("HOTLINE_TURN_SILENCE_MS must be within 0..10000")
        if self.barge_in not in BARGE_IN_MODES:
            raise ConfigError(f"HOTLINE_BARGE_IN must be one of {', '.join(BARGE_IN_MODES)}")
        if self.brain not in BRAINS:
            raise ConfigError(f"HOTLINE_BRAIN must be one of {', '.join(BRAINS)}")
        if self.brain == "llm":
            if not self.llm_url:
                raise ConfigError("HOTLINE_BRAIN=llm needs HOTLINE_LLM_URL")
            if urlsplit(self.llm_url).scheme not in ("http", "https"):
                raise ConfigError("HOTLINE_LLM_URL must look like https://host/v1")
        if self.brain == "relay":
            if not self.relay_url or urlsplit(self.relay_url).scheme not in ("ws", "wss"):
                raise ConfigError("HOTLINE_BRAIN=relay needs HOTLINE_RELAY_URL (ws:// or wss://)")
        if not self.llm_model:
            raise ConfigError("HOTLINE_LLM_MODEL must not be empty")
        if not 0 <= self.transcripts_kept <= 100_000:
            raise ConfigError("HOTLINE_TRANSCRIPTS_KEPT must be within 0..100000")

    @classmethod
    def from_env(
        cls, get: Callable[[str], str | None], elevenlabs_api_key: object = None
    ) -> ListenSettings:
        """Read the listening variables through ``get`` (stripped value or None).

        Raises:
            ConfigError: a value is malformed.
        """
        stt = get("HOTLINE_STT")
        kwargs: dict[str, object] = {
            "stt": stt.lower() if stt else ("elevenlabs" if elevenlabs_api_key else "local"),
            "deepgram_api_key": get("DEEPGRAM_API_KEY"),
            "stt_url": get("HOTLINE_STT_URL"),
            "barge_in": (get("HOTLINE_BARGE_IN") or "speech").lower(),
            "brain": (get("HOTLINE_BRAIN") or "script").lower(),
            "llm_url": get("HOTLINE_LLM_URL"),
            "llm_api_key": get("HOTLINE_LLM_API_KEY") or get("OPENAI_API_KEY"),
            "relay_url": get("HOTLINE_RELAY_URL"),
        }
        if (model := get("HOTLINE_LLM_MODEL")) is not None:
            kwargs["llm_model"] = model
        for name, attr in (
            ("HOTLINE_TURN_SILENCE_MS", "turn_silence_ms"),
            ("HOTLINE_TRANSCRIPTS_KEPT", "transcripts_kept"),
        ):
            raw = get(name)
            if raw is None:
                continue
            try:
                kwargs[attr] = int(raw)
            except ValueError:
                raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        return cls(**kwargs)  # type: ignore[arg-type]

    def secrets(self) -> list[str]:
        out = [v for v in (self.deepgram_api_key, self.llm_api_key) if v]
        if self.relay_url:
            query = urlsplit(self.relay_url).query
            if query:
                out.append(query)
        return out

    def describe(self) -> dict[str, object]:
        secret = {"deepgram_api_key", "llm_api_key", "relay_url"}
        return {
            f.name: ("set" if getattr(self, f.name) else "unset")
            if f.name in secret
            else getattr(self, f.name)
            for f in fields(self)
        }
